import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { CompactedError, SnapshotOutOfDateError, UnavailableError } from '../../src/raft/index.js';
import type { ConfState } from '../../src/raft/index.js';
import { RaftLogStore } from '../../src/raft-log/index.js';
import {
  entries,
  entry,
  liveEntries,
  openStore,
  Recorder,
  removeDirectory,
  segmentFiles,
  temporaryDirectory,
} from './helpers.js';

const CONF_STATE: ConfState = {
  voters: [1, 2, 3],
  learners: [4],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};

describe('raft log store', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await temporaryDirectory();
  });

  afterEach(async () => {
    await removeDirectory(directory);
  });

  it('starts fresh in a missing directory, with the bootstrap configuration', async () => {
    const logDirectory = path.join(directory, 'nested', 'wal');
    const store = await openStore(logDirectory, new Recorder(), { confState: CONF_STATE });
    expect(store.firstIndex()).toBe(1);
    expect(store.lastIndex()).toBe(0);
    expect(store.term(0)).toBe(0);
    expect(store.initialState()).toEqual({
      hardState: { term: 0, vote: 0, commit: 0 },
      confState: CONF_STATE,
    });
    expect(() => store.term(1)).toThrow(UnavailableError);
    await store.close();
    // The bootstrap configuration is durable: a reopen without the option keeps it.
    const reopened = await openStore(logDirectory);
    expect(reopened.initialState().confState).toEqual(CONF_STATE);
    await reopened.close();
  });

  it('says whether an open created the log: a log that existed, even empty, was not created', async () => {
    const fresh = await openStore(directory);
    expect(fresh.created).toBe(true);
    await fresh.close();
    // Nothing appended: the reopened log is as empty, but it existed (the replica relies on this to
    // tell an interrupted snapshot install from a removed raft/ folder).
    const reopened = await openStore(directory);
    expect(reopened.created).toBe(false);
    expect(reopened.lastIndex()).toBe(0);
    await reopened.close();
    await removeDirectory(directory);
    const recreated = await openStore(directory);
    expect(recreated.created).toBe(true);
    await recreated.close();
  });

  it('keeps entries, hard state and snapshot metadata across close and reopen', async () => {
    const store = await openStore(directory);
    await store.append(entries(1, 10, 1));
    await store.save(
      { entries: entries(11, 20, 2), hardState: { term: 2, vote: 1, commit: 15 } },
      { sync: true },
    );
    await store.append([{ index: 21, term: 2, type: 'confChange', data: new Uint8Array([1, 2, 3]) }]);
    await store.append([{ index: 22, term: 3, type: 'confChangeV2', data: new Uint8Array(0) }]);
    await store.createSnapshot(12, CONF_STATE);
    await store.compact(10);
    await store.setHardState({ term: 3, vote: 2, commit: 21 });
    const expected = {
      firstIndex: store.firstIndex(),
      lastIndex: store.lastIndex(),
      entries: liveEntries(store),
      initialState: store.initialState(),
      snapshot: store.snapshot(),
      terms: [10, 11, 20, 21, 22].map((index) => store.term(index)),
    };
    expect(expected.firstIndex).toBe(11);
    expect(expected.lastIndex).toBe(22);
    expect(expected.terms).toEqual([1, 2, 2, 2, 3]);
    await store.close();

    const reopened = await openStore(directory);
    expect({
      firstIndex: reopened.firstIndex(),
      lastIndex: reopened.lastIndex(),
      entries: liveEntries(reopened),
      initialState: reopened.initialState(),
      snapshot: reopened.snapshot(),
      terms: [10, 11, 20, 21, 22].map((index) => reopened.term(index)),
    }).toEqual(expected);
    expect(reopened.snapshot().metadata).toEqual({ index: 12, term: 2, confState: CONF_STATE });
    expect(() => reopened.term(9)).toThrow(CompactedError);
    expect(() => reopened.entries(10, 12, Infinity)).toThrow(CompactedError);
    await reopened.close();
  });

  it('overwrites a conflicting suffix, and the overwrite survives reopen', async () => {
    const store = await openStore(directory);
    await store.append(entries(1, 10, 1));
    await store.append(entries(6, 8, 2));
    expect(store.lastIndex()).toBe(8);
    expect(store.term(5)).toBe(1);
    expect(store.term(6)).toBe(2);
    await store.append(entries(9, 9, 3));
    const expected = liveEntries(store);
    await store.close();
    const reopened = await openStore(directory);
    expect(reopened.lastIndex()).toBe(9);
    expect(liveEntries(reopened)).toEqual(expected);
    expect(liveEntries(reopened).map((e) => e.term)).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 3]);
    await reopened.close();
  });

  it('installs a snapshot from the leader: keeps the matching suffix, or drops a mismatching log', async () => {
    const store = await openStore(directory);
    await store.append(entries(1, 10, 1));
    // The log holds entry 5 at term 1: only entries up to 5 go.
    await store.applySnapshotMetadata({ index: 5, term: 1, confState: CONF_STATE });
    expect([store.firstIndex(), store.lastIndex()]).toEqual([6, 10]);
    // The log has no entry 20: everything goes and the log continues after the snapshot.
    await store.save(
      {
        snapshot: { index: 20, term: 4, confState: CONF_STATE },
        entries: entries(21, 22, 4),
        hardState: { term: 4, vote: 0, commit: 20 },
      },
      { sync: true },
    );
    expect([store.firstIndex(), store.lastIndex(), store.term(20)]).toEqual([21, 22, 4]);
    await expect(
      store.applySnapshotMetadata({ index: 20, term: 4, confState: CONF_STATE }),
    ).rejects.toBeInstanceOf(SnapshotOutOfDateError);
    await store.close();
    const reopened = await openStore(directory);
    expect([reopened.firstIndex(), reopened.lastIndex(), reopened.term(20), reopened.term(22)]).toEqual([
      21, 22, 4, 4,
    ]);
    expect(reopened.snapshot().metadata.index).toBe(20);
    expect(reopened.initialState().hardState).toEqual({ term: 4, vote: 0, commit: 20 });
    await reopened.close();
  });

  it('limits entries() to maxBytes but returns at least one entry', async () => {
    const store = await openStore(directory);
    await store.append(entries(1, 10, 1, 100));
    expect(store.entries(1, 11, 0)).toHaveLength(1);
    expect(store.entries(1, 11, 2 * 116)).toHaveLength(2);
    expect(store.entries(3, 11, Infinity).map((e) => e.index)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    await store.close();
  });

  it('group commit: a save of 500 entries and a hard state is one write and exactly one fsync', async () => {
    const recorder = new Recorder();
    const store = await openStore(directory, recorder);
    const appendsBefore = recorder.appends;
    const fsyncsBefore = recorder.fsyncs;
    await store.save(
      { entries: entries(1, 500, 1, 1024), hardState: { term: 1, vote: 1, commit: 0 } },
      { sync: true },
    );
    expect(recorder.fsyncs - fsyncsBefore).toBe(1);
    expect(recorder.appends - appendsBefore).toBe(1);
    // Without sync, nothing is fsynced until a later synced write or close.
    await store.save({ entries: entries(501, 502, 1) }, { sync: false });
    expect(recorder.fsyncs - fsyncsBefore).toBe(1);
    await store.close();
    expect(recorder.fsyncs - fsyncsBefore).toBe(2);
  });

  it('starts a new segment past segmentBytesMax and splits batches over recordBytesMax', async () => {
    const recorder = new Recorder();
    const store = await openStore(directory, recorder, {
      segmentBytesMax: 16 * 1024,
      recordBytesMax: 8 * 1024,
    });
    for (let index = 1; index <= 100; index += 10) {
      await store.save({ entries: entries(index, index + 9, 1, 1000) }, { sync: index % 50 === 1 });
    }
    const files = await segmentFiles(directory);
    expect(files.length).toBeGreaterThan(5);
    expect(files[0]).toBe('0000000000000001-0000000000000001.log');
    expect(recorder.segmentCount).toBe(files.length);
    expect(recorder.totalBytes).toBe(store.logBytes());
    const expected = liveEntries(store);
    await store.close();
    const reopened = await openStore(directory);
    expect(liveEntries(reopened)).toEqual(expected);
    await reopened.close();
  });

  it('refuses programmer errors with assertions', async () => {
    const store = await openStore(directory, new Recorder(), { recordBytesMax: 4096 });
    await store.append(entries(1, 5, 2));
    // Entries at or below the base are part of the snapshot and skipped, like MemoryStorage.
    await store.append([entry(0, 0)]);
    expect(store.lastIndex()).toBe(5);
    await store.close();

    const uncovered = await openStore(directory);
    await expect(uncovered.compact(3)).rejects.toThrow(/past the snapshot/);
    await uncovered.close();

    for (const bad of [
      [entry(8, 2)], // a gap after the last index
      [entry(6, 2), entry(8, 2)], // a gap inside the batch
      [entry(6, 1)], // a term lower than the entry before
      [entry(6, 2, 5000)], // an entry over recordBytesMax
    ]) {
      const reopened = await openStore(directory, new Recorder(), { recordBytesMax: 4096 });
      await expect(reopened.append(bad)).rejects.toThrow(/assertion failed/);
      // A broken assertion stops the store: later writes are refused.
      await expect(reopened.append([entry(6, 2)])).rejects.toMatchObject({ code: 'RAFT_LOG_FAILED' });
      await reopened.close();
    }
    const reopened = await openStore(directory);
    expect(reopened.lastIndex()).toBe(5);
    await expect(reopened.compact(0)).rejects.toBeInstanceOf(CompactedError);
    await reopened.close();
    await expect(reopened.append([entry(6, 2)])).rejects.toMatchObject({ code: 'RAFT_LOG_CLOSED' });
  });

  it('queues writes in call order, so concurrent callers keep the file consistent', async () => {
    const store = await openStore(directory, new Recorder(), { segmentBytesMax: 8192 });
    const writes: Promise<void>[] = [];
    for (let index = 1; index <= 100; index++) {
      writes.push(
        store.save(
          { entries: [entry(index, 1, 300)], hardState: { term: 1, vote: 1, commit: index - 1 } },
          { sync: index % 10 === 0 },
        ),
      );
      if (index % 25 === 0) {
        writes.push(store.createSnapshot(index - 5).then(() => store.compact(index - 10)));
      }
    }
    await Promise.all(writes);
    const expected = {
      entries: liveEntries(store),
      hardState: store.hardState(),
      snapshot: store.snapshot(),
    };
    await store.close();
    const reopened = await RaftLogStore.open({ directory });
    expect({
      entries: liveEntries(reopened),
      hardState: reopened.hardState(),
      snapshot: reopened.snapshot(),
    }).toEqual(expected);
    await reopened.close();
  });
});
