import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  directoryBytes,
  entries,
  liveEntries,
  openStore,
  Recorder,
  removeDirectory,
  segmentFiles,
  temporaryDirectory,
} from './helpers.js';

const KIB = 1024;

describe('compaction', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await temporaryDirectory();
  });

  afterEach(async () => {
    await removeDirectory(directory);
  });

  it('keeps the directory bounded under a steady write load', async () => {
    const entriesTotal = 20_000;
    const batchEntries = 100;
    const compactEveryEntries = 2_000;
    // Like etcd, keep some entries behind the snapshot so that a slightly slow follower catches up
    // from the log rather than from a snapshot.
    const catchUpEntries = 500;
    const segmentBytesMax = 512 * KIB;
    const recorder = new Recorder();
    const store = await openStore(directory, recorder, { segmentBytesMax });
    let directoryBytesMax = 0;
    let memoryBytesMax = 0;
    for (let index = 1; index <= entriesTotal; index += batchEntries) {
      const last = index + batchEntries - 1;
      await store.save(
        { entries: entries(index, last, 1, KIB), hardState: { term: 1, vote: 1, commit: last } },
        { sync: last % 1000 === 0 },
      );
      directoryBytesMax = Math.max(directoryBytesMax, store.logBytes());
      if (last % compactEveryEntries === 0) {
        await store.createSnapshot(last);
        await store.compact(last - catchUpEntries);
        const bytes = await directoryBytes(directory);
        expect(bytes).toBe(store.logBytes());
        directoryBytesMax = Math.max(directoryBytesMax, bytes);
      }
      memoryBytesMax = Math.max(memoryBytesMax, store.memoryBytes());
    }
    // Live entries are at most catchUpEntries + compactEveryEntries of ~1 KiB; on disk, add the
    // partly compacted oldest segment and the tail.
    const liveBytesMax = (catchUpEntries + compactEveryEntries) * (KIB + 64);
    const boundBytes = liveBytesMax + 2 * segmentBytesMax;
    console.log(
      `raft-log compaction: wrote ${(recorder.appendBytes / 1024 / 1024).toFixed(1)} MiB; directory at most ` +
        `${(directoryBytesMax / 1024 / 1024).toFixed(2)} MiB (bound ${(boundBytes / 1024 / 1024).toFixed(2)} MiB), ` +
        `${recorder.segmentCount} segments; memory at most ${(memoryBytesMax / 1024 / 1024).toFixed(2)} MiB`,
    );
    expect(recorder.appendBytes).toBeGreaterThan(entriesTotal * KIB);
    expect(directoryBytesMax).toBeLessThanOrEqual(boundBytes);
    expect(memoryBytesMax).toBeLessThanOrEqual(liveBytesMax);
    expect(store.firstIndex()).toBe(entriesTotal - catchUpEntries + 1);

    const expected = liveEntries(store);
    await store.close();
    const reopened = await openStore(directory, new Recorder(), { segmentBytesMax });
    expect(reopened.firstIndex()).toBe(entriesTotal - catchUpEntries + 1);
    expect(reopened.lastIndex()).toBe(entriesTotal);
    expect(reopened.snapshot().metadata.index).toBe(entriesTotal);
    expect(liveEntries(reopened)).toEqual(expected);
    await reopened.close();
  });

  it('reopens after compaction deleted the segments that held the entries before a gap', async () => {
    const recorder = new Recorder();
    const store = await openStore(directory, recorder, { segmentBytesMax: 8 * KIB });
    for (let index = 1; index <= 40; index += 5) {
      await store.append(entries(index, index + 4, 1, 500), { sync: false });
    }
    await store.createSnapshot(30);
    const segmentsBeforeCompaction = recorder.segmentCount;
    await store.compact(25);
    expect(recorder.segmentCount).toBeLessThan(segmentsBeforeCompaction);
    expect((await segmentFiles(directory))[0]).not.toMatch(/^0000000000000001-/);
    // The oldest remaining segment starts with a checkpoint whose base is older than its first
    // entry; replay bridges the gap with the compaction record.
    await store.save(
      { entries: entries(41, 45, 2, 500), hardState: { term: 2, vote: 1, commit: 45 } },
      { sync: true },
    );
    const expected = { entries: liveEntries(store), first: store.firstIndex(), hardState: store.hardState() };
    expect(expected.first).toBe(26);
    await store.close();
    const reopened = await openStore(directory);
    expect({
      entries: liveEntries(reopened),
      first: reopened.firstIndex(),
      hardState: reopened.hardState(),
    }).toEqual(expected);
    expect(reopened.term(25)).toBe(1);
    await reopened.close();
  });
});
