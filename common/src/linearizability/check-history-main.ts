#!/usr/bin/env node
/**
 * `npm run check:history -- FILE [--steps-per-key N] [--time-budget MS]`: checks a JSON-lines
 * history (see README.md in this folder) and prints `linearizable: true|false|unknown`. For
 * `false` it prints the key and a minimal set of operations that cannot be ordered.
 * Exit codes: 0 linearizable, 1 not linearizable, 2 unknown (budget exhausted) or unusable input.
 */
import { readFileSync } from 'node:fs';
import { checkHistory, type HistoryCheck } from './check-history.js';
import { formatHistoryCheck } from './format.js';
import { HistoryFormatError, type HistoryEvent } from './history.js';

const usage =
  'usage: npm run check:history -- FILE [--steps-per-key N] [--time-budget MS]\n' +
  '  FILE           a history in JSON lines (one event per line; see common/src/linearizability/README.md)\n' +
  '  --steps-per-key N  search steps per key before answering unknown (default 5000000)\n' +
  '  --time-budget MS   wall-clock budget for the whole check, in milliseconds (default: none)\n' +
  'exit status: 0 linearizable, 1 not linearizable, 2 unknown or unusable input';

const eventTypes = new Set(['invoke', 'ok', 'fail', 'info']);
const functions = new Set(['get', 'put', 'delete', 'cas']);

/** Parses and validates the events of a JSON-lines history; throws with the line number. */
export function parseHistory(text: string): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new HistoryFormatError(`line ${index + 1}: not JSON`);
    }
    const event = value as Partial<HistoryEvent>;
    if (
      typeof event !== 'object' ||
      event === null ||
      !Number.isInteger(event.client) ||
      !eventTypes.has(event.type as string) ||
      !functions.has(event.f as string) ||
      typeof event.key !== 'string' ||
      typeof event.time !== 'number' ||
      (event.value !== undefined && event.value !== null && typeof event.value !== 'string')
    ) {
      throw new HistoryFormatError(
        `line ${index + 1}: not a history event (client, type, f, key, value?, time)`,
      );
    }
    events.push(event as HistoryEvent);
  });
  return events;
}

function main(argv: readonly string[]): number {
  let file: string | undefined;
  let stepsPerKeyMax: number | undefined;
  let timeBudgetMs: number | undefined;
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index] as string;
    if (argument === '--help' || argument === '-h') {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    if (argument === '--steps-per-key' || argument === '--time-budget') {
      const value = Number(argv[++index]);
      if (!Number.isSafeInteger(value) || value <= 0) {
        process.stderr.write(`check:history: ${argument} needs a positive whole number\n${usage}\n`);
        return 2;
      }
      if (argument === '--steps-per-key') stepsPerKeyMax = value;
      else timeBudgetMs = value;
      continue;
    }
    if (argument.startsWith('--') || file !== undefined) {
      process.stderr.write(`check:history: unexpected argument ${argument}\n${usage}\n`);
      return 2;
    }
    file = argument;
  }
  if (file === undefined) {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  let events: HistoryEvent[];
  try {
    events = parseHistory(readFileSync(file, 'utf8'));
  } catch (error) {
    process.stderr.write(`check:history: ${file}: ${(error as Error).message}\n`);
    return 2;
  }
  let check: HistoryCheck;
  try {
    check = checkHistory(events, {
      ...(stepsPerKeyMax === undefined ? {} : { stepsPerKeyMax }),
      ...(timeBudgetMs === undefined ? {} : { timeBudgetMs }),
    });
  } catch (error) {
    if (!(error instanceof HistoryFormatError)) throw error;
    process.stderr.write(`check:history: ${file}: ${error.message}\n`);
    return 2;
  }
  const { text, exitCode } = formatHistoryCheck(check);
  process.stdout.write(`${text}\n`);
  return exitCode;
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ''))) {
  process.exitCode = main(process.argv.slice(2));
}
