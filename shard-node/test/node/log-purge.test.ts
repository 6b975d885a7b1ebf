import { describe, expect, it } from 'vitest';
import { MemoryFileSystem, Registry, createLogger } from '@impulse/common';
import {
  LogPurge,
  Node,
  type ForcedCompactionOutcome,
  type LogPurgeSettings,
  type NodeOptions,
} from '../../src/node/index.js';
import type { PinningGroup } from '../../src/raft-log/index.js';
import type { Replica, RequestedCompactionOutcome } from '../../src/replica/index.js';
import { NodeClock, SimTime } from '../../src/raft-sim/node/sim-clock.js';
import { hosted, nodeOptions } from './node-harness.js';

/**
 * A node of two groups, one taking every write and one idle, on simulated time (the node's
 * scheduler is a `NodeClock`), so that the node log's rotations and the purge's looks interleave
 * the same way on every run, and a power cut can strike between two of them.
 */

const segmentBytes = 4096;
const purge: LogPurgeSettings = { segmentsThreshold: 4, checkIntervalMs: 50 };
const dataDirectory = '/data/n1';

/** One incarnation of the node: its clock dies with it (a crash runs nothing of it again). */
class TestNode {
  readonly clock: NodeClock;
  readonly registry = new Registry();
  readonly outcomes: { groupId: string; outcome: ForcedCompactionOutcome }[] = [];
  node!: Node;

  constructor(
    readonly time: SimTime,
    readonly disk: MemoryFileSystem,
    incarnation: number,
  ) {
    this.clock = new NodeClock(time, 1_000_000_000 * incarnation);
  }

  options(logPurge: LogPurgeSettings | 'off'): NodeOptions {
    const base = nodeOptions(this.disk, this.registry, 'node');
    return {
      ...base,
      settings: { ...base.settings, logSegmentBytesMax: segmentBytes },
      scheduler: this.clock,
      logPurge,
      onForcedCompaction: (groupId, outcome) => this.outcomes.push({ groupId, outcome }),
    };
  }

  async start(logPurge: LogPurgeSettings | 'off', bootstrap: boolean): Promise<void> {
    this.node = await runUntilSettled(
      this.time,
      Node.start(this.options(logPurge), [hosted('busy', bootstrap), hosted('idle', bootstrap)]),
    );
    for (const group of ['busy', 'idle']) {
      await waitSimulated(this.time, () => this.replica(group).status().role === 'leader');
    }
  }

  replica(group: string): Replica {
    const replica = this.node.replicaOf(group);
    if (replica === undefined) throw new Error(`no running replica of ${group}`);
    return replica;
  }

  async put(group: string, key: string, value: string): Promise<void> {
    await runUntilSettled(
      this.time,
      this.replica(group).write({
        operation: 'put',
        requestId: Buffer.from(`${group}/${key}=${value.length}`),
        key,
        value: Buffer.from(value),
      }),
    );
  }

  async read(group: string, key: string): Promise<string | undefined> {
    const value = await runUntilSettled(this.time, this.replica(group).read(key, 'linearizable'));
    return value?.toString();
  }
}

/** Advances simulated time until `promise` settles (at most a simulated minute). */
async function runUntilSettled<T>(time: SimTime, promise: Promise<T>): Promise<T> {
  let settled = false;
  const observed = promise.finally(() => (settled = true));
  observed.catch(() => undefined);
  const deadlineMs = time.nowMs + 60_000;
  while (!settled) {
    if (time.nowMs > deadlineMs) throw new Error('a simulated minute passed and it did not settle');
    await time.runUntil(time.nowMs + 1);
  }
  return observed;
}

async function waitSimulated(time: SimTime, condition: () => boolean): Promise<void> {
  const deadlineMs = time.nowMs + 60_000;
  while (!condition()) {
    if (time.nowMs > deadlineMs) throw new Error('a simulated minute passed and the condition never held');
    await time.runUntil(time.nowMs + 5);
  }
}

async function segmentFiles(disk: MemoryFileSystem): Promise<number> {
  return (await disk.readdir(`${dataDirectory}/raft`)).filter((name) => name.endsWith('.log')).length;
}

const idleKeys = ['a', 'b', 'c'];
const busyWrites = 300;
const busyValue = 'x'.repeat(200);

/**
 * The idle group writes a little, then the busy one writes 300 entries of 200 bytes (about 20
 * segments of 4 KiB), 2 simulated ms apart; returns the most segments the log held meanwhile.
 */
async function runWorkload(node: TestNode): Promise<number> {
  for (const key of idleKeys) await node.put('idle', key, `idle-${key}`);
  let segmentsMax = 0;
  for (let index = 0; index < busyWrites; index++) {
    await node.put('busy', `k${index}`, `${index}-${busyValue}`);
    await node.time.runUntil(node.time.nowMs + 2);
    segmentsMax = Math.max(segmentsMax, await segmentFiles(node.disk));
  }
  return segmentsMax;
}

async function expectEveryWrite(node: TestNode): Promise<void> {
  for (const key of idleKeys) expect(await node.read('idle', key)).toBe(`idle-${key}`);
  for (let index = 0; index < busyWrites; index += 37)
    expect(await node.read('busy', `k${index}`)).toBe(`${index}-${busyValue}`);
  expect(await node.read('busy', `k${busyWrites - 1}`)).toBe(`${busyWrites - 1}-${busyValue}`);
}

describe('the node log purge: a node of a busy group and an idle one', () => {
  it('without it, the idle group keeps every segment and the log grows with the busy group', async () => {
    const node = new TestNode(new SimTime(), new MemoryFileSystem(), 1);
    await node.start('off', true);
    const segmentsMax = await runWorkload(node);
    // The idle group's entries are in the first segment, and it never compacts: nothing goes.
    expect(segmentsMax).toBeGreaterThan(15);
    expect(await segmentFiles(node.disk)).toBe(segmentsMax);
    expect(node.replica('idle').status().firstIndex).toBe(2);
    expect(node.outcomes).toEqual([]);
    await runUntilSettled(node.time, node.node.stop());
  });

  it('with it, the idle group is asked to compact, the log stays bounded, and every write survives a restart', async () => {
    const time = new SimTime();
    const disk = new MemoryFileSystem();
    const first = new TestNode(time, disk, 1);
    await first.start(purge, true);
    const segmentsMax = await runWorkload(first);
    // Between two looks (50 ms) the busy group writes about 25 entries, under two segments.
    expect(segmentsMax).toBeLessThanOrEqual(purge.segmentsThreshold + 2);
    await time.runUntil(time.nowMs + 4 * purge.checkIntervalMs);
    expect(await segmentFiles(disk)).toBeLessThanOrEqual(purge.segmentsThreshold);
    expect(first.outcomes).toContainEqual({ groupId: 'idle', outcome: 'compacted' });
    expect(first.outcomes.every(({ outcome }) => outcome === 'compacted')).toBe(true);
    // The idle group snapshotted early and holds no entry its own compactions would have dropped.
    const idle = first.replica('idle').status();
    expect(idle.snapshotIndex).toBeGreaterThanOrEqual(idle.appliedIndex - 5);
    const metrics = await first.registry.metrics();
    expect(metrics).toMatch(
      /impulse_node_log_forced_compactions_total\{group="idle",outcome="compacted"\} [1-9]/,
    );
    expect(metrics).toMatch(/impulse_node_log_segments [1-4]\n/);
    expect(metrics).toMatch(/impulse_node_log_bytes \d+/);
    await runUntilSettled(time, first.node.stop());

    const second = new TestNode(time, disk, 2);
    await second.start(purge, false);
    await expectEveryWrite(second);
    await runUntilSettled(time, second.node.stop());
  });

  it('loses no acknowledged write of either group in a power cut after forced compactions', async () => {
    const time = new SimTime();
    const disk = new MemoryFileSystem();
    const first = new TestNode(time, disk, 1);
    await first.start(purge, true);
    await runWorkload(first);
    await time.runUntil(time.nowMs + 4 * purge.checkIntervalMs);
    expect(first.outcomes).toContainEqual({ groupId: 'idle', outcome: 'compacted' });
    expect(first.replica('idle').status().firstIndex).toBeGreaterThan(2);
    // The power cut: the incarnation runs nothing more, and the disk keeps only what was synced.
    first.clock.dead = true;
    disk.powerCut();

    const second = new TestNode(time, disk, 2);
    await second.start(purge, false);
    expect(second.node.failedReplicas()).toEqual([]);
    await expectEveryWrite(second);
    await runUntilSettled(time, second.node.stop());
  });
});

describe('LogPurge', () => {
  /** A log whose pinning groups and segment count the test sets; replicas that answer when told. */
  function setUp(
    settings: Partial<LogPurgeSettings> | 'off' = { segmentsThreshold: 3, checkIntervalMs: 10 },
  ) {
    const time = new SimTime();
    const clock = new NodeClock(time, 0);
    const log = { segments: 2, pinning: [] as PinningGroup[], asked: [] as number[] };
    const answers = new Map<string, ((outcome: RequestedCompactionOutcome) => void)[]>();
    const asked: { groupId: string; throughIndex: number }[] = [];
    const replicas = new Map<
      string,
      'changing' | { compactNow(throughIndex: number): Promise<RequestedCompactionOutcome> }
    >();
    const replicaOf = (groupId: string) => {
      if (!replicas.has(groupId))
        replicas.set(groupId, {
          compactNow: (throughIndex: number) => {
            asked.push({ groupId, throughIndex });
            return new Promise<RequestedCompactionOutcome>((resolve) => {
              answers.set(groupId, [...(answers.get(groupId) ?? []), resolve]);
            });
          },
        });
      return replicas.get(groupId);
    };
    const outcomes: [string, ForcedCompactionOutcome][] = [];
    const registry = new Registry();
    const purge = new LogPurge({
      log: {
        pinningGroups: (segmentCount) => {
          log.asked.push(segmentCount);
          return log.pinning;
        },
        logBytes: () => log.segments * 4096,
        segmentCount: () => log.segments,
      },
      replicaOf: (groupId) => (groupId === 'gone' ? undefined : replicaOf(groupId)),
      scheduler: clock,
      logger: createLogger({ service: 'shard-node', level: 'silent' }),
      registry,
      settings,
      onOutcome: (groupId, outcome) => outcomes.push([groupId, outcome]),
    });
    const answer = async (groupId: string, outcome: RequestedCompactionOutcome): Promise<void> => {
      for (const resolve of answers.get(groupId) ?? []) resolve(outcome);
      answers.delete(groupId);
      await time.settle();
    };
    return { time, log, purge, asked, outcomes, registry, replicas, answer };
  }

  const pin = (groupId: string, compactThroughIndex: number): PinningGroup => ({
    groupId,
    firstIndex: 2,
    compactThroughIndex,
  });

  it('asks the groups that keep the segments over the threshold, only past it, once until they answer', async () => {
    const { log, purge, asked, outcomes, answer } = setUp();
    log.pinning = [pin('g1', 7), pin('g2', 9)];
    log.segments = 3;
    expect(purge.check()).toEqual([]);
    log.segments = 5;
    expect(purge.check()).toEqual(['g1', 'g2']);
    // The two oldest segments: releasing them brings the log back to the threshold (3).
    expect(log.asked).toEqual([2]);
    expect(asked).toEqual([
      { groupId: 'g1', throughIndex: 7 },
      { groupId: 'g2', throughIndex: 9 },
    ]);
    // Still waiting for their answers: not asked twice.
    expect(purge.check()).toEqual([]);
    await answer('g1', 'compacted');
    await answer('g2', 'behind');
    expect(outcomes).toEqual([
      ['g1', 'compacted'],
      ['g2', 'behind'],
    ]);
    // A group that could not compact is asked again at the next look.
    log.pinning = [pin('g2', 9)];
    expect(purge.check()).toEqual(['g2']);
  });

  it('skips a group being started or stopped, and counts one with no running replica', async () => {
    const { log, purge, outcomes, replicas, registry } = setUp();
    log.segments = 10;
    replicas.set('starting', 'changing');
    log.pinning = [pin('starting', 3), pin('gone', 4)];
    expect(purge.check()).toEqual([]);
    expect(outcomes).toEqual([['gone', 'notRunning']]);
    expect(await registry.metrics()).toMatch(
      /impulse_node_log_forced_compactions_total\{group="gone",outcome="notRunning"\} 1/,
    );
  });

  it('looks on its timer once started, never when off, and not after it stopped', async () => {
    const running = setUp();
    running.log.segments = 10;
    running.log.pinning = [pin('g1', 5)];
    running.purge.start();
    await running.time.runUntil(25);
    expect(running.asked).toEqual([{ groupId: 'g1', throughIndex: 5 }]);
    running.purge.stop();
    await running.answer('g1', 'compacted');
    await running.time.runUntil(100);
    expect(running.asked).toHaveLength(1);
    expect(running.outcomes).toEqual([]);
    expect(await running.registry.metrics()).not.toContain('impulse_node_log');

    const off = setUp('off');
    off.log.segments = 10;
    off.log.pinning = [pin('g1', 5)];
    off.purge.start();
    await off.time.runUntil(100);
    expect(off.purge.check()).toEqual([]);
    expect(off.asked).toEqual([]);
    expect(await off.registry.metrics()).toContain('impulse_node_log_segments 10');
  });

  it('refuses a threshold that would ask for the tail', () => {
    expect(() => setUp({ segmentsThreshold: 1 })).toThrow(RangeError);
    expect(() => setUp({ checkIntervalMs: 0 })).toThrow(RangeError);
  });
});
