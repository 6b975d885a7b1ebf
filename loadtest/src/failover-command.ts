import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '@impulse/common';
import { LocalNodeCluster } from '@impulse/local-cluster';
import {
  keyOfEachGroup,
  runFailoverRound,
  summariseFailovers,
  writeToEveryGroup,
  type FailoverRound,
  type FailoverSummary,
} from './failover.js';
import { failoverOptions, failoverProgram } from './failover-options.js';
import { startTimeoutMs } from './idle-cost.js';
import { machineInfo } from './machine.js';
import { createResultsDirectory, writeResultFiles } from './results-directory.js';
import { sourceVersion } from './source-version.js';

/** The failover time issue 12 asks for, with the default ticks: a new leader that takes writes within 3 s. */
export const failoverGoalSeconds = 3;

const seconds = (value: number | undefined): string =>
  value === undefined || !Number.isFinite(value) ? 'n/a' : value.toFixed(2);

/** A round's lines: one per group the killed node led, then the round's slowest. */
export function roundLines(round: FailoverRound): string[] {
  const lines = [
    `round ${round.round}: killed ${round.victim}, which led ${round.groups.length} group(s)`,
    `  ${'group'.padEnd(8)}${'new leader'.padEnd(12)}${'leader s'.padStart(10)}${'write s'.padStart(10)}${'failed writes'.padStart(15)}`,
  ];
  for (const failover of round.groups) {
    lines.push(
      `  ${failover.groupId.padEnd(8)}${(failover.newLeader ?? 'none').padEnd(12)}${seconds(failover.leaderSeconds).padStart(10)}` +
        `${seconds(failover.writeSeconds).padStart(10)}${String(failover.failedWrites).padStart(15)}`,
    );
  }
  const writes = round.groups.map((failover) => failover.writeSeconds ?? Number.POSITIVE_INFINITY);
  lines.push(
    `  max ${seconds(writes.length === 0 ? undefined : Math.max(...writes))} s; ${round.victim} restarted and caught up in ${seconds(round.catchUpSeconds)} s`,
  );
  return lines;
}

/**
 * The last line, for scripts: `bench:failover: commit=<c> rounds=<r> groups=<g> failovers=<n>
 * unfinished=<u> write_max_s=<x> write_median_s=<y> leader_max_s=<a> leader_median_s=<b>`.
 */
export function failoverFinalLine(commit: string, groups: number, summary: FailoverSummary): string {
  return (
    `bench:failover: commit=${commit} rounds=${summary.rounds} groups=${groups} failovers=${summary.failovers} ` +
    `unfinished=${summary.unfinished} write_max_s=${seconds(summary.writeMaxSeconds)} write_median_s=${seconds(summary.writeMedianSeconds)} ` +
    `leader_max_s=${seconds(summary.leaderMaxSeconds)} leader_median_s=${seconds(summary.leaderMedianSeconds)}`
  );
}

/** `npm run bench:failover`: returns the exit status (1 when a failover did not finish). */
export async function runFailoverCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const config = parseConfig(failoverProgram, failoverOptions, { argv, env });
  if (config.replicasPerGroup > config.nodes) {
    throw new ConfigError([
      `--replicas-per-group ${config.replicasPerGroup} needs as many nodes, and --nodes is ${config.nodes}: a node hosts at most one replica of a group`,
    ]);
  }
  const source = sourceVersion();
  const machine = machineInfo();
  const commit = `${source.commit}${source.workTreeChanged ? ' (with uncommitted changes)' : ''}`;
  const out = process.stdout;
  const log = (line: string): void => void process.stderr.write(`bench:failover: ${line}\n`);
  out.write(
    `bench:failover: commit ${commit}, ${config.nodes} nodes, ${config.groups} groups of ${config.replicasPerGroup} replicas, engine ${config.engine}, default ticks, ${config.rounds} round(s); ` +
      `${machine.cpuCount} cores (${machine.cpuModel}), load average ${machine.loadAverage1m}\n`,
  );
  const dataDirectory = await mkdtemp(join(tmpdir(), 'impulse-failover-'));
  const rounds: FailoverRound[] = [];
  let cluster: LocalNodeCluster | undefined;
  const onSignal = (): void => {
    void (cluster?.stop() ?? Promise.resolve())
      .then(() => rm(dataDirectory, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    cluster = await LocalNodeCluster.start({
      nodes: config.nodes,
      groups: config.groups,
      replicasPerGroup: config.replicasPerGroup,
      dataDirectory,
      engine: config.engine as 'leveldb' | 'memory',
      gatewayPort: 0,
      nodeBasePort: 0,
      logLevel: 'warn',
      readyTimeoutMs: startTimeoutMs(config.groups),
    });
    const keys = keyOfEachGroup(cluster.clusterConfig());
    await writeToEveryGroup(cluster.gatewayUrl, keys, config.roundTimeout);
    for (let round = 1; round <= config.rounds; round++) {
      const result = await runFailoverRound(cluster, {
        round,
        keys,
        probeIntervalMs: config.probeInterval,
        writeTimeoutMs: config.writeTimeout,
        roundTimeoutMs: config.roundTimeout,
        catchUpTimeoutMs: config.catchUpTimeout,
        log,
      });
      rounds.push(result);
      for (const line of roundLines(result)) out.write(`${line}\n`);
      if (round < config.rounds) await new Promise((resolve) => setTimeout(resolve, config.settle));
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cluster?.stop();
    await rm(dataDirectory, { recursive: true, force: true });
  }
  const summary = summariseFailovers(rounds);
  out.write(
    `failover: ${summary.failovers} group failover(s) over ${summary.rounds} round(s): the first write through the gateway after the kill took ` +
      `at most ${seconds(summary.writeMaxSeconds)} s (median ${seconds(summary.writeMedianSeconds)} s); a new leader at most ${seconds(summary.leaderMaxSeconds)} s ` +
      `(median ${seconds(summary.leaderMedianSeconds)} s); slowest per round: ${summary.roundMaxSeconds.map((value) => seconds(value)).join(', ')} s; ` +
      `${summary.unfinished} unfinished (goal: at most ${failoverGoalSeconds} s: ${summary.unfinished === 0 && summary.writeMaxSeconds <= failoverGoalSeconds ? 'met' : 'not met'})\n`,
  );
  const directory = await createResultsDirectory(config.results, 'failover');
  await writeResultFiles(directory, [
    [
      'result.json',
      `${JSON.stringify({ title: 'Impulse failover', startedAt: new Date().toISOString(), config, machine, source, summary, rounds }, null, 2)}\n`,
    ],
  ]);
  out.write(`commit: ${commit}\n`);
  out.write(`results: ${directory}\n`);
  out.write(`${failoverFinalLine(source.commit, config.groups, summary)}\n`);
  return summary.unfinished > 0 ? 1 : 0;
}
