/**
 * What a log reopened after a kill holds must be durable before the new process relies on it. A
 * kill keeps what the killed process wrote in the page cache, synced or not; a power cut after
 * the restart still loses the unsynced part. The new process replays it all, so it may acknowledge
 * entries that are not durable, and a node log's next checkpoint repeats state whose records are
 * not durable (found by the node simulator with 4 KiB segments: a restart after such a pair of
 * faults refused to open, "the checkpoint does not match the records before it").
 */
import { describe, expect, it } from 'vitest';
import { MemoryFileSystem } from '@impulse/common';
import { NodeLog, RaftLogStore } from '../../src/raft-log/index.js';
import { entries, liveEntries } from './helpers.js';

const hardState = (commit: number) => ({ term: 1, vote: 1, commit });

describe('a log reopened after a kill', () => {
  it('node log: keeps the unsynced entries it replayed through a later power cut', async () => {
    const disk = new MemoryFileSystem();
    const first = await NodeLog.open({ directory: '/raft', fileSystem: disk });
    const group = await first.group('g');
    await group.save({ entries: entries(1, 3, 1), hardState: hardState(0) }, { sync: true });
    await group.save({ entries: entries(4, 5, 1) }, { sync: false });
    disk.processCrash();

    const second = await NodeLog.open({ directory: '/raft', fileSystem: disk });
    // The restarted process holds entries 1 to 5: it may acknowledge them to its leader now.
    expect((await second.group('g')).lastIndex()).toBe(5);
    disk.powerCut();

    const third = await NodeLog.open({ directory: '/raft', fileSystem: disk });
    expect(liveEntries(await third.group('g'))).toEqual(entries(1, 5, 1));
    await third.close();
  });

  it('node log: a checkpoint written after the restart never repeats state a power cut then loses', async () => {
    const disk = new MemoryFileSystem();
    const options = { directory: '/raft', fileSystem: disk, segmentBytesMax: 4096 };
    const first = await NodeLog.open(options);
    const group = await first.group('g');
    await group.save({ entries: entries(1, 3, 1, 1000), hardState: hardState(1) }, { sync: true });
    // A commit alone is saved without a sync (a Ready's mustSync is false).
    await group.save({ hardState: hardState(3) }, { sync: false });
    disk.processCrash();

    const second = await NodeLog.open(options);
    const reopened = await second.group('g');
    expect(reopened.hardState().commit).toBe(3);
    // Past the segment's room: the log starts a new segment, whose checkpoint repeats commit 3.
    await reopened.save({ entries: entries(4, 6, 1, 1000) }, { sync: true });
    expect(second.segmentCount()).toBe(2);
    disk.powerCut();

    const third = await NodeLog.open(options);
    const recovered = await third.group('g');
    expect(recovered.hardState().commit).toBe(3);
    expect(recovered.lastIndex()).toBe(6);
    await third.close();
  });

  it('replica log: keeps the unsynced entries it replayed through a later power cut', async () => {
    const disk = new MemoryFileSystem();
    const first = await RaftLogStore.open({ directory: '/raft', fileSystem: disk });
    await first.save({ entries: entries(1, 3, 1), hardState: hardState(0) }, { sync: true });
    await first.save({ entries: entries(4, 5, 1) }, { sync: false });
    disk.processCrash();

    const second = await RaftLogStore.open({ directory: '/raft', fileSystem: disk });
    expect(second.lastIndex()).toBe(5);
    disk.powerCut();

    const third = await RaftLogStore.open({ directory: '/raft', fileSystem: disk });
    expect(liveEntries(third)).toEqual(entries(1, 5, 1));
    await third.close();
  });
});
