/**
 * One chaos run: a local cluster (nodes hosting many groups, or one process per replica) whose
 * peer links pass through a fault-injecting proxy, the register workload through the gateway, the
 * nemeses, then heal, final reads, the linearizability check and the report.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { checkHistory, formatHistoryCheck, type HistoryCheck } from '@impulse/common';
import { mountpointsUnder, powerBackingFolderName, type ProcessExit } from '@impulse/local-cluster';
import { SeededRandom } from '../random.js';
import { createResultsDirectory, writeResultFiles } from '../results-directory.js';
import { renderChaosHtml, renderChaosPng, type ChaosSecond } from './chaos-report.js';
import { BypassWatch } from './bypass-watch.js';
import { startChaosCluster, type ChaosCluster, type ChaosShape } from './chaos-cluster.js';
import type { FaultNetwork } from './fault-network.js';
import {
  clientStream,
  planFaultSchedule,
  streamSeed,
  type FaultSchedule,
  type NemesisName,
} from './fault-schedule.js';
import { Nemesis, type FaultRecord } from './nemesis.js';
import { checkServing, type ServingOptions } from './serving-check.js';
import { ReplicaHealthWatch, describeReplicaFailure } from './replica-health-watch.js';
import { RegisterWorkload, type WorkloadSecond } from './register-workload.js';

export interface ChaosRunOptions {
  readonly timeSeconds: number;
  readonly nemeses: ReadonlySet<NemesisName>;
  readonly seed: number;
  readonly clients: number;
  readonly keysActive: number;
  readonly operationsPerKeyMax: number;
  readonly requestTimeoutMs: number;
  /** Nodes hosting many groups (the production shape), or one process per replica. */
  readonly shape: ChaosShape;
  /** Node processes (`nodes` shape only). */
  readonly nodes: number;
  readonly groups: number;
  readonly replicasPerGroup: number;
  /** The replicas' --read-mode. */
  readonly readMode: 'readindex' | 'lease';
  readonly resultsRoot: string;
  readonly checkTimeBudgetMs: number;
  readonly keepData: boolean;
  /**
   * Liveness: every fault-free stretch (no kill, pause, partition or power cut in effect), past its first
   * `servingGraceSeconds`, must complete at least `servingOperationsMin` operations in every
   * `servingWindowSeconds`. The run ends with such a stretch (the workload goes on after the heal).
   */
  readonly serving: ServingOptions;
  /**
   * Called once the cluster is up, and awaited before the workload starts (tests use it to
   * sabotage a run: a process killed behind the tool's back, a planted bug).
   */
  readonly onClusterStarted?: (cluster: ChaosCluster) => void | Promise<void>;
  /** Progress and nemesis lines (stderr for the command). */
  readonly log: (line: string) => void;
  /** The command line, for the report. */
  readonly commandLine: string;
}

export type Verdict = 'true' | 'false' | 'unknown';

export interface ChaosRunResult {
  readonly operations: number;
  readonly faults: number;
  readonly linearizable: Verdict;
  readonly lostWrites: readonly string[];
  /** Exits of a replica's or node's process, or of the gateway, that no nemesis caused. */
  readonly unexpectedExits: readonly ProcessExit[];
  /**
   * Why the run failed besides the counts of the final line: a nemesis action that failed, a
   * fault-free window with too few successful operations, final reads that never succeeded.
   */
  readonly errors: readonly string[];
  /** True only when linearizable, nothing lost, no unexpected exit and no error. */
  readonly passed: boolean;
  readonly resultsDirectory: string;
  /**
   * `chaos: <ops> ops, <faults> faults, linearizable: <verdict>, lost acknowledged writes: <n>,
   * unexpected exits: <n>`, followed by `; failed: <errors>` when errors failed the run.
   */
  readonly finalLine: string;
}

const host = '127.0.0.1';
const recoveryTimeoutMs = 60_000;
/** The gateway's per-attempt timeout, given explicitly: short pauses must stay under it. */
const gatewayUpstreamTimeoutMs = 2_000;
/**
 * The replicas' election timeout with their defaults (10 ticks of 100 ms, randomised up to twice
 * that): long pauses last several of them.
 */
const electionTimeoutSeconds = 1;

/** The inputs of the fault schedule of a run: everything but the seed comes from these constants. */
export function chaosSchedule(
  options: Pick<ChaosRunOptions, 'seed' | 'timeSeconds' | 'nemeses' | 'groups'>,
): FaultSchedule {
  return planFaultSchedule({
    seed: options.seed,
    timeSeconds: options.timeSeconds,
    enabled: options.nemeses,
    groups: Array.from({ length: options.groups }, (_, index) => `g${index + 1}`),
    faultSecondsMin: 2,
    faultSecondsMax: 8,
    // Short: the gateway's attempt on a paused leader is still waiting when it resumes.
    pauseShortSecondsMin: 0.1,
    pauseShortSecondsMax: (0.75 * gatewayUpstreamTimeoutMs) / 1000,
    // Long: the group elects another leader meanwhile, and the old one resumes thinking it leads.
    pauseLongSecondsMin: 3 * electionTimeoutSeconds,
    pauseLongSecondsMax: 10 * electionTimeoutSeconds,
    quietSecondsMin: 1,
    quietSecondsMax: 4,
    memberIntervalSecondsMin: 10,
    memberIntervalSecondsMax: 25,
  });
}

export async function runChaos(options: ChaosRunOptions): Promise<ChaosRunResult> {
  const schedule = chaosSchedule(options);
  const clientRandoms = new Map<number, SeededRandom>();
  const randomOf = (client: number): (() => number) => {
    let random = clientRandoms.get(client);
    if (random === undefined) {
      random = new SeededRandom(streamSeed(options.seed, clientStream(client)));
      clientRandoms.set(client, random);
    }
    const stream = random;
    return () => stream.nextDouble();
  };
  const directory = await createResultsDirectory(options.resultsRoot, `chaos-${options.seed}`);
  const dataDirectory = join(directory, 'cluster');
  const log = (line: string): void => options.log(line);
  log(`chaos: seed ${options.seed}, results in ${directory}`);

  let network: FaultNetwork | undefined;
  let cluster: ChaosCluster | undefined;
  let workload: RegisterWorkload | undefined;
  const historyStream = createWriteStream(join(directory, 'history.jsonl'));
  try {
    ({ cluster, network } = await startChaosCluster({
      shape: options.shape,
      nodes: options.nodes,
      groups: options.groups,
      replicasPerGroup: options.replicasPerGroup,
      dataDirectory,
      host,
      // A power cut needs every process's data directory on a file system that can lose power.
      powerLoss: options.nemeses.has('power'),
      onUnexpectedExit: (exit) =>
        log(
          `chaos: UNEXPECTED EXIT of ${exit.name} (pid ${String(exit.pid)}, ${exit.signal === null ? `code ${String(exit.exitCode)}` : `signal ${exit.signal}`}); its last log lines:\n${exit.lastLogLines.map((line) => `  ${line}`).join('\n')}`,
        ),
      // Small snapshots, so that restarted and new replicas catch up by snapshot under faults too.
      shardNodeArguments: [
        '--snapshot-entries=1000',
        '--snapshot-catch-up-entries=200',
        `--read-mode=${options.readMode}`,
      ],
      // The gateway gives up before the clients do, so that most failures carry its error code.
      gatewayArguments: [
        `--request-deadline=${Math.max(100, options.requestTimeoutMs - 1_000)}`,
        `--upstream-timeout=${gatewayUpstreamTimeoutMs}`,
      ],
    }));
    const activeNetwork = network;
    log(
      `chaos: ${options.shape === 'nodes' ? `${options.nodes} nodes hosting ` : ''}${options.groups} groups × ${options.replicasPerGroup} replicas (${options.readMode} reads), gateway ${cluster.gatewayUrl}, ` +
        `${options.clients} clients, nemeses ${[...options.nemeses].join(',') || 'none'}, ${options.timeSeconds} s`,
    );

    const activeWorkload = new RegisterWorkload({
      gatewayUrl: cluster.gatewayUrl,
      clients: options.clients,
      keysActive: options.keysActive,
      operationsPerKeyMax: options.operationsPerKeyMax,
      requestTimeoutMs: options.requestTimeoutMs,
      uniqueWriteFraction: 0.1,
      backoffMs: 250,
      keyPrefix: `chaos-${options.seed}`,
      randomOf,
      onEvent: (event) => historyStream.write(`${JSON.stringify(event)}\n`),
    });
    workload = activeWorkload;
    const nemesis = new Nemesis(cluster, network, {
      schedule,
      nowSeconds: () => activeWorkload.nowMs() / 1000,
      log,
    });
    const startedCluster = cluster;
    // Every peer link must pass through the proxy for the whole run, or a partition is not one.
    const bypassWatch = new BypassWatch({
      listenPorts: () => startedCluster.peerListenPorts(),
      proxyConnections: () => activeNetwork.upstreamConnections(),
      nowSeconds: () => activeWorkload.nowMs() / 1000,
    });
    bypassWatch.start();
    // A replica that fails inside a node that runs on is no exit: it is watched for here.
    const healthWatch = new ReplicaHealthWatch({
      nodes: () => startedCluster.healthTargets(),
      nowSeconds: () => activeWorkload.nowMs() / 1000,
      onFailure: (failure) => log(`chaos: REPLICA FAILED: ${describeReplicaFailure(failure)}`),
    });
    healthWatch.start();
    await options.onClusterStarted?.(cluster);

    activeWorkload.start();
    nemesis.start();
    const progress = setInterval(() => {
      const counts = activeWorkload.outcome().counts;
      log(
        `chaos: ${Math.round(activeWorkload.nowMs() / 1000)}/${options.timeSeconds} s, ` +
          `${counts.ok} ok, ${counts.info} indeterminate, ${counts.fail} failed, ${nemesis.faultCount} faults`,
      );
    }, 5_000);
    await new Promise((resolve) => setTimeout(resolve, options.timeSeconds * 1000));
    clearInterval(progress);

    log('chaos: healing every fault');
    await nemesis.stop();
    // The run ends fault-free for a grace and a window: a cluster that no longer serves fails here.
    const healedSeconds = activeWorkload.nowMs() / 1000;
    const tailSeconds = options.serving.graceSeconds + options.serving.windowSeconds + 1;
    log(`chaos: ${tailSeconds} s of workload without faults`);
    await new Promise((resolve) => setTimeout(resolve, tailSeconds * 1000));
    await activeWorkload.stop();
    const workloadEndSeconds = activeWorkload.nowMs() / 1000;
    await bypassWatch.stop();
    const errors: string[] = [...nemesis.errors];
    if (bypassWatch.unavailable !== undefined) {
      log(`chaos: peer connections past the proxy not counted: ${bypassWatch.unavailable}`);
    } else {
      log(`chaos: peer connections that bypassed the proxy: ${bypassWatch.bypasses.length}`);
    }
    if (bypassWatch.bypasses.length > 0) {
      errors.push(
        `${bypassWatch.bypasses.length} peer connection(s) bypassed the fault proxy: ` +
          bypassWatch.bypasses
            .slice(0, 5)
            .map(
              (bypass) =>
                `port ${bypass.remotePort} -> ${bypass.listenPort} at ${bypass.seenSeconds.toFixed(1)} s`,
            )
            .join(', '),
      );
    }
    let lostWrites: string[] = [];
    try {
      await waitForLeaders(cluster);
      log('chaos: final reads');
      lostWrites = await activeWorkload.finalReads();
    } catch (error) {
      errors.push(`final reads: ${(error as Error).message}`);
    }
    const outcome = activeWorkload.outcome();
    errors.push(
      ...checkServing({
        faults: nemesis.faults.filter((fault) => fault.nemesis !== 'member'),
        okPerSecond: outcome.seconds.map((second) => second.ok),
        endSeconds: workloadEndSeconds,
        options: options.serving,
      }),
    );
    // After the final reads every node has been up for a while: the last reading sees them all.
    await healthWatch.stop();
    errors.push(
      ...healthWatch.failures.map((failure) => `replica failed: ${describeReplicaFailure(failure)}`),
    );
    const unexpectedExits = [...cluster.unexpectedExits];
    log(
      `chaos: healed at ${healedSeconds.toFixed(1)} s, workload stopped at ${workloadEndSeconds.toFixed(1)} s`,
    );

    log(`chaos: checking ${outcome.events.length} history events`);
    const check = checkHistory(outcome.events, { timeBudgetMs: options.checkTimeBudgetMs });
    const linearizable = verdictOf(check);
    const checkText = formatHistoryCheck(check).text;
    const operations = outcome.counts.ok + outcome.counts.fail + outcome.counts.info;
    const passed =
      linearizable === 'true' &&
      lostWrites.length === 0 &&
      unexpectedExits.length === 0 &&
      errors.length === 0;
    const finalLine =
      `chaos: ${operations} ops, ${nemesis.faultCount} faults, linearizable: ${linearizable}, ` +
      `lost acknowledged writes: ${lostWrites.length}, unexpected exits: ${unexpectedExits.length}` +
      (errors.length === 0 ? '' : `; failed: ${errors.length} error(s), first: ${errors[0] ?? ''}`);

    const summaryLines = [
      `seed ${options.seed}; nemeses ${[...options.nemeses].join(',') || 'none'}; ${options.timeSeconds} s; ${options.clients} clients`,
      `shape: ${options.shape === 'nodes' ? `${options.nodes} nodes hosting ` : 'a process per replica, '}${options.groups} groups × ${options.replicasPerGroup} replicas`,
      `operations: ${outcome.counts.ok} ok, ${outcome.counts.info} indeterminate, ${outcome.counts.fail} failed`,
      `faults: ${nemesis.faultCount}`,
      `linearizable: ${linearizable}`,
      `lost acknowledged writes: ${lostWrites.length} of ${outcome.acknowledgedUniqueWrites.size}`,
      `unexpected exits: ${unexpectedExits.length}${unexpectedExits.length === 0 ? '' : ` (${unexpectedExits.map((exit) => exit.name).join(', ')})`}`,
      `errors: ${errors.length}`,
      `command: ${options.commandLine}`,
    ];
    const reportInput = {
      title: `chaos seed=${options.seed} nemesis=${[...options.nemeses].join(',') || 'none'}`,
      summaryLines,
      seconds: outcome.seconds.map(summarizeSecond),
      faults: nemesis.faults.map(toInterval),
      anomalies: [
        ...(linearizable === 'true' ? [] : [checkText]),
        ...(lostWrites.length === 0 ? [] : [`lost acknowledged writes:\n${lostWrites.join('\n')}`]),
        ...unexpectedExits.map(
          (exit) =>
            `unexpected exit of ${exit.name} (pid ${String(exit.pid)}, ${exit.signal === null ? `code ${String(exit.exitCode)}` : `signal ${exit.signal}`}), last log lines:\n${exit.lastLogLines.join('\n')}`,
        ),
        ...errors,
      ],
    };
    await writeResultFiles(directory, [
      ['report.html', renderChaosHtml(reportInput)],
      ['report.png', renderChaosPng(reportInput)],
      ['check.txt', `${checkText}\n`],
      ['faults.json', `${JSON.stringify(nemesis.faults, null, 2)}\n`],
      ['schedule.json', `${JSON.stringify(schedule, null, 2)}\n`],
      [
        'summary.json',
        `${JSON.stringify(
          {
            seed: options.seed,
            timeSeconds: options.timeSeconds,
            nemeses: [...options.nemeses],
            clients: options.clients,
            counts: outcome.counts,
            faults: nemesis.faultCount,
            linearizable,
            lostWrites,
            unexpectedExits,
            errors,
            passed,
            serving: options.serving,
            shape: options.shape,
            ...(options.shape === 'nodes' ? { nodes: options.nodes } : {}),
            groups: options.groups,
            replicasPerGroup: options.replicasPerGroup,
            proxy: activeNetwork.stats(),
            failedReplicas: healthWatch.failures,
            peerConnectionsBypassingProxy:
              bypassWatch.unavailable === undefined ? bypassWatch.bypasses : bypassWatch.unavailable,
          },
          null,
          2,
        )}\n`,
      ],
    ]);
    log(`chaos: ${checkText.split('\n').join('\nchaos: ')}`);
    for (const error of errors) log(`chaos: error: ${error}`);
    log(`chaos: report ${join(directory, 'report.html')}`);
    // Stopping the cluster also unmounts the processes' power-loss file systems, which must be gone
    // before their folders are removed.
    const dataFolderNames = cluster.dataFolderNames();
    await cluster.stop();
    cluster = undefined;
    if (passed && !options.keepData) await removeReplicaData(dataDirectory, dataFolderNames, log);
    return {
      operations,
      faults: nemesis.faultCount,
      linearizable,
      lostWrites,
      unexpectedExits,
      errors,
      passed,
      resultsDirectory: directory,
      finalLine,
    };
  } finally {
    workload?.close();
    await cluster?.stop();
    await network?.close();
    await new Promise((resolve) => historyStream.end(resolve));
  }
}

/**
 * Removes the replicas' data of a run that passed (the logs stay): it is only disk space. Nothing
 * is removed while a mount is left under the data root (a power-loss file system that did not
 * unmount): `rm` would go through it, or fail halfway on a dead one.
 */
async function removeReplicaData(
  dataDirectory: string,
  folderNames: readonly string[],
  log: (line: string) => void,
): Promise<void> {
  const mounted = await mountpointsUnder(dataDirectory);
  if (mounted.length > 0) {
    log(`chaos: replica data kept, since a file system is still mounted at ${mounted.join(', ')}`);
    return;
  }
  for (const folderName of folderNames) {
    await rm(join(dataDirectory, folderName), { recursive: true, force: true });
  }
  await rm(join(dataDirectory, powerBackingFolderName), { recursive: true, force: true });
}

function verdictOf(check: HistoryCheck): Verdict {
  if (check.result === 'linearizable') return 'true';
  return check.result === 'not-linearizable' ? 'false' : 'unknown';
}

function summarizeSecond(second: WorkloadSecond): ChaosSecond {
  const sorted = [...second.latenciesMs].sort((a, b) => a - b);
  const at = (quantile: number): number | undefined =>
    sorted.length === 0
      ? undefined
      : sorted[Math.min(sorted.length - 1, Math.floor(quantile * sorted.length))];
  return {
    ok: second.ok,
    fail: second.fail,
    info: second.info,
    latencyP50Ms: at(0.5),
    latencyP99Ms: at(0.99),
    latencyMaxMs: sorted.at(-1),
  };
}

function toInterval(fault: FaultRecord): {
  startSeconds: number;
  endSeconds: number | undefined;
  nemesis: string;
  description: string;
} {
  return {
    startSeconds: fault.startSeconds,
    endSeconds: fault.endSeconds,
    nemesis: fault.nemesis,
    description: fault.description,
  };
}

/** After the heal, every group must elect a leader again before the final reads. */
async function waitForLeaders(cluster: ChaosCluster): Promise<void> {
  await Promise.all(cluster.groupIds.map((group) => cluster.leaderOf(group, recoveryTimeoutMs)));
}
