/**
 * The node simulator's command line: runs N seeded simulations of nodes that host the production
 * replica host, and prints, as its last line,
 * `sim: <N> seeds, <F> failed, <ops> ops, <simulated seconds per second> sim-s/s`.
 * Exits 1 when any seed fails, after printing each failing seed with the command that replays it.
 *
 *   npm run sim -- --seeds 100 [--seed 1] [--nodes 3|5] [--groups 3] [--duration-ms 5000]
 *                        [--lease-reads] [--logs node|replica] [--no-moves] [--coalesce-heartbeats]
 *                        [--schedule isolated-leaders|figure8|deposed-leader-reads] [--verbose]
 *
 * `--schedule` adds a targeted schedule to the random faults (`targeted-schedules.ts`): the
 * sequences under which the node simulator's planted bugs are caught (`npm run sim:mutants --
 * --node`), run against the real code.
 * Replicas move between nodes unless `--no-moves` is given (`--moves`, their switch before they
 * were on by default, is still taken, so that older replay commands still replay).
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { runNodeSimulation } from './node-simulation.js';
import { describeResult, replayCommand } from './report.js';
import { isTargetedSchedule, targetedSchedules, type TargetedSchedule } from './targeted-schedules.js';

interface CliOptions {
  readonly seeds: number;
  readonly firstSeed: number;
  readonly nodes: number;
  readonly groups: number;
  readonly durationMs: number;
  readonly leaseReads: boolean;
  readonly logs: 'node' | 'replica';
  readonly moves: boolean;
  readonly coalesceHeartbeats: boolean;
  readonly schedule: TargetedSchedule | undefined;
  readonly verbose: boolean;
}

const usage =
  'usage: npm run sim -- [--seeds N] [--seed S] [--nodes 3|5] [--groups G] [--duration-ms MS] [--lease-reads] [--logs node|replica] [--no-moves] [--coalesce-heartbeats] [--schedule isolated-leaders|figure8|deposed-leader-reads] [--verbose]';

function parseOptions(argv: readonly string[]): CliOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      seeds: { type: 'string', default: '20' },
      seed: { type: 'string', default: '1' },
      nodes: { type: 'string', default: '3' },
      groups: { type: 'string', default: '3' },
      'duration-ms': { type: 'string', default: '5000' },
      'lease-reads': { type: 'boolean', default: false },
      logs: { type: 'string', default: 'node' },
      moves: { type: 'boolean', default: false },
      'no-moves': { type: 'boolean', default: false },
      'coalesce-heartbeats': { type: 'boolean', default: false },
      schedule: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const integer = (name: string, text: string, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min || value > max)
      throw new Error(`--${name} must be an integer from ${min} to ${max}`);
    return value;
  };
  const nodes = integer('nodes', values.nodes, 3, 5);
  if (values.logs !== 'node' && values.logs !== 'replica') throw new Error('--logs must be node or replica');
  if (nodes !== 3 && nodes !== 5) throw new Error('--nodes must be 3 or 5');
  if (values.moves && values['no-moves']) throw new Error('--moves and --no-moves contradict each other');
  const schedule = values.schedule;
  if (schedule !== undefined && !isTargetedSchedule(schedule))
    throw new Error(`--schedule must be one of ${targetedSchedules.join(', ')}`);
  return {
    seeds: integer('seeds', values.seeds, 1, 1_000_000),
    firstSeed: integer('seed', values.seed, 0, 2 ** 31),
    nodes,
    groups: integer('groups', values.groups, 1, 64),
    durationMs: integer('duration-ms', values['duration-ms'], 0, 3_600_000),
    leaseReads: values['lease-reads'],
    logs: values.logs,
    moves: !values['no-moves'],
    coalesceHeartbeats: values['coalesce-heartbeats'],
    schedule,
    verbose: values.verbose,
  };
}

async function main(): Promise<void> {
  let options: CliOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`sim: ${(error as Error).message}\n${usage}`);
    process.exit(2);
  }
  const startedMs = performance.now();
  let failed = 0;
  let operations = 0;
  let simulatedMs = 0;
  for (let seed = options.firstSeed; seed < options.firstSeed + options.seeds; seed++) {
    const result = await runNodeSimulation({
      seed,
      nodes: options.nodes,
      groups: options.groups,
      durationMs: options.durationMs,
      readMode: options.leaseReads ? 'lease' : 'readindex',
      logs: options.logs,
      faults: { moves: options.moves },
      coalesceHeartbeats: options.coalesceHeartbeats,
      ...(options.schedule === undefined ? {} : { schedule: options.schedule }),
      ...(options.verbose ? { trace: (line: string) => console.log(`  ${line}`) } : {}),
    });
    operations += result.operations.ok;
    simulatedMs += result.simulatedMs;
    if (result.problems.length > 0) {
      failed++;
      console.log(`FAILED ${describeResult(result)}`);
      for (const problem of result.problems.slice(0, 10)) console.log(`  ${problem}`);
      console.log(`  replay: ${replayCommand(options, seed)}`);
    } else if (options.verbose || (seed - options.firstSeed + 1) % 10 === 0) {
      console.log(`ok ${describeResult(result)}`);
    }
  }
  const elapsedSeconds = (performance.now() - startedMs) / 1000;
  console.log(
    `sim: ${options.seeds} seeds, ${failed} failed, ${operations} ops, ${(simulatedMs / 1000 / elapsedSeconds).toFixed(1)} sim-s/s`,
  );
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
