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
import { describeLeaders, groupsLedBy, leadersOf, nodeLeadingMost, type Leaders } from './admin.js';
import type { ContainerCluster, NodeContainer } from './cluster.js';
import type { Faults, Partition } from './faults.js';
import { startClusterForTest } from './support.js';

/**
 * The seed of the workload's operations and of the nemesis' choices (hold times, which node).
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
  /** Each group's leader once the groups settled after the undo: shows what the fault moved. */
  leadersAfter: string | undefined;
}

/**
 * The register workload and the linearizability checker of the chaos command, driven over the
 * project image in node containers (3 nodes, each hosting a replica of g1, g2 and g3, as in
 * production) while real faults are injected into nodes: SIGKILL and restart, cgroup freeze,
 * removal from the Docker network, and iptables partitions inside the containers' namespaces. A
 * fault of a node hits its replica of every group at once, leaders and followers alike.
 */
describe('linearizability under container faults', () => {
  it(
    'every group stays linearizable and loses no acknowledged write through every node fault',
    { timeout: 240_000 },
    async () => {
      console.log(`linearizability: seed ${seed} (IMPULSE_LINEARIZABILITY_SEED=${seed} replays it)`);
      const { cluster, faults } = await startClusterForTest({
        // Small snapshots, as the chaos command uses, so that a replica that was away catches up
        // by snapshot under faults too.
        nodeArguments: ['--snapshot-entries=1000', '--snapshot-catch-up-entries=200'],
        // The gateway gives up before the clients do, so that most failures carry its error code.
        gatewayArguments: ['--upstream-timeout=2s', `--request-deadline=${gatewayRequestDeadlineMs}ms`],
      });
      await leadersOf(cluster);

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
      onTestFinished(async () => {
        // A run that stops half-way must not leave clients looping against removed containers.
        // (startClusterForTest prints every container's last lines when the test failed.)
        await workload.stop();
        workload.close();
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
        await leadersOf(cluster);
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
 * The faults, one at a time, each held 3 to 5 s and followed by 2 s of quiet. Targets are nodes,
 * chosen when each fault starts from the leaders of that moment: the node leading the most groups
 * (a fault of it makes each of them elect a leader elsewhere), or one leading the fewest.
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
   * Answers the leaders after the quiet time that follows, the ones the next fault starts from.
   */
  const step = async (
    name: string,
    description: string,
    inject: () => Promise<void>,
    undo: (record: FaultRecord) => Promise<void>,
  ): Promise<Leaders> => {
    const record: FaultRecord = {
      name,
      description,
      startMs: workload.nowMs(),
      endMs: undefined,
      leadersAfter: undefined,
    };
    timeline.push(record);
    await inject();
    await hold();
    await undo(record);
    record.endMs = workload.nowMs();
    await sleep(quietMs);
    const leaders = await leadersOf(cluster);
    record.leadersAfter = describeLeaders(leaders);
    return leaders;
  };
  /** "impulse-node-1 (leads g1, g3)". */
  const describeNode = (node: NodeContainer, leaders: Leaders): string => {
    const led = groupsLedBy(cluster, leaders).find((entry) => entry.node === node)?.groups ?? [];
    return `${node.nodeId} (leads ${led.length === 0 ? 'no group' : led.join(', ')})`;
  };

  // A quiet start, so that the history holds operations on a whole cluster before the first fault.
  await sleep(quietMs);

  let leaders = await leadersOf(cluster);
  const killed = nodeLeadingMost(cluster, leaders);
  leaders = await step(
    'kill',
    `kill -9 the node ${describeNode(killed, leaders)}, then restart it`,
    () => faults.kill(killed),
    () => faults.restart(killed),
  );

  const pause = (node: NodeContainer): Promise<Leaders> =>
    step(
      'pause',
      `pause the node ${describeNode(node, leaders)}`,
      () => faults.pause(node),
      () => faults.unpause(node),
    );
  leaders = await pause(pick(nodesLeadingFewest(cluster, leaders)));
  leaders = await pause(nodeLeadingMost(cluster, leaders));

  // The node is disconnected with its leaders: it keeps running cut off from its peers and the
  // gateway, and comes back (perhaps at a new address) with stale terms while new leaders serve.
  const disconnected = nodeLeadingMost(cluster, leaders);
  leaders = await step(
    'disconnect',
    `disconnect the node ${describeNode(disconnected, leaders)} from the network`,
    () => faults.disconnect(disconnected),
    () => faults.reconnect(disconnected),
  );

  /** The partitions of the current fault, for their dropped-packet counts. */
  const partitions: Partition[] = [];
  const sender = nodeLeadingMost(cluster, leaders);
  const deaf = pick(cluster.nodes.filter((node) => node !== sender));
  leaders = await step(
    'partition',
    `one-way partition ${describeNode(sender, leaders)} -> ${deaf.nodeId}: dropped at ${deaf.nodeId}`,
    async () => {
      partitions.push(await faults.partitionOneWay(sender, deaf));
    },
    async (record) => {
      record.description += `; ${await droppedSummary(faults, partitions.splice(0))}`;
      await faults.heal();
    },
  );

  // Crossed one-way partitions cut the node off from both other nodes, but not from the gateway:
  // none of its replicas may serve a read or acknowledge a write the majority on the other side
  // may contradict.
  const isolated = nodeLeadingMost(cluster, leaders);
  await step(
    'isolate',
    `isolate the node ${describeNode(isolated, leaders)} from both other nodes (the gateway still reaches it)`,
    async () => {
      for (const other of cluster.nodes.filter((node) => node !== isolated)) {
        partitions.push(await faults.partitionOneWay(isolated, other));
        partitions.push(await faults.partitionOneWay(other, isolated));
      }
    },
    async (record) => {
      record.description += `; ${await droppedSummary(faults, partitions.splice(0))}`;
      await faults.heal();
    },
  );
}

/** The nodes that lead the fewest groups (often none): a fault of one of them moves few leaders. */
function nodesLeadingFewest(cluster: ContainerCluster, leaders: Leaders): NodeContainer[] {
  const led = groupsLedBy(cluster, leaders);
  const fewest = Math.min(...led.map((entry) => entry.groups.length));
  return led.filter((entry) => entry.groups.length === fewest).map((entry) => entry.node);
}

/** Packets each partition in force has dropped so far, e.g. "dropped impulse-node-0->impulse-node-1: 42". */
async function droppedSummary(faults: Faults, partitions: readonly Partition[]): Promise<string> {
  const counts = await Promise.all(
    partitions.map(async (partition) => {
      const dropped = await faults.droppedPackets(partition).catch((error: unknown) => String(error));
      return `${partition.from.name}->${partition.to.name}: ${dropped}`;
    }),
  );
  return `dropped packets ${counts.join(', ')}`;
}

function describeFault(fault: FaultRecord): string {
  const seconds = (ms: number): string => (ms / 1000).toFixed(1);
  const end = fault.endMs === undefined ? 'not undone' : seconds(fault.endMs);
  const after = fault.leadersAfter === undefined ? '' : `; leaders after: ${fault.leadersAfter}`;
  return `  ${seconds(fault.startMs)}–${end} s ${fault.name}: ${fault.description}${after}`;
}

async function writeHistory(events: readonly HistoryEvent[]): Promise<string> {
  const path = join(tmpdir(), `impulse-linearizability-${seed}-${Date.now()}.jsonl`);
  await writeFile(path, events.map((event) => `${JSON.stringify(event)}\n`).join(''));
  return path;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
