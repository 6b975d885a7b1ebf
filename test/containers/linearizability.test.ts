import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, expect, it, onTestFinished } from 'vitest';
import { checkHistory, formatHistoryCheck, type HistoryEvent } from '@impulse/common';
// Relative imports: the container suite's vitest config aliases only @impulse/common, and these
// two files import nothing else from the workspace.
import { RegisterWorkload } from '../../loadtest/src/chaos/register-workload.js';
import { SeededRandom } from '../../loadtest/src/random.js';
import { rawRequest } from '../support/http.js';
import type { ContainerCluster, ReplicaNode } from './cluster.js';
import type { Faults, Partition } from './faults.js';
import { eventually, startClusterForTest } from './support.js';

/**
 * The seed of the workload's operations and of the nemesis' choices (hold times, which follower).
 * Set IMPULSE_LINEARIZABILITY_SEED to replay those choices; the interleaving of operations and
 * faults still depends on timing, which containers cannot make deterministic.
 */
const seed = Number(process.env['IMPULSE_LINEARIZABILITY_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

/** The clients give up on a request after this; the gateway's deadline is a second shorter. */
const requestTimeoutMs = 5_000;
const gatewayRequestDeadlineMs = 4_000;
const faultHoldMsMin = 3_000;
const faultHoldMsMax = 5_000;
/** Quiet time after a fault is undone, before the next one. */
const quietMs = 2_000;
/** How long a group may take to agree on a leader after a fault is undone. */
const leaderTimeoutMs = 30_000;
/** The checker gives up ('unknown') rather than outlast the test. */
const checkTimeBudgetMs = 60_000;
/**
 * Far below what a healthy run achieves (see the summary line each run prints), yet high enough
 * that a run in which the cluster never really served anything cannot pass as linearizable.
 */
const okOperationsMin = 300;

/** One fault of the schedule, on the workload's clock (the history's times), for the report. */
interface FaultRecord {
  readonly name: string;
  description: string;
  readonly startMs: number;
  endMs: number | undefined;
  /** The leader once the group settled after the undo: shows whether the fault moved leadership. */
  leaderAfter: string | undefined;
}

interface ReplicaStatus {
  readonly replicaId: string;
  readonly role: string;
  readonly term: number;
  readonly leaderReplicaId: string | null;
}

/**
 * The register workload and the linearizability checker of the chaos command, driven over the
 * project image in containers while real faults are injected: SIGKILL and restart, cgroup freeze,
 * removal from the Docker network, and iptables partitions inside the containers' namespaces.
 */
describe('linearizability under container faults', () => {
  it(
    'a replicated group stays linearizable and loses no acknowledged write through every fault',
    { timeout: 240_000 },
    async () => {
      console.log(`linearizability: seed ${seed} (IMPULSE_LINEARIZABILITY_SEED=${seed} replays it)`);
      const { cluster, faults } = await startClusterForTest({
        groups: 1,
        replicasPerGroup: 3,
        // Small snapshots, as the chaos command uses, so that a replica that was away catches up
        // by snapshot under faults too.
        replicaArguments: ['--snapshot-entries=1000', '--snapshot-catch-up-entries=200'],
        // The gateway gives up before the clients do, so that most failures carry its error code.
        gatewayArguments: ['--upstream-timeout=2s', `--request-deadline=${gatewayRequestDeadlineMs}ms`],
      });
      await leaderOf(cluster);

      const workloadRandom = new SeededRandom(seed);
      // A second generator for the nemesis, so that its choices do not shift the workload's.
      const nemesisRandom = new SeededRandom(seed ^ 0x5bd1e995);
      const workload = new RegisterWorkload({
        gatewayUrl: cluster.gatewayUrl,
        clients: 10,
        keysActive: 4,
        operationsPerKeyMax: 100,
        requestTimeoutMs,
        uniqueWriteFraction: 0.1,
        backoffMs: 250,
        keyPrefix: `lin-${seed}`,
        randomOf: () => () => workloadRandom.nextDouble(),
      });
      onTestFinished(async (context) => {
        // A run that stops half-way must not leave clients looping against removed containers.
        await workload.stop();
        workload.close();
        if (context.task.result?.state !== 'fail') return;
        const logs = await Promise.all(
          [...cluster.replicas, cluster.gateway].map(
            async (node) => `${node.name} log:\n${await cluster.logs(node, 100)}`,
          ),
        );
        console.error(logs.join('\n'));
        await cluster.stop();
      });

      const timeline: FaultRecord[] = [];
      const report = async (headline: string): Promise<string> => {
        const path = await writeHistory(workload.outcome().events);
        console.error(`linearizability: history of seed ${seed} in ${path}`);
        return [
          headline,
          `seed: ${seed}`,
          `history (JSON lines): ${path}`,
          'faults (seconds on the history clock):',
          ...timeline.map(describeFault),
        ].join('\n');
      };

      workload.start();
      let lost: string[];
      try {
        await runSchedule(cluster, faults, workload, timeline, () => nemesisRandom.nextDouble());
        await faults.healAll();
        await leaderOf(cluster);
        // Some operations on the whole cluster again, so that the history ends in a quiet period.
        await sleep(quietMs);
        await workload.stop();
        lost = await workload.finalReads();
      } catch (error) {
        throw new Error(await report(`the run stopped before its check: ${String(error)}`), { cause: error });
      }

      const outcome = workload.outcome();
      const checkStartedMs = performance.now();
      const check = checkHistory(outcome.events, { timeBudgetMs: checkTimeBudgetMs });
      const checkMs = Math.round(performance.now() - checkStartedMs);
      const operations = outcome.counts.ok + outcome.counts.info + outcome.counts.fail;
      console.log(
        `linearizability: seed ${seed}: ${operations} ops (${outcome.counts.ok} ok, ` +
          `${outcome.counts.info} indeterminate, ${outcome.counts.fail} failed) on ` +
          `${outcome.registerKeys.length} registers, ${outcome.acknowledgedUniqueWrites.size} fresh keys, ` +
          `${timeline.length} faults; ${check.result} (checked in ${checkMs} ms); lost writes: ${lost.length}\n` +
          `${timeline.map(describeFault).join('\n')}\n` +
          // The dips in this line are the faults as the clients felt them.
          `  ok operations per second: ${outcome.seconds.map((second) => second.ok).join(' ')}`,
      );

      const passed =
        check.result === 'linearizable' && lost.length === 0 && outcome.counts.ok >= okOperationsMin;
      // The report writes the history to a file: only a failing run needs one.
      const message = passed
        ? ''
        : await report(
            `${formatHistoryCheck(check).text}\n` +
              `lost acknowledged writes: ${lost.length === 0 ? 'none' : lost.join(', ')}\n` +
              `operations: ${outcome.counts.ok} ok, ${outcome.counts.info} indeterminate, ` +
              `${outcome.counts.fail} failed`,
          );
      expect(check.result, message).toBe('linearizable');
      expect(lost, message).toEqual([]);
      expect(outcome.counts.ok, message).toBeGreaterThanOrEqual(okOperationsMin);
    },
  );
});

/**
 * The faults, one at a time, each held 3 to 5 s and followed by 2 s of quiet. Targets are chosen
 * when each fault starts, from the leader of that moment.
 */
async function runSchedule(
  cluster: ContainerCluster,
  faults: Faults,
  workload: RegisterWorkload,
  timeline: FaultRecord[],
  random: () => number,
): Promise<void> {
  const pick = <T>(items: readonly T[]): T => {
    const item = items[Math.floor(random() * items.length)];
    if (item === undefined) throw new Error('nothing to pick from');
    return item;
  };
  const hold = (): Promise<void> => sleep(faultHoldMsMin + random() * (faultHoldMsMax - faultHoldMsMin));

  /**
   * Injects a fault, holds it, undoes it, and records it from injection to the end of the undo.
   * Answers the leader after the quiet time that follows, the one the next fault starts from.
   */
  const step = async (
    name: string,
    description: string,
    inject: () => Promise<void>,
    undo: (record: FaultRecord) => Promise<void>,
  ): Promise<ReplicaNode> => {
    const record: FaultRecord = {
      name,
      description,
      startMs: workload.nowMs(),
      endMs: undefined,
      leaderAfter: undefined,
    };
    timeline.push(record);
    await inject();
    await hold();
    await undo(record);
    record.endMs = workload.nowMs();
    await sleep(quietMs);
    const leader = await leaderOf(cluster);
    record.leaderAfter = leader.name;
    return leader;
  };

  // A quiet start, so that the history holds operations on a whole cluster before the first fault.
  await sleep(quietMs);

  let leader = await leaderOf(cluster);
  leader = await step(
    'kill',
    `kill -9 the leader ${leader.name}, then restart it`,
    () => faults.kill(leader),
    () => faults.restart(leader),
  );

  const pausedFollower = pick(followersOf(cluster, leader));
  leader = await step(
    'pause',
    `pause the follower ${pausedFollower.name} (leader ${leader.name})`,
    () => faults.pause(pausedFollower),
    () => faults.unpause(pausedFollower),
  );

  leader = await step(
    'pause',
    `pause the leader ${leader.name}`,
    () => faults.pause(leader),
    () => faults.unpause(leader),
  );

  // The leader is the replica disconnected: it keeps running cut off from its peers and the
  // gateway, and comes back (perhaps at a new address) with a stale term while a new leader serves.
  leader = await step(
    'disconnect',
    `disconnect the leader ${leader.name} from the network`,
    () => faults.disconnect(leader),
    () => faults.reconnect(leader),
  );

  /** The partitions of the current fault, for their dropped-packet counts. */
  const partitions: Partition[] = [];
  const deaf = pick(followersOf(cluster, leader));
  leader = await step(
    'partition',
    `one-way partition ${leader.name} (leader) -> ${deaf.name}: dropped at ${deaf.name}`,
    async () => {
      partitions.push(await faults.partitionOneWay(leader, deaf));
    },
    async (record) => {
      record.description += `; ${await droppedSummary(faults, partitions.splice(0))}`;
      await faults.heal();
    },
  );

  // Crossed one-way partitions cut the leader off from both followers, but not from the gateway:
  // it must not serve a read or acknowledge a write the majority on the other side may contradict.
  const isolated = leader;
  await step(
    'isolate',
    `isolate the leader ${isolated.name} from both followers (the gateway still reaches it)`,
    async () => {
      for (const follower of followersOf(cluster, isolated)) {
        partitions.push(await faults.partitionOneWay(isolated, follower));
        partitions.push(await faults.partitionOneWay(follower, isolated));
      }
    },
    async (record) => {
      record.description += `; ${await droppedSummary(faults, partitions.splice(0))}`;
      await faults.heal();
    },
  );
}

function followersOf(cluster: ContainerCluster, leader: ReplicaNode): ReplicaNode[] {
  return cluster.replicas.filter((replica) => replica !== leader);
}

/** Packets each partition in force has dropped so far, e.g. "dropped g1-r1->g1-r2: 42". */
async function droppedSummary(faults: Faults, partitions: readonly Partition[]): Promise<string> {
  const counts = await Promise.all(
    partitions.map(async (partition) => {
      const dropped = await faults.droppedPackets(partition).catch((error: unknown) => String(error));
      return `${partition.from.name}->${partition.to.name}: ${dropped}`;
    }),
  );
  return `dropped packets ${counts.join(', ')}`;
}

/**
 * The replica a majority of the group names as leader in the leader's own term. Replicas that do
 * not answer (killed, paused, disconnected) simply do not count.
 */
async function leaderOf(cluster: ContainerCluster): Promise<ReplicaNode> {
  let leader: ReplicaNode | undefined;
  await eventually(
    'a leader a majority of the group agrees on',
    async () => {
      const statuses = await Promise.all(
        cluster.replicas.map((replica) => statusOf(cluster, replica).catch(() => undefined)),
      );
      const answered = statuses.filter((status) => status !== undefined);
      const majority = Math.floor(cluster.replicas.length / 2) + 1;
      for (const candidate of answered) {
        if (candidate.role !== 'leader') continue;
        const followers = answered.filter(
          (status) => status.term === candidate.term && status.leaderReplicaId === candidate.replicaId,
        );
        if (followers.length >= majority) {
          leader = cluster.replica(candidate.replicaId);
          return true;
        }
      }
      return answered
        .map(
          (status) =>
            `${status.replicaId}: ${status.role} term ${status.term} leader ${status.leaderReplicaId}`,
        )
        .join('; ');
    },
    leaderTimeoutMs,
  );
  if (leader === undefined) throw new Error('eventually returned without a leader');
  return leader;
}

async function statusOf(cluster: ContainerCluster, replica: ReplicaNode): Promise<ReplicaStatus> {
  const response = await rawRequest(cluster.replicaUrl(replica.replicaId), '/admin/status', {
    headers: cluster.adminHeaders(),
    timeoutMs: 1_000,
  });
  if (response.status !== 200) throw new Error(`${replica.replicaId}: /admin/status ${response.status}`);
  return response.json() as ReplicaStatus;
}

function describeFault(fault: FaultRecord): string {
  const seconds = (ms: number): string => (ms / 1000).toFixed(1);
  const end = fault.endMs === undefined ? 'not undone' : seconds(fault.endMs);
  const after = fault.leaderAfter === undefined ? '' : `; leader after: ${fault.leaderAfter}`;
  return `  ${seconds(fault.startMs)}–${end} s ${fault.name}: ${fault.description}${after}`;
}

async function writeHistory(events: readonly HistoryEvent[]): Promise<string> {
  const path = join(tmpdir(), `impulse-linearizability-${seed}-${Date.now()}.jsonl`);
  await writeFile(path, events.map((event) => `${JSON.stringify(event)}\n`).join(''));
  return path;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
