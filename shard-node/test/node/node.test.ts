import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryFileSystem, Registry, nodeFileSystem, wrapHandles } from '@impulse/common';
import { Node, replicaOpensInFlightMax, type HostedReplica, type NodeOptions } from '../../src/node/index.js';
import { NodeEngine } from '../../src/storage/index.js';
import type { Replica } from '../../src/replica/index.js';
import { untilLeading } from '../replica/harness.js';
import { FailingDisk, hosted, nodeOptions } from './node-harness.js';

async function put(replica: Replica, key: string, value: string): Promise<void> {
  await replica.write({
    operation: 'put',
    requestId: Buffer.from(`${key}=${value}`),
    key,
    value: Buffer.from(value),
  });
}

/** The sum of the samples named `sampleName` (a histogram's `name_count`, say) over their label sets. */
async function sampleSum(registry: Registry, sampleName: string): Promise<number> {
  let sum = 0;
  for (const line of (await registry.metrics()).split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === sampleName) sum += Number(match[2]);
  }
  return sum;
}

describe('a node hosting replicas of many groups', () => {
  const nodes: Node[] = [];
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.stop();
  });

  it('stops and reports a replica whose log fails, and keeps the other groups serving', async () => {
    const disk = new FailingDisk();
    const registry = new Registry();
    const node = await Node.start(nodeOptions(disk.fs, registry, 'replica'), [hosted('g1'), hosted('g2')]);
    nodes.push(node);
    for (const group of ['g1', 'g2']) await untilLeading(node.replicaOf(group) as Replica);
    await put(node.replicaOf('g2') as Replica, 'a', '1');
    disk.failingPrefix = '/data/n1/groups/g2/raft';
    await expect(put(node.replicaOf('g2') as Replica, 'b', '2')).rejects.toThrow();
    expect(node.replicaOf('g2')).toBeUndefined();
    expect(node.failedReplicas()).toMatchObject([{ groupId: 'g2', message: expect.stringContaining('EIO') }]);
    // The other group, on the same node, goes on.
    await put(node.replicaOf('g1') as Replica, 'c', '3');
    expect(await (node.replicaOf('g1') as Replica).read('c', 'linearizable')).toEqual(Buffer.from('3'));
    const metrics = await registry.metrics();
    expect(metrics).toContain('impulse_node_replicas{state="failed"} 1');
    expect(metrics).toContain('impulse_node_replicas{state="running"} 1');
    expect(metrics).toMatch(/impulse_node_replica_failures_total\{group="g2"\} 1/);
  });

  it('adds and removes replicas at run time, and its groups keep their data across a restart', async () => {
    const disk = new MemoryFileSystem();
    const first = await Node.start(nodeOptions(disk, new Registry(), 'node'), [hosted('g1')]);
    nodes.push(first);
    await untilLeading(first.replicaOf('g1') as Replica);
    await put(first.replicaOf('g1') as Replica, 'k', 'v1');
    const added = await first.addReplica(hosted('g2'));
    await untilLeading(added);
    await put(added, 'k', 'v2');
    await expect(first.addReplica(hosted('g2'))).rejects.toMatchObject({ code: 'MEMBERSHIP_CHANGE_REFUSED' });
    await first.addReplica(hosted('g3'));
    await first.removeReplica('g3');
    expect(first.replicaOf('g3')).toBeUndefined();
    expect(await disk.readdir('/data/n1/groups')).toEqual(['g1', 'g2']);
    await first.stop();
    nodes.splice(0);

    // Restarted (no bootstrap now: the groups are founded) on the same disk, after a power cut,
    // which must not bring back the removed replica's folder (the chaos tool's moves found that).
    disk.powerCut();
    expect(await disk.readdir('/data/n1/groups')).toEqual(['g1', 'g2']);
    const second = await Node.start(nodeOptions(disk, new Registry(), 'node'), [
      hosted('g1', false),
      hosted('g2', false),
    ]);
    nodes.push(second);
    expect(second.failedReplicas()).toEqual([]);
    for (const [group, value] of [
      ['g1', 'v1'],
      ['g2', 'v2'],
    ] as const) {
      const replica = second.replicaOf(group) as Replica;
      await untilLeading(replica);
      expect(await replica.read('k', 'linearizable')).toEqual(Buffer.from(value));
    }
  });

  it('clears what an earlier replica of a group left before a new one joins, and never adopts it', async () => {
    const disk = new MemoryFileSystem();
    const first = await Node.start(nodeOptions(disk, new Registry(), 'node'), [hosted('g1')]);
    nodes.push(first);
    await untilLeading(first.replicaOf('g1') as Replica);
    await put(first.replicaOf('g1') as Replica, 'old', 'state');
    await first.stop();
    nodes.splice(0);

    // The node restarts without g1 (as if a removal had been cut short): g1's log and folder are
    // still there. A new replica of g1 must start from nothing.
    const second = await Node.start(nodeOptions(disk, new Registry(), 'node'), []);
    nodes.push(second);
    expect(await disk.readdir('/data/n1/groups')).toEqual(['g1']);
    await second.clearLeftovers('g1');
    await second.stop();
    nodes.splice(0);
    // The clearing is durable: a power cut does not bring the old folder back.
    disk.powerCut();
    expect(await disk.readdir('/data/n1/groups')).toEqual([]);
    const third = await Node.start(nodeOptions(disk, new Registry(), 'node'), []);
    nodes.push(third);
    const fresh = await third.addReplica({
      ...hosted('g1'),
      self: { ...hosted('g1').self, raftId: 4, replicaId: 'g1-r4' },
      initialMembers: [{ ...hosted('g1').self, raftId: 4, replicaId: 'g1-r4' }],
    });
    await untilLeading(fresh);
    expect(await fresh.read('old', 'linearizable')).toBeUndefined();
    await expect(third.clearLeftovers('g1')).rejects.toMatchObject({ code: 'MEMBERSHIP_CHANGE_REFUSED' });
  });

  it("counts its shared log's fsyncs once each, for the node, with the writes and entries each made durable", async () => {
    const disk = new MemoryFileSystem();
    let segmentDatasyncs = 0;
    let logDirectorySyncs = 0;
    const fs = wrapHandles(disk, (path, handle) => ({
      datasync: () => {
        if (path.startsWith('/data/n1/raft/') && path.endsWith('.log')) segmentDatasyncs++;
        return handle.datasync();
      },
      sync: () => {
        if (path === '/data/n1/raft') logDirectorySyncs++;
        return handle.sync();
      },
    }));
    const registry = new Registry();
    const groupIds = ['g1', 'g2', 'g3', 'g4'];
    const node = await Node.start(
      nodeOptions(fs, registry, 'node'),
      groupIds.map((groupId) => hosted(groupId)),
    );
    nodes.push(node);
    await Promise.all(groupIds.map((groupId) => untilLeading(node.replicaOf(groupId) as Replica)));

    const fsyncs = (): Promise<number> =>
      sampleSum(registry, 'impulse_raft_log_fsync_duration_seconds_count');
    const fsyncsBefore = await fsyncs();
    const datasyncsBefore = segmentDatasyncs;
    const directorySyncsBefore = logDirectorySyncs;
    const writesSumBefore = await sampleSum(registry, 'impulse_raft_log_fsync_writes_sum');
    const entriesSumBefore = await sampleSum(registry, 'impulse_raft_log_fsync_entries_sum');
    const bytesBefore = await sampleSum(registry, 'impulse_raft_log_written_bytes_total');
    // Writes to every group at once: their log writes of a round share the node log's fdatasync.
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        groupIds.map((groupId) => put(node.replicaOf(groupId) as Replica, `k${round}`, groupId)),
      );
    }
    const fsyncCount = (await fsyncs()) - fsyncsBefore;
    expect(segmentDatasyncs - datasyncsBefore + logDirectorySyncs - directorySyncsBefore).toBe(fsyncCount);
    // Fewer fsyncs than groups times writes: each carried several groups' writes.
    expect(fsyncCount).toBeGreaterThan(0);
    expect(fsyncCount).toBeLessThan(groupIds.length * 5);
    const writesPerFsync =
      ((await sampleSum(registry, 'impulse_raft_log_fsync_writes_sum')) - writesSumBefore) / fsyncCount;
    expect(writesPerFsync).toBeGreaterThan(1);
    // Each group's 5 entries, once each (the node log is the only copy; groups of one).
    expect((await sampleSum(registry, 'impulse_raft_log_fsync_entries_sum')) - entriesSumBefore).toBe(
      groupIds.length * 5,
    );
    expect(await sampleSum(registry, 'impulse_raft_log_written_bytes_total')).toBeGreaterThan(bytesBefore);

    // The series are the node's: none carries a group.
    const page = await registry.metrics();
    expect(page).toMatch(/^impulse_raft_log_fsync_duration_seconds_count [1-9]\d*$/m);
    expect(page).not.toMatch(/impulse_raft_log_fsync_duration_seconds_\w+\{[^}]*group=/);
    // The groups' own share of the log is still by group.
    expect(page).toMatch(/impulse_raft_log_append_bytes_total\{group="g1"\} [1-9]/);
  });

  describe('with many groups, opened a few at a time', () => {
    const groupIds = Array.from({ length: 64 }, (_, index) => `g${index + 1}`);

    it('founds them all and opens them all again on a restart, over one node log', async () => {
      expect(replicaOpensInFlightMax).toBeLessThan(groupIds.length);
      const disk = new MemoryFileSystem();
      const first = await Node.start(
        nodeOptions(disk, new Registry(), 'node'),
        groupIds.map((groupId) => hosted(groupId)),
      );
      nodes.push(first);
      expect(first.failedReplicas()).toEqual([]);
      await Promise.all(groupIds.map((groupId) => untilLeading(first.replicaOf(groupId) as Replica)));
      await Promise.all(groupIds.map((groupId) => put(first.replicaOf(groupId) as Replica, 'k', groupId)));
      await first.stop();
      nodes.splice(0);

      disk.powerCut();
      const second = await Node.start(
        nodeOptions(disk, new Registry(), 'node'),
        groupIds.map((groupId) => hosted(groupId, false)),
      );
      nodes.push(second);
      expect(second.failedReplicas()).toEqual([]);
      expect(second.runningReplicas().size).toBe(groupIds.length);
      for (const groupId of groupIds) {
        const replica = second.replicaOf(groupId) as Replica;
        await untilLeading(replica);
        expect(await replica.read('k', 'linearizable')).toEqual(Buffer.from(groupId));
      }
    });

    it("opens every other group when one group's log is corrupt, and reports that one", async () => {
      // Each replica with a log of its own (`logs: 'replica'`): the node log is one file for every
      // group, and damage in it is the whole node's (RAFT_LOG_CORRUPT at its open).
      const disk = new MemoryFileSystem();
      const first = await Node.start(
        nodeOptions(disk, new Registry(), 'replica'),
        groupIds.map((groupId) => hosted(groupId)),
      );
      nodes.push(first);
      await Promise.all(groupIds.map((groupId) => untilLeading(first.replicaOf(groupId) as Replica)));
      await Promise.all(groupIds.map((groupId) => put(first.replicaOf(groupId) as Replica, 'k', groupId)));
      await first.stop();
      nodes.splice(0);

      // A byte of g17's first record, which later records follow: not a torn tail but damage.
      const logDirectory = '/data/n1/groups/g17/raft';
      const segments = (await disk.readdir(logDirectory)).filter((name) => name.endsWith('.log')).sort();
      expect(segments.length).toBeGreaterThan(0);
      disk.corrupt(`${logDirectory}/${segments[0]}`, 12);

      const registry = new Registry();
      const second = await Node.start(
        nodeOptions(disk, registry, 'replica'),
        groupIds.map((groupId) => hosted(groupId, false)),
      );
      nodes.push(second);
      // RAFT_LOG_CORRUPT, refused as the start-up code that says the replica must be replaced.
      expect(second.failedReplicas()).toMatchObject([{ groupId: 'g17', code: 'DATA_DIRECTORY_DAMAGED' }]);
      expect(second.replicaOf('g17')).toBeUndefined();
      const others = groupIds.filter((groupId) => groupId !== 'g17');
      expect([...second.runningReplicas().keys()].sort()).toEqual([...others].sort());
      for (const groupId of others) {
        const replica = second.replicaOf(groupId) as Replica;
        await untilLeading(replica);
        expect(await replica.read('k', 'linearizable')).toEqual(Buffer.from(groupId));
      }
      const metrics = await registry.metrics();
      expect(metrics).toContain('impulse_node_replicas{state="running"} 63');
      expect(metrics).toContain('impulse_node_replicas{state="failed"} 1');
    });
  });
});

describe('a node on LevelDB: one engine for every group (decision 0019)', () => {
  const nodes: Node[] = [];
  let root: string | undefined;
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.stop();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
    root = undefined;
  });

  function levelOptions(
    directory: string,
    registry: Registry,
    stateEngines?: 'node' | 'replica',
  ): NodeOptions {
    const base = nodeOptions(nodeFileSystem, registry, 'node');
    return {
      ...base,
      dataDirectory: directory,
      settings: { ...base.settings, engine: 'leveldb' },
      ...(stateEngines === undefined ? {} : { stateEngines }),
    };
  }

  async function startNode(options: NodeOptions, groups: readonly HostedReplica[]): Promise<Node> {
    const node = await Node.start(options, groups);
    nodes.push(node);
    for (const group of groups) await untilLeading(node.replicaOf(group.groupId) as Replica);
    return node;
  }

  async function stopNodes(): Promise<void> {
    for (const node of nodes.splice(0)) await node.stop();
  }

  /** 30 keys a group, the groups written at once (their applies share rounds); past `snapshotEntries`. */
  async function writeEach(node: Node, groups: readonly string[]): Promise<void> {
    for (let index = 0; index < 30; index++) {
      await Promise.all(
        groups.map((group) => put(node.replicaOf(group) as Replica, `k${index}`, `${group}-${index}`)),
      );
    }
  }

  async function expectEach(node: Node, groups: readonly string[]): Promise<void> {
    for (const group of groups) {
      const replica = node.replicaOf(group) as Replica;
      for (const index of [0, 17, 29]) {
        expect((await replica.read(`k${index}`, 'linearizable'))?.toString()).toBe(`${group}-${index}`);
      }
    }
  }

  it("keeps every group's state in the node engine, deletes a removed group's keys, and opens them again", async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-node-engine-'));
    const registry = new Registry();
    const node = await startNode(levelOptions(root, registry), [hosted('g1'), hosted('g2'), hosted('g3')]);
    await writeEach(node, ['g1', 'g2', 'g3']);
    expect(await readdir(root)).toContain('engine');
    expect((await readdir(join(root, 'groups', 'g1', 'state'))).sort()).toEqual(['GENERATION']);
    // Rounds that applied entries of several groups made one LevelDB write.
    const batches = await sampleSum(registry, 'impulse_node_engine_write_batches_sum');
    const writes = await sampleSum(registry, 'impulse_node_engine_write_batches_count');
    expect(writes).toBeGreaterThan(0);
    expect(batches).toBeGreaterThan(writes);
    expect(await sampleSum(registry, 'impulse_node_engine_flush_duration_seconds_count')).toBeGreaterThan(0);
    await node.removeReplica('g3');
    await stopNodes();

    const engine = await NodeEngine.open({ directory: join(root, 'engine') });
    try {
      expect(await engine.storedGroups()).toEqual(['g1', 'g2']);
    } finally {
      await engine.close();
    }
    const restarted = await startNode(levelOptions(root, new Registry()), [
      hosted('g1', false),
      hosted('g2', false),
    ]);
    expect(restarted.failedReplicas()).toEqual([]);
    await expectEach(restarted, ['g1', 'g2']);
  });

  it('moves the state machines of a node kept in LevelDB folders of their own into the node engine', async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-node-engine-'));
    const inFolders = await startNode(levelOptions(root, new Registry(), 'replica'), [
      hosted('g1'),
      hosted('g2'),
    ]);
    await writeEach(inFolders, ['g1', 'g2']);
    expect(await readdir(root)).not.toContain('engine');
    expect((await readdir(join(root, 'groups', 'g1', 'state'))).some((name) => name.startsWith('sm-'))).toBe(
      true,
    );
    await stopNodes();

    const moved = await startNode(levelOptions(root, new Registry()), [
      hosted('g1', false),
      hosted('g2', false),
    ]);
    expect(moved.failedReplicas()).toEqual([]);
    await expectEach(moved, ['g1', 'g2']);
    expect((await readdir(join(root, 'groups', 'g1', 'state'))).sort()).toEqual(['GENERATION']);
  });
});
