import { performance } from 'node:perf_hooks';
import { slotTableOf, type ClusterConfig } from '@impulse/common';
import type { LocalNodeCluster } from '@impulse/local-cluster';
import { median } from './median.js';
import { fetchStatuses, groupsBehind, leadersByGroup, waitForLeaders } from './node-status.js';

/** One group's failover: from the `kill -9` of its leader's node to a new leader and a write. */
export interface GroupFailover {
  readonly round: number;
  /** The node killed. */
  readonly victim: string;
  readonly groupId: string;
  /** The node whose replica leads after the kill. */
  readonly newLeader?: string;
  /** Seconds from the kill to the first status poll that showed a leader on another node. */
  readonly leaderSeconds?: number;
  /** Seconds from the kill to the answer of the first write through the gateway that succeeded. */
  readonly writeSeconds?: number;
  /** Writes through the gateway that failed (an error status, or no answer in time). */
  readonly failedWrites: number;
}

/** One round: the node killed, its groups' failovers, and how long it took to rejoin. */
export interface FailoverRound {
  readonly round: number;
  readonly victim: string;
  readonly groups: readonly GroupFailover[];
  /** Seconds from the restart to every replica of the node running and caught up. */
  readonly catchUpSeconds?: number;
}

export interface FailoverSummary {
  readonly rounds: number;
  /** Group failovers measured (a group per group the killed nodes led, each round). */
  readonly failovers: number;
  /** Failovers that had no new leader, or no successful write, within the round's time limit. */
  readonly unfinished: number;
  readonly writeMaxSeconds: number;
  readonly writeMedianSeconds: number;
  readonly leaderMaxSeconds: number;
  readonly leaderMedianSeconds: number;
  /** The slowest group's write of each round. */
  readonly roundMaxSeconds: readonly number[];
}

/** Summarises every round's failovers: max and median over all groups of all rounds. */
export function summariseFailovers(rounds: readonly FailoverRound[]): FailoverSummary {
  const all = rounds.flatMap((round) => round.groups);
  const writes = all.flatMap((failover) =>
    failover.writeSeconds === undefined ? [] : [failover.writeSeconds],
  );
  const leaders = all.flatMap((failover) =>
    failover.leaderSeconds === undefined ? [] : [failover.leaderSeconds],
  );
  const max = (values: readonly number[]): number =>
    values.length === 0 ? Number.NaN : values.reduce((left, right) => Math.max(left, right));
  return {
    rounds: rounds.length,
    failovers: all.length,
    unfinished: all.filter(
      (failover) => failover.writeSeconds === undefined || failover.leaderSeconds === undefined,
    ).length,
    writeMaxSeconds: max(writes),
    writeMedianSeconds: median(writes),
    leaderMaxSeconds: max(leaders),
    leaderMedianSeconds: median(leaders),
    roundMaxSeconds: rounds.map((round) =>
      max(round.groups.map((failover) => failover.writeSeconds ?? Number.POSITIVE_INFINITY)),
    ),
  };
}

/**
 * The node to kill: the one that leads the most groups; among equals, the `round`-th in turn, so
 * that the rounds do not always kill the same node.
 */
export function chooseVictim(
  leaders: ReadonlyMap<string, string>,
  nodeIds: readonly string[],
  round: number,
): string {
  const led = new Map<string, number>(nodeIds.map((nodeId) => [nodeId, 0]));
  for (const nodeId of leaders.values()) led.set(nodeId, (led.get(nodeId) ?? 0) + 1);
  const most = Math.max(...led.values());
  const candidates = nodeIds.filter((nodeId) => (led.get(nodeId) ?? 0) === most);
  return candidates[(round - 1) % candidates.length] as string;
}

/** A key of each group, as the gateway routes keys: writes to it go to that group. */
export function keyOfEachGroup(cluster: ClusterConfig, prefix = 'failover'): Map<string, string> {
  const table = slotTableOf(cluster);
  const keys = new Map<string, string>();
  const groups = cluster.groups.length;
  for (let index = 0; keys.size < groups; index++) {
    if (index > 1_000_000) throw new Error('no key found for some group');
    const key = `${prefix}-${index}`;
    const groupId = table.groupForKey(key);
    if (!keys.has(groupId)) keys.set(groupId, key);
  }
  return keys;
}

export interface FailoverRoundOptions {
  readonly round: number;
  /** Keys by group (`keyOfEachGroup`). */
  readonly keys: ReadonlyMap<string, string>;
  /** A new write through the gateway to each group that has taken none yet, every this often. */
  readonly probeIntervalMs: number;
  /** How long one write through the gateway may take before it counts as failed. */
  readonly writeTimeoutMs: number;
  /** How long the failovers of a round may take in all. */
  readonly roundTimeoutMs: number;
  /** How long the restarted node may take to have every replica running and caught up. */
  readonly catchUpTimeoutMs: number;
  readonly log: (line: string) => void;
}

const pollIntervalMs = 20;
const statusTimeoutMs = 500;

const sleep = (milliseconds: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, milliseconds));

/** PUT through the gateway; true when it answered 204. */
async function writeThroughGateway(gatewayUrl: string, key: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(`${gatewayUrl}/kv/${encodeURIComponent(key)}`, {
      method: 'PUT',
      body: 'failover',
      headers: { 'content-type': 'application/octet-stream' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.arrayBuffer();
    return response.status === 204;
  } catch {
    return false;
  }
}

/** Waits until a write to every group through the gateway succeeds (the gateway knows every leader). */
export async function writeToEveryGroup(
  gatewayUrl: string,
  keys: ReadonlyMap<string, string>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await Promise.all(
    [...keys].map(async ([groupId, key]) => {
      while (!(await writeThroughGateway(gatewayUrl, key, 2000))) {
        if (Date.now() > deadline) throw new Error(`no write to ${groupId} succeeded within ${timeoutMs} ms`);
        await sleep(100);
      }
    }),
  );
}

/**
 * One round: kills (`kill -9`) the node that leads the most groups, measures for each group it
 * led the time to a new leader (status polls of the other nodes every 20 ms) and to a write
 * through the gateway (a new one every probe interval until one succeeds), then restarts the node and waits
 * until every replica on it has applied what its leader has committed.
 */
export async function runFailoverRound(
  cluster: LocalNodeCluster,
  options: FailoverRoundOptions,
): Promise<FailoverRound> {
  const nodeIds = cluster.nodes.map((node) => node.nodeId);
  const adminHeaders = cluster.adminHeaders();
  const leaders = await waitForLeaders(cluster.nodes, adminHeaders, cluster.groupIds, options.roundTimeoutMs);
  const victim = chooseVictim(leaders, nodeIds, options.round);
  const led = [...leaders].filter(([, nodeId]) => nodeId === victim).map(([groupId]) => groupId);
  const survivors = cluster.nodes.filter((node) => node.nodeId !== victim);
  options.log(
    `round ${options.round}: kill -9 ${victim}, which leads ${led.length} group(s): ${led.join(', ')}`,
  );

  const startMs = performance.now();
  const seconds = (): number => (performance.now() - startMs) / 1000;
  const deadlineMs = startMs + options.roundTimeoutMs;
  await cluster.kill(victim);

  const newLeaders = new Map<string, { nodeId: string; seconds: number }>();
  const watchLeaders = async (): Promise<void> => {
    while (newLeaders.size < led.length && performance.now() < deadlineMs) {
      const statuses = await fetchStatuses(survivors, adminHeaders, statusTimeoutMs);
      const at = seconds();
      for (const [groupId, nodeId] of leadersByGroup(statuses)) {
        if (led.includes(groupId) && nodeId !== victim && !newLeaders.has(groupId)) {
          newLeaders.set(groupId, { nodeId, seconds: at });
        }
      }
      await sleep(pollIntervalMs);
    }
  };
  const gatewayUrl = cluster.gatewayUrl;
  const writeUntilServed = async (groupId: string): Promise<GroupFailover> => {
    const key = options.keys.get(groupId);
    if (key === undefined) throw new Error(`no key for ${groupId}`);
    // Probes overlap: a new write every probe interval, whatever the earlier ones are doing (the
    // gateway may hold one through its retries), so that the first write the group can take is
    // seen within an interval of it.
    let failedWrites = 0;
    let writeSeconds: number | undefined;
    const probes: Promise<void>[] = [];
    while (writeSeconds === undefined && performance.now() < deadlineMs) {
      const timeoutMs = Math.max(1, Math.min(options.writeTimeoutMs, deadlineMs - performance.now()));
      probes.push(
        writeThroughGateway(gatewayUrl, key, timeoutMs).then((written) => {
          if (!written) failedWrites++;
          else writeSeconds ??= seconds();
        }),
      );
      await sleep(options.probeIntervalMs);
    }
    await Promise.all(probes);
    return {
      round: options.round,
      victim,
      groupId,
      failedWrites,
      ...(writeSeconds === undefined ? {} : { writeSeconds }),
    };
  };
  const [, writes] = await Promise.all([watchLeaders(), Promise.all(led.map(writeUntilServed))]);
  const groups = writes.map((failover) => {
    const leader = newLeaders.get(failover.groupId);
    return leader === undefined
      ? failover
      : { ...failover, newLeader: leader.nodeId, leaderSeconds: leader.seconds };
  });

  const restartMs = performance.now();
  await cluster.restart(victim);
  const catchUpDeadline = restartMs + options.catchUpTimeoutMs;
  let catchUpSeconds: number | undefined;
  let behind: string[] = [];
  while (performance.now() < catchUpDeadline) {
    const statuses = await fetchStatuses(cluster.nodes, adminHeaders, 2000);
    const restarted = statuses.find((status) => status.nodeId === victim);
    behind = restarted === undefined ? cluster.groupIds : groupsBehind(restarted, statuses);
    if (behind.length === 0) {
      catchUpSeconds = (performance.now() - restartMs) / 1000;
      break;
    }
    await sleep(100);
  }
  if (catchUpSeconds === undefined) {
    options.log(
      `round ${options.round}: ${victim} had not caught up after ${options.catchUpTimeoutMs / 1000} s (${behind.length} group(s) behind: ${behind.slice(0, 10).join(', ')})`,
    );
  }
  return {
    round: options.round,
    victim,
    groups,
    ...(catchUpSeconds === undefined ? {} : { catchUpSeconds }),
  };
}
