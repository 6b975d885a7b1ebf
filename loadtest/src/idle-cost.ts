import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalNodeCluster } from '@impulse/local-cluster';
import { median } from './median.js';
import { waitForLeaders } from './node-status.js';
import { processCpuSeconds, processRssBytes } from './process-cpu.js';
import { countersBetween, readRaftCounters, type RaftCounters } from './raft-counters.js';

/** One process of an idle cluster over one measurement window. */
export interface IdleSample {
  /** Groups of the cluster. */
  readonly groups: number;
  readonly round: number;
  /** `n1`, `n2`, ... or `gateway`. */
  readonly process: string;
  /** Replicas the process hosts (0 for the gateway). */
  readonly hostedReplicas: number;
  readonly cpuSeconds: number;
  readonly windowSeconds: number;
  readonly rssBytes: number;
}

/** One cluster size's idle cost: medians over rounds of the nodes' means. */
export interface IdleSummary {
  readonly groups: number;
  readonly rounds: number;
  /** Replicas each node hosts (the mean over nodes). */
  readonly hostedReplicasPerNode: number;
  /** A node's CPU over the window, in percent of one core. */
  readonly nodeCpuPercent: number;
  /** `nodeCpuPercent` over the replicas it hosts: the node's whole cost shared by its groups. */
  readonly cpuPercentPerHostedGroup: number;
  readonly nodeRssMiB: number;
  readonly rssMiBPerHostedGroup: number;
  readonly gatewayCpuPercent: number;
  /**
   * What one more hosted group costs: the change in a node's CPU from the smallest cluster
   * measured, over the change in hosted replicas (absent for the smallest itself).
   */
  readonly marginalCpuPercentPerGroup?: number;
  readonly marginalRssMiBPerGroup?: number;
  /** Raft messages a node sent per second (heartbeats and their responses, mostly). */
  readonly messagesPerSecondPerNode?: number;
  /** Frames a node sent per second on its peer connections. */
  readonly framesPerSecondPerNode?: number;
}

/** The peer traffic of one idle window, summed over the nodes. */
export interface IdleTraffic {
  readonly groups: number;
  readonly round: number;
  readonly nodes: number;
  readonly windowSeconds: number;
  readonly messagesSent: number;
  readonly framesSent: number;
}

const mebibyte = 1024 * 1024;

/** Summarises idle samples (and the windows' traffic) by cluster size, smallest first. */
export function summariseIdle(
  samples: readonly IdleSample[],
  traffic: readonly IdleTraffic[] = [],
): IdleSummary[] {
  const sizes = [...new Set(samples.map((sample) => sample.groups))].sort((a, b) => a - b);
  const summaries = sizes.map((groups) => {
    const ofSize = samples.filter((sample) => sample.groups === groups);
    const rounds = [...new Set(ofSize.map((sample) => sample.round))];
    const perRound = rounds.map((round) => {
      const inRound = ofSize.filter((sample) => sample.round === round);
      const nodes = inRound.filter((sample) => sample.process !== 'gateway');
      const gateway = inRound.find((sample) => sample.process === 'gateway');
      const mean = (values: number[]): number =>
        values.length === 0 ? Number.NaN : values.reduce((sum, value) => sum + value, 0) / values.length;
      return {
        cpuPercent: mean(nodes.map((sample) => (sample.cpuSeconds / sample.windowSeconds) * 100)),
        rssMiB: mean(nodes.map((sample) => sample.rssBytes / mebibyte)),
        hosted: mean(nodes.map((sample) => sample.hostedReplicas)),
        gatewayCpuPercent:
          gateway === undefined ? Number.NaN : (gateway.cpuSeconds / gateway.windowSeconds) * 100,
      };
    });
    const hostedReplicasPerNode = median(perRound.map((round) => round.hosted));
    const nodeCpuPercent = median(perRound.map((round) => round.cpuPercent));
    const nodeRssMiB = median(perRound.map((round) => round.rssMiB));
    const windows = traffic.filter((entry) => entry.groups === groups && entry.windowSeconds > 0);
    const perNodePerSecond = (count: (entry: IdleTraffic) => number): number =>
      median(windows.map((entry) => count(entry) / entry.windowSeconds / entry.nodes));
    return {
      ...(windows.length === 0
        ? {}
        : {
            messagesPerSecondPerNode: perNodePerSecond((entry) => entry.messagesSent),
            framesPerSecondPerNode: perNodePerSecond((entry) => entry.framesSent),
          }),
      groups,
      rounds: rounds.length,
      hostedReplicasPerNode,
      nodeCpuPercent,
      cpuPercentPerHostedGroup: nodeCpuPercent / hostedReplicasPerNode,
      nodeRssMiB,
      rssMiBPerHostedGroup: nodeRssMiB / hostedReplicasPerNode,
      gatewayCpuPercent: median(perRound.map((round) => round.gatewayCpuPercent)),
    };
  });
  const smallest = summaries[0];
  return summaries.map((summary) =>
    smallest === undefined || summary.hostedReplicasPerNode <= smallest.hostedReplicasPerNode
      ? summary
      : {
          ...summary,
          marginalCpuPercentPerGroup:
            (summary.nodeCpuPercent - smallest.nodeCpuPercent) /
            (summary.hostedReplicasPerNode - smallest.hostedReplicasPerNode),
          marginalRssMiBPerGroup:
            (summary.nodeRssMiB - smallest.nodeRssMiB) /
            (summary.hostedReplicasPerNode - smallest.hostedReplicasPerNode),
        },
  );
}

export interface IdleRunOptions {
  readonly nodes: number;
  readonly groups: number;
  readonly replicasPerGroup: number;
  readonly engine: 'leveldb' | 'memory';
  /** After every group has a leader, wait this long before the window (start-up work settles). */
  readonly settleMs: number;
  /** The measurement window. */
  readonly windowMs: number;
  readonly round: number;
  readonly log: (line: string) => void;
}

/** What one idle run measured: a sample per process, and the peer traffic of the window. */
export interface IdleRun {
  readonly samples: IdleSample[];
  /** From starting the cluster (every node at once, and the gateway) to every group having a leader. */
  readonly startSeconds: number;
  /**
   * Node n1 killed (`kill -9`) after the window and started again on its data: from spawning it
   * to its `/readyz` answering 200, which it does once it has opened every replica it hosts.
   */
  readonly restartSeconds: number;
  /** Raft messages and frames the nodes sent during the window (heartbeats, mostly). */
  readonly raft: RaftCounters;
}

/** The time a cluster may take to start and elect a leader in every group (the bench's own bound). */
export function startTimeoutMs(groups: number): number {
  return 60_000 + 500 * groups;
}

/**
 * Starts `nodes` nodes hosting `groups` groups and a gateway, with no traffic; once every group has
 * a leader and `settleMs` has passed, reads each process's CPU time (/proc/<pid>/stat) at the start
 * and the end of the window, and its RSS at the end. Then kills node n1 and times its restart.
 */
export async function measureIdle(options: IdleRunOptions): Promise<IdleRun> {
  const dataDirectory = await mkdtemp(join(tmpdir(), 'impulse-idle-'));
  const startedMs = Date.now();
  let cluster: LocalNodeCluster | undefined;
  try {
    cluster = await LocalNodeCluster.start({
      nodes: options.nodes,
      groups: options.groups,
      replicasPerGroup: options.replicasPerGroup,
      dataDirectory,
      engine: options.engine,
      gatewayPort: 0,
      nodeBasePort: 0,
      logLevel: 'warn',
      readyTimeoutMs: startTimeoutMs(options.groups),
    });
    const nodes = cluster.nodes;
    await waitForLeaders(nodes, cluster.adminHeaders(), cluster.groupIds, startTimeoutMs(options.groups));
    const startSeconds = (Date.now() - startedMs) / 1000;
    options.log(
      `idle: round ${options.round}, ${options.groups} groups: started and led in ${startSeconds.toFixed(1)} s; settling ${options.settleMs / 1000} s, then measuring ${options.windowMs / 1000} s`,
    );
    await new Promise((resolve) => setTimeout(resolve, options.settleMs));
    const processes = [
      ...nodes.map((node) => ({ name: node.nodeId, pid: node.child?.pid, hosted: node.replicas.length })),
      { name: 'gateway', pid: cluster.gateway?.child?.pid, hosted: 0 },
    ];
    const countersBefore = await readRaftCounters(nodes.map((node) => node.url));
    const windowStartMs = performance.now();
    const cpuBefore = processes.map((entry) => processCpu(entry.pid));
    await new Promise((resolve) => setTimeout(resolve, options.windowMs));
    const cpuAfter = processes.map((entry) => processCpu(entry.pid));
    const windowSeconds = (performance.now() - windowStartMs) / 1000;
    const countersAfter = await readRaftCounters(nodes.map((node) => node.url));
    // After the window, so that the restart's work is not in it.
    const restarted = nodes[0] as (typeof nodes)[number];
    await cluster.kill(restarted.nodeId);
    const restartStartMs = performance.now();
    await cluster.restart(restarted.nodeId);
    const restartSeconds = (performance.now() - restartStartMs) / 1000;
    options.log(
      `idle: round ${options.round}, ${options.groups} groups: ${restarted.nodeId} killed and restarted (spawn to /readyz) in ${restartSeconds.toFixed(1)} s`,
    );
    const samples = processes.map((entry, index) => ({
      groups: options.groups,
      round: options.round,
      process: entry.name,
      hostedReplicas: entry.hosted,
      cpuSeconds: (cpuAfter[index] ?? 0) - (cpuBefore[index] ?? 0),
      windowSeconds,
      rssBytes: entry.pid === undefined ? 0 : (processRssBytes(entry.pid) ?? 0),
    }));
    return {
      samples,
      startSeconds,
      restartSeconds,
      raft: countersBetween(countersBefore, countersAfter),
    };
  } finally {
    await cluster?.stop();
    await rm(dataDirectory, { recursive: true, force: true });
  }
}

function processCpu(pid: number | undefined): number {
  if (pid === undefined) throw new Error('a process of the cluster is not running');
  const seconds = processCpuSeconds(pid);
  if (seconds === undefined) throw new Error(`process ${pid} is gone`);
  return seconds;
}
