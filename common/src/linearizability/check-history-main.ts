#!/usr/bin/env node
/**
 * `npm run check:history -- FILE [--steps-per-key N] [--time-budget MS]`: checks a JSON-lines
 * history (see README.md in this folder) and prints `linearizable: true|false|unknown`. For
 * `false` it prints the key and a minimal set of operations that cannot be ordered.
 * Exit codes (`historyCheckExitCodes`): 0 linearizable, 1 not linearizable, 2 unknown (budget
 * exhausted), 3 bad input (a bad argument, an unreadable, empty or malformed history).
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { checkHistory, type HistoryCheck } from './check-history.js';
import { formatHistoryCheck, historyCheckExitCodes } from './format.js';
import { HistoryFormatError, type HistoryEvent } from './history.js';

const usage =
  'usage: npm run check:history -- FILE [--steps-per-key N] [--time-budget MS]\n' +
  '  FILE           a history in JSON lines (one event per line; see common/src/linearizability/README.md),\n' +
  '                 gzipped when its name ends in .gz\n' +
  '  --steps-per-key N  search steps per key before answering unknown (default 5000000)\n' +
  '  --time-budget MS   wall-clock budget for the whole check, in milliseconds (default: none)\n' +
  'exit status:\n' +
  '  0  linearizable: true\n' +
  '  1  linearizable: false (the key and the operations that cannot be ordered are printed)\n' +
  '  2  linearizable: unknown (the search ran out of budget; never read it as true)\n' +
  '  3  bad input: a bad argument, or a file that cannot be read, is empty or blank, or holds a\n' +
  '     malformed event (nothing was checked)';

const eventTypes = new Set(['invoke', 'ok', 'fail', 'info']);
const functions = new Set(['get', 'put', 'delete', 'cas']);

/** Parses and validates the events of a JSON-lines history; throws with the line number. */
export function parseHistory(text: string): HistoryEvent[] {
  if (text.trim() === '') throw new HistoryFormatError('the history is empty: it holds no events');
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
      !isValueOrAbsent(event.value) ||
      !isValueOrAbsent(event.expected)
    ) {
      throw new HistoryFormatError(
        `line ${index + 1}: not a history event (client, type, f, key, value?, expected?, time)`,
      );
    }
    events.push(event as HistoryEvent);
  });
  return events;
}

/** A field that, when present, holds a string or null. */
function isValueOrAbsent(value: unknown): boolean {
  return value === undefined || value === null || typeof value === 'string';
}

/**
 * Runs the command: `argv` without the node and script paths; `write` receives stdout and stderr.
 * Returns the exit status.
 */
export function checkHistoryCommand(
  argv: readonly string[],
  write: { readonly stdout: (text: string) => void; readonly stderr: (text: string) => void } = {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  },
): number {
  const badInput = historyCheckExitCodes.badInput;
  let file: string | undefined;
  let stepsPerKeyMax: number | undefined;
  let timeBudgetMs: number | undefined;
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index] as string;
    if (argument === '--help' || argument === '-h') {
      write.stdout(`${usage}\n`);
      return 0;
    }
    if (argument === '--steps-per-key' || argument === '--time-budget') {
      const value = Number(argv[++index]);
      if (!Number.isSafeInteger(value) || value <= 0) {
        write.stderr(`check:history: ${argument} needs a positive whole number\n${usage}\n`);
        return badInput;
      }
      if (argument === '--steps-per-key') stepsPerKeyMax = value;
      else timeBudgetMs = value;
      continue;
    }
    if (argument.startsWith('--') || file !== undefined) {
      write.stderr(`check:history: unexpected argument ${argument}\n${usage}\n`);
      return badInput;
    }
    file = argument;
  }
  if (file === undefined) {
    write.stderr(`${usage}\n`);
    return badInput;
  }
  let events: HistoryEvent[];
  try {
    const bytes = readFileSync(file);
    // A gzipped history (a recorded run kept in the repository) is read as it is.
    events = parseHistory((file.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8'));
  } catch (error) {
    write.stderr(`check:history: ${file}: ${(error as Error).message}\n`);
    return badInput;
  }
  let check: HistoryCheck;
  try {
    // Pairing invocations with completions finds what one line alone cannot show (a get ok without
    // a value, a cas without expected, a completion without invocation): bad input too.
    check = checkHistory(events, {
      ...(stepsPerKeyMax === undefined ? {} : { stepsPerKeyMax }),
      ...(timeBudgetMs === undefined ? {} : { timeBudgetMs }),
    });
  } catch (error) {
    if (!(error instanceof HistoryFormatError)) throw error;
    write.stderr(`check:history: ${file}: ${error.message}\n`);
    return badInput;
  }
  const { text, exitCode } = formatHistoryCheck(check);
  write.stdout(`${text}\n`);
  return exitCode;
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ''))) {
  process.exitCode = checkHistoryCommand(process.argv.slice(2));
}
