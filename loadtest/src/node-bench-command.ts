import { ConfigError, parseConfig } from '@impulse/common';
import { runBenchmark, type TargetResult } from './benchmark.js';
import { summarizeRuns, type TargetSummary } from './comparison.js';
import { parseDurationSeconds } from './duration.js';
import {
  measureIdle,
  startTimeoutMs,
  summariseIdle,
  type IdleSample,
  type IdleSummary,
  type IdleTraffic,
} from './idle-cost.js';
import { machineInfo } from './machine.js';
import { median } from './median.js';
import { nodeBenchOptions, nodeBenchProgram, parseGroupCounts } from './node-bench-options.js';
import { createResultsDirectory, writeResultFiles } from './results-directory.js';
import { medianWorkFigures, startWorkMeter, workLine, type WorkFigures } from './run-work.js';
import { sourceVersion } from './source-version.js';
import { startTarget } from './start-target.js';
import type { RunningTarget, TargetName } from './targets/running-target.js';
import { workloads, type DistributionName } from './workload.js';

/** The idle cost a hosted group may have (issue 12): a tenth of a percent of a core. */
export const idleCpuPercentPerGroupGoal = 0.1;
/** The spread cluster's throughput, as a fraction of the base cluster's, it should keep. */
export const spreadThroughputGoal = 0.8;

/** One cluster the throughput measurement runs. */
interface ThroughputShape {
  /** `replicas-3`, `nodes-3`, `nodes-64`. */
  readonly label: string;
  readonly target: TargetName;
  readonly groups: number;
}

/** One shape's throughput over its runs. */
export interface ThroughputSummary extends TargetSummary, WorkFigures {
  readonly groups: number;
  /** CPU seconds of every process (load generator included) per 1,000 operations, median. */
  readonly cpuSecondsPerThousandOperations?: number;
}

/** The order of round `round` (from 1): the list turned by one place per round, so no item always goes first. */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  if (items.length === 0) return [];
  const shift = (round - 1) % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/** `npm run bench:nodes`: returns the exit status (1 when operations failed). */
export async function runNodeBenchCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const config = parseConfig(nodeBenchProgram, nodeBenchOptions, { argv, env });
  if (config.replicasPerGroup > config.nodes) {
    throw new ConfigError([
      `--replicas-per-group ${config.replicasPerGroup} needs as many nodes, and --nodes is ${config.nodes}: a node hosts at most one replica of a group`,
    ]);
  }
  const idleGroups = parseGroupCounts('--idle-groups', config.idleGroups);
  const settleSeconds = parseDurationSeconds('--idle-settle', config.idleSettle, 'allowed');
  const windowSeconds = parseDurationSeconds('--idle-window', config.idleWindow);
  const durationSeconds = parseDurationSeconds('--duration', config.duration);
  const warmupSeconds = parseDurationSeconds('--warmup', config.warmup, 'allowed');
  const measureIdleCost = config.measure !== 'throughput';
  const measureThroughput = config.measure !== 'idle';
  const source = sourceVersion();
  const machine = machineInfo();
  const log = (line: string): void => void process.stderr.write(`bench:nodes: ${line}\n`);
  const out = process.stdout;
  const commit = `${source.commit}${source.workTreeChanged ? ' (with uncommitted changes)' : ''}`;
  out.write(
    `bench:nodes: commit ${commit}, ${config.nodes} nodes, ${config.replicasPerGroup} replicas per group, engine ${config.engine}, ${config.rounds} round(s), ` +
      `${machine.cpuCount} cores (${machine.cpuModel}) shared with the load generator, load average ${machine.loadAverage1m}\n`,
  );

  const idleSamples: IdleSample[] = [];
  const idleTraffic: IdleTraffic[] = [];
  const startSeconds: StartTime[] = [];
  if (measureIdleCost) {
    for (let round = 1; round <= config.rounds; round++) {
      for (const groups of roundOrder(idleGroups, round)) {
        const run = await measureIdle({
          nodes: config.nodes,
          groups,
          replicasPerGroup: config.replicasPerGroup,
          engine: config.engine as 'leveldb' | 'memory',
          settleMs: settleSeconds * 1000,
          windowMs: windowSeconds * 1000,
          round,
          log,
        });
        idleSamples.push(...run.samples);
        idleTraffic.push({
          groups,
          round,
          nodes: config.nodes,
          windowSeconds: run.samples[0]?.windowSeconds ?? 0,
          messagesSent: run.raft.messagesSent,
          framesSent: run.raft.messageFramesSent,
        });
        startSeconds.push({ groups, round, seconds: run.startSeconds, restartSeconds: run.restartSeconds });
      }
    }
  }
  const idle = summariseIdle(idleSamples, idleTraffic);

  const workload = workloads[config.workload];
  const distribution: DistributionName =
    config.distribution === 'default' ? workload.requestDistribution : config.distribution;
  const shapes: ThroughputShape[] = [
    ...(config.replicasShape
      ? [{ label: `replicas-${config.groups}`, target: 'impulse-replicas' as const, groups: config.groups }]
      : []),
    { label: `nodes-${config.groups}`, target: 'impulse', groups: config.groups },
    ...(config.spreadGroups === config.groups
      ? []
      : [{ label: `nodes-${config.spreadGroups}`, target: 'impulse' as const, groups: config.spreadGroups }]),
  ];
  const resultsByShape = new Map<string, TargetResult[]>();
  if (measureThroughput) {
    log(
      `throughput: workload ${workload.name}, distribution ${distribution}, closed loop, ${config.concurrency} in flight, ` +
        `${warmupSeconds > 0 ? `${warmupSeconds} s of warm-up then ` : ''}${durationSeconds} s per run, shapes ${shapes.map((shape) => shape.label).join(', ')}`,
    );
    let current: RunningTarget | undefined;
    const onSignal = (): void => {
      void (current?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      for (let round = 1; round <= config.rounds; round++) {
        for (const shape of roundOrder(shapes, round)) {
          log(`throughput: round ${round}/${config.rounds}: starting ${shape.label}`);
          const running = await startTarget(shape.target, {
            nodes: config.nodes,
            groups: shape.groups,
            replicasPerGroup: config.replicasPerGroup,
            engine: config.engine as 'leveldb' | 'memory',
            readMode: 'readindex',
            client: config.client as 'undici' | 'node',
            connectionsMax: config.concurrency,
            requestTimeoutMs: config.requestTimeout,
            readyTimeoutMs: startTimeoutMs(shape.groups),
          });
          current = running;
          try {
            const result = await runBenchmark(running, {
              workload,
              distribution,
              recordCount: config.recordCount,
              recordBytes: config.recordBytes,
              durationMs: durationSeconds * 1000,
              warmupMs: warmupSeconds * 1000,
              concurrency: config.concurrency,
              rateOperationsPerSecond: 0,
              inflightMax: config.concurrency,
              seed: config.seed,
              meterRunPhase: () => startWorkMeter(running, { countSyncs: config.countSyncs }),
            });
            if (result.work !== undefined && result.workFigures !== undefined) {
              log(workLine(shape.label, result.work, result.workFigures).replace(/^bench: /, ''));
            }
            resultsByShape.set(shape.label, [
              ...(resultsByShape.get(shape.label) ?? []),
              { ...result, target: shape.label },
            ]);
          } finally {
            await running.stop();
            current = undefined;
          }
        }
      }
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
  }
  const throughput: ThroughputSummary[] = measureThroughput
    ? shapes.map((shape) => summariseThroughput(shape, resultsByShape.get(shape.label) ?? []))
    : [];
  const base = throughput.find((summary) => summary.target === `nodes-${config.groups}`);
  // With --spread-groups equal to --groups there is one node cluster, and nothing to compare.
  const spread =
    config.spreadGroups === config.groups
      ? undefined
      : throughput.find((summary) => summary.target === `nodes-${config.spreadGroups}`);
  const spreadRatio =
    base !== undefined && spread !== undefined && base.operationsPerSecond > 0
      ? spread.operationsPerSecond / base.operationsPerSecond
      : undefined;

  if (measureIdleCost) {
    out.write(idleTable(idle, { nodes: config.nodes, settleSeconds, windowSeconds, rounds: config.rounds }));
    out.write(
      startTable(startSeconds, {
        nodes: config.nodes,
        replicasPerGroup: config.replicasPerGroup,
        rounds: config.rounds,
      }),
    );
  }
  if (measureThroughput) {
    out.write(throughputTable(throughput, { workload: workload.name, distribution, rounds: config.rounds }));
    if (spreadRatio !== undefined) {
      out.write(
        `spread: nodes-${config.spreadGroups} / nodes-${config.groups} throughput ${spreadRatio.toFixed(2)} ` +
          `(goal: at least ${spreadThroughputGoal.toFixed(2)}: ${spreadRatio >= spreadThroughputGoal ? 'met' : 'not met'})\n`,
      );
    }
  }
  const directory = await createResultsDirectory(config.results, 'nodes');
  await writeResultFiles(directory, [
    [
      'result.json',
      `${JSON.stringify(
        {
          title: 'Impulse node benchmark',
          startedAt: new Date().toISOString(),
          config: { ...config, idleGroups, settleSeconds, windowSeconds, durationSeconds, warmupSeconds },
          machine,
          source,
          idle: { summaries: idle, samples: idleSamples, traffic: idleTraffic, startSeconds },
          throughput: { summaries: throughput, spreadRatio, results: Object.fromEntries(resultsByShape) },
        },
        null,
        2,
      )}\n`,
    ],
  ]);
  out.write(`commit: ${commit}\n`);
  out.write(`results: ${directory}\n`);
  out.write(`${nodeBenchFinalLine(source.commit, idle, throughput, spreadRatio)}\n`);
  const failedOperations = throughput.some((summary) => summary.errors > 0);
  return failedOperations ? 1 : 0;
}

function summariseThroughput(shape: ThroughputShape, results: readonly TargetResult[]): ThroughputSummary {
  const cpuPerThousand = results.flatMap((result) => {
    const run = result.run;
    if (run === undefined || run.operations === 0 || result.cpuSeconds === undefined) return [];
    const cpu = Object.values(result.cpuSeconds).reduce((sum, seconds) => sum + seconds, 0);
    return [(cpu / run.operations) * 1000];
  });
  return {
    ...summarizeRuns(shape.label, results),
    ...medianWorkFigures(
      results.flatMap((result) => (result.workFigures === undefined ? [] : [result.workFigures])),
    ),
    groups: shape.groups,
    ...(cpuPerThousand.length === 0 ? {} : { cpuSecondsPerThousandOperations: median(cpuPerThousand) }),
  };
}

const figure = (value: number | undefined, digits: number): string =>
  value === undefined || !Number.isFinite(value) ? 'n/a' : value.toFixed(digits);

/** The idle table: one line per cluster size. */
export function idleTable(
  summaries: readonly IdleSummary[],
  settings: { nodes: number; settleSeconds: number; windowSeconds: number; rounds: number },
): string {
  const header: Array<[string, number]> = [
    ['groups', 7],
    ['replicas/node', 14],
    ['node CPU %', 11],
    ['%/group', 9],
    ['marginal %/group', 17],
    ['node RSS MiB', 13],
    ['MiB/group', 10],
    ['marginal MiB/group', 19],
    ['gateway CPU %', 14],
    ['msgs/s/node', 12],
    ['frames/s/node', 14],
  ];
  const lines = [
    `\nidle: ${settings.nodes} nodes, no traffic, CPU in % of one core over a ${settings.windowSeconds} s window after ${settings.settleSeconds} s of settling; medians of ${settings.rounds} round(s) of each node's figures averaged over the nodes`,
    header.map(([name, width]) => name.padStart(width)).join(''),
  ];
  for (const summary of summaries) {
    const cells = [
      String(summary.groups),
      figure(summary.hostedReplicasPerNode, 0),
      figure(summary.nodeCpuPercent, 2),
      figure(summary.cpuPercentPerHostedGroup, 3),
      figure(summary.marginalCpuPercentPerGroup, 4),
      figure(summary.nodeRssMiB, 1),
      figure(summary.rssMiBPerHostedGroup, 2),
      figure(summary.marginalRssMiBPerGroup, 3),
      figure(summary.gatewayCpuPercent, 2),
      figure(summary.messagesPerSecondPerNode, 0),
      figure(summary.framesPerSecondPerNode, 0),
    ];
    lines.push(cells.map((cell, index) => cell.padStart(header[index]?.[1] ?? 0)).join(''));
  }
  for (const summary of summaries) {
    const perGroup = summary.cpuPercentPerHostedGroup;
    const marginal = summary.marginalCpuPercentPerGroup;
    lines.push(
      `goal (at most ${idleCpuPercentPerGroupGoal}% of a core per hosted group) at ${summary.groups} groups: ` +
        `whole node cost per group ${figure(perGroup, 3)}% ${perGroup <= idleCpuPercentPerGroupGoal ? 'met' : 'not met'}` +
        (marginal === undefined
          ? ''
          : `; marginal ${figure(marginal, 4)}% ${marginal <= idleCpuPercentPerGroupGoal ? 'met' : 'not met'}`),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The start times of one idle run. */
export interface StartTime {
  readonly groups: number;
  readonly round: number;
  /** The cluster's start, to every group led (`IdleRun.startSeconds`). */
  readonly seconds: number;
  /** Node n1's restart, spawn to ready (`IdleRun.restartSeconds`). */
  readonly restartSeconds: number;
}

/** The start table: one line per cluster size, medians with the range over rounds. */
export function startTable(
  starts: readonly StartTime[],
  settings: { nodes: number; replicasPerGroup: number; rounds: number },
): string {
  const spread = (values: number[]): string =>
    values.length === 0
      ? 'n/a'
      : `${figure(median(values), 1)} (${figure(Math.min(...values), 1)} to ${figure(Math.max(...values), 1)})`;
  const lines = [
    `\nstart: seconds, median (min to max) of ${settings.rounds} round(s); cluster: ${settings.nodes} nodes and the gateway started at once, to a leader in every group; ` +
      'restart: node n1 killed after the idle window and started again on its data, spawn to /readyz (every hosted replica open)',
    `${'groups'.padStart(7)}${'replicas/node'.padStart(14)}${'cluster s'.padStart(24)}${'restart s'.padStart(24)}`,
  ];
  const sizes = [...new Set(starts.map((start) => start.groups))].sort((a, b) => a - b);
  for (const groups of sizes) {
    const ofSize = starts.filter((start) => start.groups === groups);
    lines.push(
      `${String(groups).padStart(7)}${figure((groups * settings.replicasPerGroup) / settings.nodes, 0).padStart(14)}` +
        `${spread(ofSize.map((start) => start.seconds)).padStart(24)}${spread(ofSize.map((start) => start.restartSeconds)).padStart(24)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The throughput table: one line per shape. */
export function throughputTable(
  summaries: readonly ThroughputSummary[],
  settings: { workload: string; distribution: string; rounds: number },
): string {
  const header: Array<[string, number]> = [
    ['shape', 13],
    ['ops/s', 8],
    ['p50 ms', 9],
    ['p99 ms', 9],
    ['errors', 8],
    ['fsyncs/1k writes/node', 23],
    ['log fsyncs/1k entries', 23],
    ['messages/frame', 16],
    ['CPU s/1k ops', 14],
  ];
  const lines = [
    `\nthroughput: workload ${settings.workload}, distribution ${settings.distribution}, through the gateway; medians of ${settings.rounds} round(s). ` +
      'fsyncs: fdatasync+fsync calls counted in the kernel, per node (the replicas shape: its replica processes counted as the nodes they would fill, one replica of each group on each); ' +
      "log fsyncs: the Raft logs' own count (impulse_raft_log_fsync_duration_seconds_count: a node's shared log, each fsync once), per 1,000 entries committed summed over replicas",
    header.map(([name, width], index) => (index === 0 ? name.padEnd(width) : name.padStart(width))).join(''),
  ];
  for (const summary of summaries) {
    if (summary.runs === 0) {
      lines.push(`${summary.target.padEnd(13)}  not run: ${summary.failure ?? 'unknown reason'}`);
      continue;
    }
    const cells = [
      summary.target,
      String(summary.operationsPerSecond),
      figure(summary.p50Ms, 1),
      figure(summary.p99Ms, 1),
      String(summary.errors),
      figure(summary.syncsPerThousandWritesPerNode, 0),
      figure(summary.logFsyncsPerThousandEntries, 0),
      figure(summary.messagesPerFrame, 2),
      figure(summary.cpuSecondsPerThousandOperations, 2),
    ];
    lines.push(
      cells
        .map((cell, index) =>
          index === 0 ? cell.padEnd(header[0]?.[1] ?? 0) : cell.padStart(header[index]?.[1] ?? 0),
        )
        .join(''),
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The last line, for scripts: `bench:nodes: commit=<c> idle_cpu_percent_per_group=<G>:<x>,...
 * idle_marginal_cpu_percent_per_group=<G>:<x>,... throughput=<shape>:<ops/s>,... spread_ratio=<r>`
 * (n/a for what was not measured).
 */
export function nodeBenchFinalLine(
  commit: string,
  idle: readonly IdleSummary[],
  throughput: readonly ThroughputSummary[],
  spreadRatio: number | undefined,
): string {
  const list = (entries: string[]): string => (entries.length === 0 ? 'n/a' : entries.join(','));
  const perGroup = list(
    idle.map((summary) => `${summary.groups}:${figure(summary.cpuPercentPerHostedGroup, 3)}`),
  );
  const marginal = list(
    idle.flatMap((summary) =>
      summary.marginalCpuPercentPerGroup === undefined
        ? []
        : [`${summary.groups}:${figure(summary.marginalCpuPercentPerGroup, 4)}`],
    ),
  );
  const rates = list(
    throughput.map(
      (summary) => `${summary.target}:${summary.runs === 0 ? 'n/a' : summary.operationsPerSecond}`,
    ),
  );
  return (
    `bench:nodes: commit=${commit} idle_cpu_percent_per_group=${perGroup} idle_marginal_cpu_percent_per_group=${marginal} ` +
    `throughput=${rates} spread_ratio=${figure(spreadRatio, 2)}`
  );
}
