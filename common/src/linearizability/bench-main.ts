#!/usr/bin/env node
/**
 * `npm run bench:checker [-- --writes N --bursts B --seed S] [--write FILE]`: how long the checker
 * takes on generated histories of one key whose bursts hold N pairwise-concurrent writes, with
 * reads-from and with the general search alone (default budget), plus planted violations. With
 * `--write FILE` it only writes one such history, for `npm run check:history -- FILE`.
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import { checkHistory, type CheckOptions } from './check-history.js';
import { generateRegisterHistory, type RegisterHistoryOptions } from './generate-history.js';
import { operationsFromHistory, type HistoryEvent } from './history.js';

const usage =
  'usage: npm run bench:checker [-- --writes N] [--bursts B] [--seed S] [--write FILE]\n' +
  '  --writes N    pairwise-concurrent writes per burst (default: 64, 256 and 1024 in turn)\n' +
  '  --bursts B    bursts, one after another, on one key (default 4)\n' +
  '  --seed S      seed of the generated histories (default 1)\n' +
  '  --write FILE  write one history (--writes, default 64) as JSON lines to FILE, and stop';

function historyOptions(writes: number, bursts: number, seed: number): RegisterHistoryOptions {
  return {
    seed,
    bursts,
    burstWrites: writes,
    burstReads: writes,
    deleteShare: 0.1,
    indeterminateShare: 0.05,
  };
}

function timed(events: readonly HistoryEvent[], options: CheckOptions): string {
  const started = performance.now();
  const check = checkHistory(events, options);
  const elapsedMs = performance.now() - started;
  const key = [...check.perKey.values()][0]!;
  return `${check.result} in ${elapsedMs.toFixed(0)} ms (${key.steps} steps)`;
}

/** The same history with its last read of a value changed to the value written first: stale. */
function withStaleRead(events: readonly HistoryEvent[]): HistoryEvent[] {
  const operations = operationsFromHistory(events);
  const first = operations.find((op) => op.f === 'put' && op.status === 'ok')!;
  const last = [...operations].reverse().find((op) => op.f === 'get' && op.invokeTime > first.returnTime)!;
  return events.map((event) =>
    event.client === last.client && event.type === 'ok' ? { ...event, value: first.input } : event,
  );
}

function main(argv: readonly string[]): number {
  let writesList = [64, 256, 1024];
  let bursts = 4;
  let seed = 1;
  let file: string | undefined;
  for (let index = 0; index < argv.length; index += 1) {
    const argument = argv[index]!;
    if (argument === '--help' || argument === '-h') {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const value = argv[++index];
    if (argument === '--write' && value !== undefined) {
      file = value;
      continue;
    }
    const number = Number(value);
    if (!Number.isSafeInteger(number) || number <= 0) {
      process.stderr.write(`bench:checker: ${argument} needs a positive whole number\n${usage}\n`);
      return 3;
    }
    if (argument === '--writes') writesList = [number];
    else if (argument === '--bursts') bursts = number;
    else if (argument === '--seed') seed = number;
    else {
      process.stderr.write(`bench:checker: unexpected argument ${argument}\n${usage}\n`);
      return 3;
    }
  }
  if (file !== undefined) {
    const events = generateRegisterHistory(historyOptions(writesList[0]!, bursts, seed));
    writeFileSync(file, `${events.map((event) => JSON.stringify(event)).join('\n')}\n`);
    process.stdout.write(
      `wrote ${events.length} events (${events.length / 2} operations on one key) to ${file}\n`,
    );
    return 0;
  }
  process.stdout.write(
    `one key, ${bursts} bursts, each of N pairwise-concurrent writes (10% deletes, 5% indeterminate) and N reads; seed ${seed}\n`,
  );
  for (const writes of writesList) {
    const events = generateRegisterHistory(historyOptions(writes, bursts, seed));
    process.stdout.write(`N = ${writes}, ${events.length / 2} operations\n`);
    process.stdout.write(`  reads-from:                  ${timed(events, {})}\n`);
    process.stdout.write(`  reads-from, a stale read:    ${timed(withStaleRead(events), {})}\n`);
    process.stdout.write(`  general search alone:        ${timed(events, { readsFrom: false })}\n`);
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
