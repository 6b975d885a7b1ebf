/**
 * The node log: every group's log in one directory, one write and one datasync per round for all
 * groups, per-group compaction that rewrites no other group, removal of groups.
 */
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { CompactedError, SnapshotOutOfDateError, type ConfState } from '../../src/raft/index.js';
import type { GroupLog, NodeLog, ReplicaLog } from '../../src/raft-log/index.js';
import {
  entries,
  entry,
  liveEntries,
  NodeRecorder,
  openNodeLog,
  Recorder,
  removeDirectory,
  segmentFiles,
  temporaryDirectory,
} from './helpers.js';

const KIB = 1024;

const CONF_STATE: ConfState = {
  voters: [1, 2, 3],
  learners: [4],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};

/** Everything a reopen must restore of a group. */
function stateOf(log: ReplicaLog): unknown {
  return {
    firstIndex: log.firstIndex(),
    lastIndex: log.lastIndex(),
    entries: liveEntries(log),
    initialState: log.initialState(),
    snapshot: log.snapshot().metadata,
    baseTerm: log.term(log.firstIndex() - 1),
  };
}

async function statesOf(node: NodeLog, groupIds: readonly string[]): Promise<Record<string, unknown>> {
  const states: Record<string, unknown> = {};
  for (const groupId of groupIds) {
    const group = await node.group(groupId);
    states[groupId] = stateOf(group);
    await group.close();
  }
  return states;
}

describe('node log', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await temporaryDirectory();
  });

  afterEach(async () => {
    await removeDirectory(directory);
  });

  it('keeps every group’s entries, hard state and snapshot metadata across close and reopen', async () => {
    const node = await openNodeLog(directory);
    const a = await node.group('g1', { confState: CONF_STATE });
    const b = await node.group('g2');
    const c = await node.group('shard.3_x-y');
    expect([a.created, b.created, c.created]).toEqual([true, true, true]);
    // Interleaved in one round and across rounds.
    await Promise.all([
      a.append(entries(1, 10, 1)),
      b.save({ entries: entries(1, 3, 2), hardState: { term: 2, vote: 1, commit: 2 } }, { sync: true }),
      c.append(entries(1, 1, 5), { sync: false }),
    ]);
    await a.save(
      { entries: entries(11, 20, 2), hardState: { term: 2, vote: 1, commit: 15 } },
      { sync: true },
    );
    await a.append([{ index: 21, term: 2, type: 'confChange', data: new Uint8Array([1, 2, 3]) }]);
    await a.createSnapshot(12, CONF_STATE);
    await a.compact(10);
    await b.save(
      { snapshot: { index: 8, term: 3, confState: CONF_STATE }, hardState: { term: 3, vote: 1, commit: 8 } },
      { sync: true },
    );
    await b.append(entries(9, 12, 3));
    const expected = { g1: stateOf(a), g2: stateOf(b), 'shard.3_x-y': stateOf(c) };
    expect(a.firstIndex()).toBe(11);
    expect(b.firstIndex()).toBe(9);
    await node.close();

    const reopened = await openNodeLog(directory);
    expect(reopened.groupIds().sort()).toEqual(['g1', 'g2', 'shard.3_x-y']);
    const group = await reopened.group('g1');
    expect(group.created).toBe(false);
    expect(group.initialState().confState).toEqual(CONF_STATE);
    expect(() => group.term(9)).toThrow(CompactedError);
    await group.close();
    expect(await statesOf(reopened, ['g1', 'g2', 'shard.3_x-y'])).toEqual(expected);
    await reopened.close();
  });

  it('overwrites a conflicting suffix in one group only, and the overwrite survives reopen', async () => {
    const node = await openNodeLog(directory);
    const a = await node.group('a');
    const b = await node.group('b');
    await Promise.all([a.append(entries(1, 10, 1)), b.append(entries(1, 10, 1))]);
    await Promise.all([a.append(entries(6, 8, 2)), b.append(entries(11, 12, 1))]);
    await a.append(entries(9, 9, 3));
    expect(liveEntries(a).map((e) => e.term)).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 3]);
    expect(b.lastIndex()).toBe(12);
    const expected = { a: stateOf(a), b: stateOf(b) };
    await node.close();
    const reopened = await openNodeLog(directory);
    expect(await statesOf(reopened, ['a', 'b'])).toEqual(expected);
    await reopened.close();
  });

  it('group commit: synced saves of three groups in one round are one write and one datasync', async () => {
    const recorder = new NodeRecorder();
    const node = await openNodeLog(directory, recorder);
    const groups = await Promise.all(['g1', 'g2', 'g3', 'g4'].map((id) => node.group(id)));
    const groupFsyncs = [0, 0, 0, 0];
    await node.close();
    // Reopened with an observer per group, to see which fsyncs each group waited for.
    const reopened = await openNodeLog(directory, recorder);
    const observed = await Promise.all(
      groups.map((group, i) =>
        reopened.group(group.groupId, { observer: { onFsync: () => void groupFsyncs[i]!++ } }),
      ),
    );
    const fsyncsBefore = recorder.segmentFsyncs;
    const appendsBefore = recorder.appends;
    const flushesBefore = recorder.flushes;
    const syncedFlushesBefore = recorder.syncedFlushes;
    const writesBefore = recorder.flushedWrites;
    const entriesBefore = recorder.flushedEntries;
    await Promise.all([
      observed[0]!.save(
        { entries: entries(1, 50, 1, 100), hardState: { term: 1, vote: 1, commit: 0 } },
        { sync: true },
      ),
      observed[1]!.save({ entries: entries(1, 5, 1) }, { sync: true }),
      observed[2]!.save({ hardState: { term: 3, vote: 2, commit: 0 } }, { sync: true }),
      // An unsynced save of the same round rides along.
      observed[3]!.save({ entries: entries(1, 2, 1) }, { sync: false }),
    ]);
    expect(recorder.segmentFsyncs - fsyncsBefore).toBe(1);
    expect(recorder.appends - appendsBefore).toBe(1);
    expect(recorder.flushes - flushesBefore).toBe(1);
    // The node's observer hears of the flush once: four groups' writes, 57 entries, one fdatasync.
    expect(recorder.syncedFlushes - syncedFlushesBefore).toBe(1);
    expect(recorder.flushedWrites - writesBefore).toBe(4);
    expect(recorder.flushedEntries - entriesBefore).toBe(57);
    expect(groupFsyncs).toEqual([1, 1, 1, 0]);
    // A round of unsynced saves only: written, not synced.
    await Promise.all(
      observed.map((group) => group.append([entry(group.lastIndex() + 1, 1)], { sync: false })),
    );
    expect(recorder.segmentFsyncs - fsyncsBefore).toBe(1);
    expect(recorder.flushes - flushesBefore).toBe(2);
    expect(recorder.syncedFlushes - syncedFlushesBefore).toBe(1);
    expect(recorder.flushedEntries - entriesBefore).toBe(61);
    const expected = Object.fromEntries(observed.map((group) => [group.groupId, stateOf(group)]));
    await reopened.close();
    // close() syncs what was left unsynced.
    expect(recorder.segmentFsyncs - fsyncsBefore).toBe(2);
    const again = await openNodeLog(directory);
    expect(await statesOf(again, Object.keys(expected))).toEqual(expected);
    await again.close();
  });

  it('collects the next batch while a flush is in progress, keeping each group’s save order', async () => {
    const recorder = new NodeRecorder();
    const node = await openNodeLog(directory, recorder);
    const a = await node.group('a');
    const b = await node.group('b');
    const flushesBefore = recorder.flushes;
    const writes: Promise<void>[] = [];
    // Ten rounds of saves from both groups; each round's saves may join a batch still collecting
    // while the previous flush syncs. Every save is synced, each replaces the one before it in
    // part, so that a reordering would show.
    for (let round = 0; round < 10; round++) {
      writes.push(a.append(entries(1 + round, 3 + round, 1 + round), { sync: true }));
      writes.push(b.save({ hardState: { term: 1 + round, vote: 1, commit: 0 } }, { sync: true }));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(writes);
    const flushes = recorder.flushes - flushesBefore;
    expect(flushes).toBeGreaterThanOrEqual(2);
    expect(flushes).toBeLessThanOrEqual(10);
    expect(recorder.flushedWrites).toBeGreaterThanOrEqual(20);
    const expected = { a: stateOf(a), b: stateOf(b) };
    expect(a.lastIndex()).toBe(12);
    expect(b.hardState().term).toBe(10);
    await node.close();
    const reopened = await openNodeLog(directory);
    expect(await statesOf(reopened, ['a', 'b'])).toEqual(expected);
    await reopened.close();
  });

  it('backpressure: writes past pendingBytesMax wait for the flush in progress, in order', async () => {
    const recorder = new NodeRecorder();
    const pendingBytesMax = 8 * KIB;
    const node = await openNodeLog(directory, recorder, { pendingBytesMax });
    const groups = await Promise.all(['a', 'b', 'c'].map((id) => node.group(id)));
    const writes: Promise<void>[] = [];
    for (let i = 1; i <= 12; i++) {
      for (const group of groups) writes.push(group.append([entry(i, 1, KIB)], { sync: i % 4 === 0 }));
    }
    // A write over the limit on its own still goes, alone.
    writes.push(groups[0]!.append(entries(13, 20, 1, 2 * KIB), { sync: true }));
    await Promise.all(writes);
    expect(recorder.backpressures).toBeGreaterThan(0);
    const records = (KIB + 100) * 36 + 16 * KIB;
    expect(recorder.flushes).toBeGreaterThan(records / pendingBytesMax);
    const expected = Object.fromEntries(groups.map((group) => [group.groupId, stateOf(group)]));
    expect(groups[0]!.lastIndex()).toBe(20);
    await node.close();
    const reopened = await openNodeLog(directory);
    expect(await statesOf(reopened, ['a', 'b', 'c'])).toEqual(expected);
    await reopened.close();
  });

  it('compacting one group keeps a lagging group’s entries and the segments that hold them', async () => {
    const recorder = new NodeRecorder();
    const segmentBytesMax = 8 * KIB;
    const node = await openNodeLog(directory, recorder, { segmentBytesMax });
    const busy = await node.group('busy');
    const lagging = await node.group('lagging');
    // The lagging group writes a few entries into the first segment, then nothing.
    await lagging.save(
      { entries: entries(1, 3, 1, 300), hardState: { term: 1, vote: 1, commit: 3 } },
      { sync: true },
    );
    const laggingState = stateOf(lagging);
    for (let index = 1; index <= 200; index += 5) {
      await busy.save(
        { entries: entries(index, index + 4, 1, 400), hardState: { term: 1, vote: 1, commit: index + 4 } },
        { sync: false },
      );
    }
    const segmentsBefore = node.segmentCount();
    expect(segmentsBefore).toBeGreaterThan(5);
    await busy.createSnapshot(190);
    await busy.compact(190);
    // The oldest segment holds the lagging group's entries: it stays, and so do the segments after
    // it (segments go oldest first), but no record of the lagging group was rewritten.
    expect(node.segmentCount()).toBe(segmentsBefore);
    expect(node.pinningGroups()).toEqual([{ groupId: 'lagging', firstIndex: 1, compactThroughIndex: 3 }]);
    expect(stateOf(lagging)).toEqual(laggingState);
    // Once the lagging group compacts, the segments the busy group no longer needs go.
    await lagging.createSnapshot(3);
    await lagging.compact(3);
    expect(node.segmentCount()).toBeLessThan(segmentsBefore);
    expect(node.segmentCount()).toBeLessThanOrEqual(3);
    expect(node.pinningGroups().map((group) => group.groupId)).not.toContain('lagging');
    expect(recorder.totalBytes).toBe(node.logBytes());
    const expected = { busy: stateOf(busy), lagging: stateOf(lagging) };
    await node.close();
    const reopened = await openNodeLog(directory, new Recorder(), { segmentBytesMax });
    expect(await statesOf(reopened, ['busy', 'lagging'])).toEqual(expected);
    await reopened.close();
  });

  it('names the groups that keep any of the oldest segments, and how far each must compact to release them all', async () => {
    const recorder = new NodeRecorder();
    const segmentBytesMax = 8 * KIB;
    const node = await openNodeLog(directory, recorder, { segmentBytesMax });
    const busy = await node.group('busy');
    const slow = await node.group('slow');
    // The busy group writes into every segment; the slow one writes one entry now and then.
    let slowIndex = 0;
    for (let index = 1; index <= 300; index += 5) {
      await busy.save(
        { entries: entries(index, index + 4, 1, 400), hardState: { term: 1, vote: 1, commit: index + 4 } },
        { sync: false },
      );
      if (index % 40 === 1) {
        slowIndex++;
        await slow.save(
          {
            entries: entries(slowIndex, slowIndex, 1, 100),
            hardState: { term: 1, vote: 1, commit: slowIndex },
          },
          { sync: false },
        );
      }
    }
    const segments = node.segmentCount();
    expect(segments).toBeGreaterThan(8);
    // The tail is never released, so asking for more segments than there are names the same.
    expect(node.pinningGroups(segments + 5)).toEqual(node.pinningGroups(segments - 1));
    expect(
      node
        .pinningGroups()
        .map((group) => group.groupId)
        .sort(),
    ).toEqual(['busy', 'slow']);
    const compactAsNamed = async (count: number): Promise<void> => {
      for (const { groupId, compactThroughIndex } of node.pinningGroups(count)) {
        const group = groupId === 'busy' ? busy : slow;
        await group.createSnapshot(compactThroughIndex);
        await group.compact(compactThroughIndex);
      }
    };
    // Compacting each group named for the 3 oldest segments through its index releases them, and
    // only them (the busy group's later entries keep the next one).
    await compactAsNamed(3);
    expect(node.segmentCount()).toBe(segments - 3);
    await compactAsNamed(node.segmentCount() - 1);
    expect(node.segmentCount()).toBe(1);
    expect(node.pinningGroups(10)).toEqual([]);
    expect(recorder.totalBytes).toBe(node.logBytes());
    const expected = { busy: stateOf(busy), slow: stateOf(slow) };
    await node.close();
    const reopened = await openNodeLog(directory, new Recorder(), { segmentBytesMax });
    expect(await statesOf(reopened, ['busy', 'slow'])).toEqual(expected);
    await reopened.close();
  });

  it('deletes a segment once nothing pins it, keeps the directory bounded, and reopens from what is left', async () => {
    const recorder = new NodeRecorder();
    const segmentBytesMax = 64 * KIB;
    const node = await openNodeLog(directory, recorder, { segmentBytesMax });
    const groups = await Promise.all(['a', 'b', 'c'].map((id) => node.group(id)));
    let directoryBytesMax = 0;
    for (let index = 1; index <= 3000; index += 20) {
      await Promise.all(
        groups.map((group) =>
          group.save(
            {
              entries: entries(index, index + 19, 1, 256),
              hardState: { term: 1, vote: 1, commit: index + 19 },
            },
            { sync: true },
          ),
        ),
      );
      const last = index + 19;
      // Each group compacts on its own schedule, keeping 100 entries for slow followers.
      for (const [i, group] of groups.entries()) {
        if (last % (200 * (i + 1)) === 0) {
          await group.createSnapshot(last);
          await group.compact(last - 100);
        }
      }
      directoryBytesMax = Math.max(directoryBytesMax, node.logBytes());
    }
    // At most ~600 live entries of ~270 bytes per group, plus a partly free oldest segment and the tail.
    expect(directoryBytesMax).toBeLessThan(3 * 700 * 300 + 2 * segmentBytesMax);
    expect((await segmentFiles(directory)).length).toBe(node.segmentCount());
    expect((await segmentFiles(directory))[0]).not.toBe('0000000000000001.log');
    for (const group of groups) expect(group.logBytes()).toBeGreaterThan(0);
    const expected = Object.fromEntries(groups.map((group) => [group.groupId, stateOf(group)]));
    await node.close();
    const reopened = await openNodeLog(directory, new Recorder(), { segmentBytesMax });
    expect(await statesOf(reopened, ['a', 'b', 'c'])).toEqual(expected);
    await reopened.close();
  });

  it('removeGroup: durable, frees the segments the group pinned, and a reopen does not bring it back', async () => {
    const segmentBytesMax = 8 * KIB;
    const node = await openNodeLog(directory, new Recorder(), { segmentBytesMax });
    const stays = await node.group('stays');
    const goes = await node.group('goes');
    await goes.append(entries(1, 5, 1, 500), { sync: false });
    for (let index = 1; index <= 100; index += 5) {
      await stays.append(entries(index, index + 4, 1, 500), { sync: false });
    }
    await stays.createSnapshot(100);
    await stays.compact(100);
    expect(node.pinningGroups()).toEqual([{ groupId: 'goes', firstIndex: 1, compactThroughIndex: 5 }]);
    const pinned = node.segmentCount();
    // A write queued before the removal is written first; writes after it are refused.
    const lastWrite = goes.append(entries(6, 6, 1), { sync: false });
    await node.removeGroup('goes');
    await lastWrite;
    await expect(goes.append([entry(7, 1)])).rejects.toMatchObject({ code: 'RAFT_LOG_CLOSED' });
    await goes.close();
    expect(node.segmentCount()).toBeLessThan(pinned);
    expect(node.groupIds()).toEqual(['stays']);
    // Removing again does nothing.
    await node.removeGroup('goes');
    await node.close();

    let reopened = await openNodeLog(directory, new Recorder(), { segmentBytesMax });
    expect(reopened.groupIds()).toEqual(['stays']);
    // The id can be used again: a new, empty group.
    const again = await reopened.group('goes');
    expect(again.created).toBe(true);
    expect(again.lastIndex()).toBe(0);
    await again.append(entries(1, 2, 7));
    await reopened.close();
    reopened = await openNodeLog(directory, new Recorder(), { segmentBytesMax });
    const found = await reopened.group('goes');
    expect(liveEntries(found).map((e) => e.term)).toEqual([7, 7]);
    await reopened.close();
  });

  it('closing a group log leaves the node log and the other groups open', async () => {
    const recorder = new NodeRecorder();
    const node = await openNodeLog(directory, recorder);
    const a = await node.group('a');
    const b = await node.group('b');
    await a.append(entries(1, 3, 1), { sync: false });
    const fsyncsBefore = recorder.segmentFsyncs;
    await a.close();
    // Its unsynced write was synced by the close.
    expect(recorder.segmentFsyncs - fsyncsBefore).toBe(1);
    await expect(a.append([entry(4, 1)])).rejects.toMatchObject({ code: 'RAFT_LOG_CLOSED' });
    await b.append(entries(1, 2, 1));
    const a2 = await node.group('a');
    expect(a2.created).toBe(false);
    expect(a2.lastIndex()).toBe(3);
    await node.close();
    await expect(b.append([entry(3, 1)])).rejects.toMatchObject({ code: 'RAFT_LOG_CLOSED' });
    await expect(node.group('c')).rejects.toMatchObject({ code: 'RAFT_LOG_CLOSED' });
  });

  it('refuses programmer errors with assertions, and stops only the group that broke one', async () => {
    const node = await openNodeLog(directory, new Recorder(), { recordBytesMax: 4096 });
    await expect(node.group('')).rejects.toThrow(/assertion failed/);
    await expect(node.group('no spaces')).rejects.toThrow(/assertion failed/);
    await expect(node.group('x'.repeat(64))).rejects.toThrow(/assertion failed/);
    const a = await node.group('a');
    const b = await node.group('b');
    await expect(node.group('a')).rejects.toThrow(/already open/);
    await a.append(entries(1, 5, 2));
    await expect(a.append([entry(8, 2)])).rejects.toThrow(/assertion failed/);
    await expect(a.append([entry(6, 2)])).rejects.toMatchObject({ code: 'RAFT_LOG_FAILED' });
    // The other groups go on.
    await b.append([entry(1, 1, 5000 - 4096 + 100)]);
    await expect(b.append([entry(2, 1, 5000)])).rejects.toThrow(/over recordBytesMax/);
    await a.close();
    await expect(node.group('a')).rejects.toMatchObject({ code: 'RAFT_LOG_FAILED' });
    const c = await node.group('c');
    await c.append(entries(1, 2, 1));
    await expect(c.compact(0)).rejects.toBeInstanceOf(CompactedError);
    await c.createSnapshot(2);
    await expect(c.createSnapshot(2)).rejects.toBeInstanceOf(SnapshotOutOfDateError);
    await c.append(entries(3, 4, 1));
    await expect(c.compact(3)).rejects.toThrow(/past the snapshot/);
    await node.close();
    // What was written before the assertion is intact.
    const reopened = await openNodeLog(directory);
    const found = await reopened.group('a');
    expect(found.lastIndex()).toBe(5);
    await reopened.close();
  });

  it('starts a segment past segmentBytesMax and splits batches over recordBytesMax', async () => {
    const recorder = new NodeRecorder();
    const options = { segmentBytesMax: 16 * KIB, recordBytesMax: 8 * KIB };
    const node = await openNodeLog(directory, recorder, options);
    const a = await node.group('a');
    const b = await node.group('b');
    for (let index = 1; index <= 100; index += 10) {
      await Promise.all([
        a.save({ entries: entries(index, index + 9, 1, 1000) }, { sync: index % 50 === 1 }),
        b.save({ entries: entries(b.lastIndex() + 1, b.lastIndex() + 2, 1, 3000) }, { sync: false }),
      ]);
    }
    const files = await segmentFiles(directory);
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) expect(file).toMatch(/^[0-9a-f]{16}\.log$/);
    // The first segment held only the groups' creation, which later checkpoints repeat: it went.
    expect(files[0]).not.toBe('0000000000000001.log');
    expect(recorder.segmentCount).toBe(files.length);
    expect(recorder.totalBytes).toBe(node.logBytes());
    const expected = { a: stateOf(a), b: stateOf(b) };
    await node.close();
    const reopened = await openNodeLog(directory, new Recorder(), options);
    expect(await statesOf(reopened, ['a', 'b'])).toEqual(expected);
    await reopened.close();
  });

  it('is a ReplicaLog, like RaftLogStore', async () => {
    const node = await openNodeLog(path.join(directory, 'nested', 'node'));
    const log: ReplicaLog = await node.group('g1', { confState: CONF_STATE });
    expect(log.initialState()).toEqual({ hardState: { term: 0, vote: 0, commit: 0 }, confState: CONF_STATE });
    expect(log.created).toBe(true);
    await (log as GroupLog).close();
    await node.close();
  });
});
