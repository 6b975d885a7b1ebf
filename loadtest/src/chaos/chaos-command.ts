import { randomInt } from 'node:crypto';
import { ConfigError, parseConfig } from '@impulse/common';
import { chaosOptions, chaosProgram } from './chaos-options.js';
import type { ChaosShape } from './chaos-cluster.js';
import { chaosSchedule, runChaos } from './chaos-run.js';
import { nemesisNames, type NemesisName } from './nemesis.js';

/** What decides which nemeses a run can have. */
export interface ChaosLayout {
  readonly shape: ChaosShape;
  /** Nodes (`nodes` shape). */
  readonly nodes: number;
  readonly replicasPerGroup: number;
}

/**
 * The nemeses a layout has. In the node shape `member` moves a group's replica to a node that does
 * not host the group, so it needs more nodes than replicas per group.
 */
export function nemesesOf(layout: ChaosLayout): readonly NemesisName[] {
  const spareNode = layout.nodes > layout.replicasPerGroup;
  return layout.shape === 'nodes' && !spareNode
    ? nemesisNames.filter((name) => name !== 'member')
    : nemesisNames;
}

/**
 * Parses `--nemesis kill,pause,...` (or `all`: every nemesis the layout has, or `none`). A nemesis
 * the layout does not have is refused, with why.
 */
export function parseNemeses(text: string, layout: ChaosLayout): Set<NemesisName> {
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (names.length === 1 && names[0] === 'all') return new Set(nemesesOf(layout));
  if (names.length === 1 && names[0] === 'none') return new Set();
  const unknown = names.filter((name) => !(nemesisNames as readonly string[]).includes(name));
  if (unknown.length > 0 || names.length === 0) {
    throw new ConfigError([
      `--nemesis: unknown nemesis ${unknown.join(', ') || '(empty)'}; choose from ${nemesisNames.join(', ')}, all or none`,
    ]);
  }
  const available = nemesesOf(layout);
  const missing = names.filter((name) => !(available as readonly string[]).includes(name));
  if (missing.length > 0) {
    throw new ConfigError([
      `--nemesis: member moves a replica to a node that does not host its group, and with --nodes ${layout.nodes} and --replicas-per-group ${layout.replicasPerGroup} every node hosts every group: use --nodes ${layout.replicasPerGroup + 1} or more, or leave member out`,
    ]);
  }
  return new Set(names as NemesisName[]);
}

/**
 * `npm run chaos`: prints progress on stderr and the verdict line last on stdout. Exit status 0
 * when the run passed (linearizable, no acknowledged write lost, no unexpected exit, no error),
 * 2 when the checker could not decide within its budget and nothing else failed, 1 otherwise.
 * `--dry-run` prints the fault schedule of the seed and starts nothing.
 */
export async function runChaosCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const config = parseConfig(chaosProgram, chaosOptions, { argv, env });
  const shape = config.shape as ChaosShape;
  if (shape === 'nodes' && config.replicasPerGroup > config.nodes) {
    throw new ConfigError([
      `--replicas-per-group ${config.replicasPerGroup} needs as many nodes (a node hosts at most one replica of a group); --nodes is ${config.nodes}`,
    ]);
  }
  const nemeses = parseNemeses(config.nemesis, {
    shape,
    nodes: config.nodes,
    replicasPerGroup: config.replicasPerGroup,
  });
  const seed = config.seed === 0 ? randomInt(1, 2 ** 31) : config.seed;
  if (config.dryRun) {
    const schedule = chaosSchedule({ seed, timeSeconds: config.time, nemeses, groups: config.groups });
    const lines = [
      ...schedule.faults.map((fault) => JSON.stringify(fault)),
      ...schedule.replacements.map((replacement) => JSON.stringify({ nemesis: 'member', ...replacement })),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    process.stderr.write(
      `chaos: seed ${seed}: ${schedule.faults.length} faults, ${schedule.replacements.length} replacements\n`,
    );
    return 0;
  }
  const result = await runChaos({
    timeSeconds: config.time,
    nemeses,
    seed,
    clients: config.clients,
    keysActive: config.keys,
    operationsPerKeyMax: config.operationsPerKey,
    requestTimeoutMs: config.requestTimeout,
    shape,
    nodes: config.nodes,
    groups: config.groups,
    replicasPerGroup: config.replicasPerGroup,
    readMode: config.readMode as 'readindex' | 'lease',
    resultsRoot: config.results,
    checkTimeBudgetMs: config.checkTimeBudget,
    keepData: config.keepData,
    serving: {
      windowSeconds: config.servingWindow,
      graceSeconds: config.servingGrace,
      operationsMin: config.servingOperationsMin,
    },
    log: (line) => process.stderr.write(`${line}\n`),
    commandLine: `npm run chaos -- ${argv.join(' ')}${config.seed === 0 ? ` (seed ${seed} picked)` : ''}`,
  });
  process.stdout.write(`${result.finalLine}\n`);
  if (result.passed) return 0;
  const onlyUndecided =
    result.linearizable === 'unknown' &&
    result.lostWrites.length === 0 &&
    result.unexpectedExits.length === 0 &&
    result.errors.length === 0;
  return onlyUndecided ? 2 : 1;
}
