/**
 * The simulator's command line: runs N seeded simulations and prints, as its last line,
 * `sim: <N> seeds, <V> violations, <ops> ops, <ticks per second> ticks/s`. Exits 1 on any
 * violation, after printing each failing seed with the command that replays it.
 *
 *   npm run sim:core -- --seeds 200 [--seed 1] [--replicas 3|5] [--ticks 2000] [--lease-reads] [--verbose]
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

import { findHistoryChecker } from './history-checker.js';
import { runSimulation, type SimulationResult } from './simulation.js';

interface CliOptions {
  readonly seeds: number;
  readonly firstSeed: number;
  readonly replicas: 3 | 5;
  readonly ticks: number;
  readonly verbose: boolean;
  readonly leaseReads: boolean;
}

function parseOptions(argv: readonly string[]): CliOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      seeds: { type: 'string', default: '100' },
      seed: { type: 'string', default: '1' },
      replicas: { type: 'string', default: '3' },
      ticks: { type: 'string', default: '2000' },
      verbose: { type: 'boolean', default: false },
      'lease-reads': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const integer = (name: string, text: string, min: number): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min)
      throw new Error(`--${name} must be an integer >= ${min}`);
    return value;
  };
  const replicas = integer('replicas', values.replicas, 3);
  if (replicas !== 3 && replicas !== 5) throw new Error('--replicas must be 3 or 5');
  return {
    seeds: integer('seeds', values.seeds, 1),
    firstSeed: integer('seed', values.seed, 0),
    replicas,
    ticks: integer('ticks', values.ticks, 1),
    verbose: values.verbose,
    leaseReads: values['lease-reads'],
  };
}

function replayCommand(options: CliOptions, seed: number): string {
  const lease = options.leaseReads ? ' --lease-reads' : '';
  return `npm run sim:core -- --seeds 1 --seed ${seed} --replicas ${options.replicas} --ticks ${options.ticks}${lease} --verbose`;
}

function describeResult(result: SimulationResult): string {
  const faults = Object.entries(result.faults)
    .map(([name, count]) => `${name}=${count}`)
    .join(' ');
  return (
    `seed ${result.seed}: ${result.ticks} ticks, ${result.operationsInvoked} ops (${result.operationsOk} ok), ` +
    `${result.commandsCommitted} commands committed, history ${result.linearizability}, ${faults}`
  );
}

const progressIntervalMs = 5000;

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const checkHistory = await findHistoryChecker();
  let violations = 0;
  let operations = 0;
  let ticks = 0;
  const startMs = performance.now();
  let lastProgressMs = startMs;
  for (let seed = options.firstSeed; seed < options.firstSeed + options.seeds; seed += 1) {
    // Long runs say where they are on stderr every few seconds; stdout stays the report.
    if (!options.verbose && performance.now() - lastProgressMs >= progressIntervalMs) {
      lastProgressMs = performance.now();
      const done = seed - options.firstSeed;
      process.stderr.write(
        `sim: ${done}/${options.seeds} seeds (${Math.round((done / options.seeds) * 100)}%), ${violations} violations so far\n`,
      );
    }
    const seedStartMs = performance.now();
    const result = runSimulation({
      seed,
      replicas: options.replicas,
      ticks: options.ticks,
      leaseReads: options.leaseReads,
      checkHistory,
    });
    operations += result.operationsInvoked;
    ticks += result.ticks;
    if (options.verbose)
      console.log(`${describeResult(result)} (${Math.round(performance.now() - seedStartMs)} ms)`);
    if (result.violations.length > 0) {
      violations += result.violations.length;
      console.log(`FAIL seed ${seed}: ${result.violations.length} violation(s)`);
      for (const violation of result.violations) {
        console.log(`  [tick ${violation.tick}] ${violation.invariant}: ${violation.detail}`);
      }
      console.log(`  replay: ${replayCommand(options, seed)}`);
    }
  }
  const seconds = (performance.now() - startMs) / 1000;
  const ticksPerSecond = Math.round(ticks / Math.max(seconds, 1e-9));
  console.log(
    `sim: ${options.seeds} seeds, ${violations} violations, ${operations} ops, ${ticksPerSecond} ticks/s`,
  );
  return violations === 0 ? 0 : 1;
}

process.exitCode = await main();
