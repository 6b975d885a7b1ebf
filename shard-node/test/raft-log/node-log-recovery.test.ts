/**
 * Recovery of the node log: a torn tail (the last batch cut at every byte, or a byte of it
 * flipped) restores every group exactly to the writes whose records survived; damage anywhere else
 * refuses to open with RAFT_LOG_CORRUPT.
 */
import { appendFile, cp, mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  isRaftLogError,
  RECORD_BYTES_MAX_DEFAULT,
  type GroupLog,
  type NodeLog,
  type ReplicaLog,
} from '../../src/raft-log/index.js';
import { groupRecordTag } from '../../src/raft-log/group-id.js';
import {
  addGroupCreated,
  GROUP_RECORD_TYPE_SHIFT,
  isNodeRecordType,
} from '../../src/raft-log/node-record-codec.js';
import { RecordBatch } from '../../src/raft-log/record-batch.js';
import { readRecordAt } from '../../src/raft-log/record-codec.js';
import {
  entries,
  liveEntries,
  openNodeLog,
  Recorder,
  removeDirectory,
  segmentFiles,
  temporaryDirectory,
} from './helpers.js';

const GROUP_IDS = ['a', 'b', 'c'] as const;

type States = Record<string, unknown>;

function stateOf(log: ReplicaLog): unknown {
  return {
    entries: liveEntries(log),
    firstIndex: log.firstIndex(),
    hardState: log.hardState(),
    snapshot: log.snapshot().metadata,
  };
}

async function statesOf(node: NodeLog): Promise<States> {
  const states: States = {};
  for (const groupId of node.groupIds().sort()) {
    const group = await node.group(groupId);
    states[groupId] = stateOf(group);
    await group.close();
  }
  return states;
}

/** Where each record of a node log segment ends. */
function recordEnds(buffer: Buffer): number[] {
  const ends = [];
  let offset = 0;
  while (offset < buffer.length) {
    const read = readRecordAt(buffer, offset, RECORD_BYTES_MAX_DEFAULT, isNodeRecordType);
    if (read.kind !== 'record') throw new Error(`no record at ${offset}`);
    ends.push(read.nextOffset);
    offset = read.nextOffset;
  }
  return ends;
}

describe('node log recovery', () => {
  let root: string;
  let caseNumber = 0;

  beforeAll(async () => {
    root = await temporaryDirectory();
  });

  afterAll(async () => {
    await removeDirectory(root);
  });

  async function copyOf(source: string): Promise<string> {
    const target = path.join(root, `case-${caseNumber++}`);
    await cp(source, target, { recursive: true });
    return target;
  }

  /** A node log directory holding `name` with `bytes` and the pristine NEWEST. */
  async function singleFileCopy(pristine: string, name: string, bytes: Uint8Array): Promise<string> {
    const target = path.join(root, `case-${caseNumber++}`);
    await mkdir(target);
    await writeFile(path.join(target, name), bytes);
    await cp(path.join(pristine, 'NEWEST'), path.join(target, 'NEWEST'));
    return target;
  }

  function flipped(bytes: Buffer, offset: number): Buffer {
    const copy = Buffer.from(bytes);
    copy[offset] = copy[offset]! ^ 0x5a;
    return copy;
  }

  async function openError(directory: string): Promise<unknown> {
    return openNodeLog(directory).then(
      async (node) => {
        await node.close();
        return undefined;
      },
      (error: unknown) => error,
    );
  }

  describe('the last batch of three groups', () => {
    let pristine: string;
    let file: string;
    let pristineBytes: Buffer;
    /** Every group's state before the last batch. */
    let before: States;
    /** After each write of the last batch: the group it wrote and that group's state after it. */
    const writes: { groupId: string; state: unknown }[] = [];
    let batchStart: number;
    /** Where each record of the last batch ends (one record per write). */
    let batchRecordEnds: number[];

    beforeAll(async () => {
      pristine = path.join(root, 'batch');
      const node = await openNodeLog(pristine);
      const groups = new Map<string, GroupLog>();
      for (const groupId of GROUP_IDS) groups.set(groupId, await node.group(groupId));
      const [a, b, c] = GROUP_IDS.map((groupId) => groups.get(groupId)!);
      // History: several rounds with snapshots and compactions, all synced.
      await Promise.all([
        a!.save(
          { entries: entries(1, 8, 1, 30), hardState: { term: 1, vote: 1, commit: 4 } },
          { sync: true },
        ),
        b!.save(
          { entries: entries(1, 3, 2, 30), hardState: { term: 2, vote: 2, commit: 1 } },
          { sync: true },
        ),
        c!.append(entries(1, 5, 1, 30)),
      ]);
      await a!.createSnapshot(4);
      await a!.compact(3);
      await b!.applySnapshotMetadata({ index: 10, term: 3, confState: a!.snapshot().metadata.confState });
      await b!.setHardState({ term: 3, vote: 2, commit: 10 });
      before = Object.fromEntries(GROUP_IDS.map((groupId) => [groupId, stateOf(groups.get(groupId)!)]));
      batchStart = node.logBytes();
      // The last batch: one round of single-record writes, the groups interleaved, a conflicting
      // suffix among them.
      const round: [GroupLog, () => Promise<void>][] = [
        [a!, () => a!.append(entries(9, 10, 1, 20), { sync: false })],
        [b!, () => b!.append(entries(11, 12, 3, 20), { sync: false })],
        [c!, () => c!.setHardState({ term: 1, vote: 3, commit: 2 }, { sync: false })],
        [a!, () => a!.append(entries(7, 7, 2, 20), { sync: false })],
        [c!, () => c!.append(entries(6, 6, 1, 20), { sync: false })],
        [b!, () => b!.setHardState({ term: 3, vote: 2, commit: 12 }, { sync: true })],
        [a!, () => a!.setHardState({ term: 2, vote: 1, commit: 6 }, { sync: false })],
      ];
      const settled: Promise<void>[] = [];
      for (const [group, write] of round) {
        settled.push(write());
        writes.push({ groupId: group.groupId, state: stateOf(group) });
      }
      await Promise.all(settled);
      await node.close();
      file = (await segmentFiles(pristine))[0]!;
      pristineBytes = await readFile(path.join(pristine, file));
      batchRecordEnds = recordEnds(pristineBytes).filter((end) => end > batchStart);
      expect(batchRecordEnds).toHaveLength(round.length);
      expect(batchRecordEnds.at(-1)).toBe(pristineBytes.length);
    });

    /** Every group's state when the first `survivors` writes of the last batch are on disk. */
    function expectedAfter(survivors: number): States {
      const states: States = { ...before };
      for (const write of writes.slice(0, survivors)) states[write.groupId] = write.state;
      return states;
    }

    it('restores every group to the writes whose records survived, for a cut at every byte of the batch', async () => {
      expect(pristineBytes.length - batchStart).toBeGreaterThan(200);
      for (let cut = batchStart; cut <= pristineBytes.length; cut++) {
        const directory = await singleFileCopy(pristine, file, pristineBytes.subarray(0, cut));
        const recorder = new Recorder();
        const node = await openNodeLog(directory, recorder);
        const survivors = batchRecordEnds.filter((end) => end <= cut).length;
        expect(await statesOf(node), `cut at ${cut}`).toEqual(expectedAfter(survivors));
        const torn = cut !== batchStart && !batchRecordEnds.includes(cut);
        expect(recorder.warnings.map((warning) => warning.message)).toEqual(
          torn ? ['raft-log: truncated a torn tail'] : [],
        );
        // The log goes on after the truncated tail, and the next open sees no damage.
        if (cut % 16 === 0) {
          const group = await node.group('c');
          await group.append(entries(group.lastIndex() + 1, group.lastIndex() + 1, 4), { sync: false });
          await group.close();
          const expected = await statesOf(node);
          await node.close();
          const reopened = await openNodeLog(directory);
          expect(await statesOf(reopened)).toEqual(expected);
          await reopened.close();
        } else {
          await node.close();
        }
        await rm(directory, { recursive: true });
      }
    });

    it('opens without the last record when a byte of it is flipped, and refuses a flip in any earlier record', async () => {
      const lastStart = batchRecordEnds.at(-2)!;
      for (let offset = batchStart; offset < pristineBytes.length; offset += 2) {
        const directory = await singleFileCopy(pristine, file, flipped(pristineBytes, offset));
        if (offset >= lastStart) {
          const recorder = new Recorder();
          const node = await openNodeLog(directory, recorder);
          expect(await statesOf(node), `flip at ${offset}`).toEqual(expectedAfter(writes.length - 1));
          expect(recorder.warnings[0]?.fields).toMatchObject({ offsetBytes: lastStart });
          await node.close();
        } else {
          // A damaged record followed by valid ones is not a torn write.
          const error = await openError(directory);
          expect(isRaftLogError(error, 'RAFT_LOG_CORRUPT'), `flip at ${offset}: ${String(error)}`).toBe(true);
        }
        await rm(directory, { recursive: true });
      }
    });

    it('refuses with RAFT_LOG_CORRUPT a flipped byte anywhere before the last batch', async () => {
      for (let offset = 0; offset < batchStart; offset += 5) {
        const directory = await singleFileCopy(pristine, file, flipped(pristineBytes, offset));
        const error = await openError(directory);
        expect(isRaftLogError(error, 'RAFT_LOG_CORRUPT'), `flip at ${offset}: ${String(error)}`).toBe(true);
        expect((error as Error).message).toContain(file);
        await rm(directory, { recursive: true });
      }
    });

    it('refuses valid records that contradict the ones before them', async () => {
      const damages: [string, Buffer][] = [];
      // A record of a group the log does not hold.
      const ghost = new RecordBatch(
        RECORD_BYTES_MAX_DEFAULT,
        groupRecordTag('ghost', GROUP_RECORD_TYPE_SHIFT),
      );
      ghost.addHardState({ term: 1, vote: 1, commit: 0 });
      damages.push(['a record of an unknown group', ghost.encode()]);
      // A group created twice.
      const twice = new RecordBatch(RECORD_BYTES_MAX_DEFAULT);
      addGroupCreated(twice, {
        groupId: 'a',
        checkpoint: {
          snapshot: {
            index: 0,
            term: 0,
            confState: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
          },
          hardState: { term: 0, vote: 0, commit: 0 },
          baseIndex: 0,
          baseTerm: 0,
          lastIndex: 0,
        },
      });
      damages.push(['a group created twice', twice.encode()]);
      // Entries that leave a gap in a group's log.
      const gap = new RecordBatch(RECORD_BYTES_MAX_DEFAULT, groupRecordTag('c', GROUP_RECORD_TYPE_SHIFT));
      gap.addEntries(entries(20, 20, 9), 0);
      gap.addHardState({ term: 9, vote: 1, commit: 0 });
      damages.push(['entries after a gap', gap.encode()]);
      for (const [name, records] of damages) {
        const directory = await copyOf(pristine);
        await appendFile(path.join(directory, file), records);
        const error = await openError(directory);
        expect(isRaftLogError(error, 'RAFT_LOG_CORRUPT'), `${name}: ${String(error)}`).toBe(true);
      }
    });
  });

  describe('across segments', () => {
    let pristine: string;
    let files: string[];
    let expected: States;

    beforeAll(async () => {
      pristine = path.join(root, 'segments');
      const node = await openNodeLog(pristine, new Recorder(), { segmentBytesMax: 4096 });
      const groups = await Promise.all(GROUP_IDS.map((groupId) => node.group(groupId)));
      for (let index = 1; index <= 40; index += 4) {
        await Promise.all(
          groups.map((group) =>
            group.save(
              { entries: entries(index, index + 3, 1, 100), hardState: { term: 1, vote: 1, commit: index } },
              { sync: false },
            ),
          ),
        );
      }
      for (const group of groups) await group.close();
      expected = await statesOf(node);
      await node.close();
      files = await segmentFiles(pristine);
    });

    it('replays every segment', async () => {
      expect(files.length).toBeGreaterThan(3);
      const node = await openNodeLog(await copyOf(pristine));
      expect(await statesOf(node)).toEqual(expected);
      await node.close();
    });

    it('refuses a damaged byte, a cut tail or a missing file in a segment before the last', async () => {
      const second = files[1]!;
      const damages: [string, (directory: string) => Promise<void>][] = [
        [
          'flipped byte in the middle',
          async (directory) => {
            const bytes = await readFile(path.join(directory, second));
            await writeFile(path.join(directory, second), flipped(bytes, 300));
          },
        ],
        [
          'cut tail',
          async (directory) => {
            const bytes = await readFile(path.join(directory, second));
            await truncate(path.join(directory, second), bytes.length - 10);
          },
        ],
        ['missing segment', (directory) => rm(path.join(directory, second))],
        ['newest segment missing', (directory) => rm(path.join(directory, files.at(-1)!))],
      ];
      for (const [name, damage] of damages) {
        const directory = await copyOf(pristine);
        await damage(directory);
        const error = await openError(directory);
        expect(isRaftLogError(error, 'RAFT_LOG_CORRUPT'), `${name}: ${String(error)}`).toBe(true);
      }
    });

    it('opens from a suffix of the segments when the oldest ones hold nothing any group needs', async () => {
      const directory = await copyOf(pristine);
      let node = await openNodeLog(directory, new Recorder(), { segmentBytesMax: 4096 });
      for (const groupId of GROUP_IDS) {
        const group = await node.group(groupId);
        await group.createSnapshot(36);
        await group.compact(36);
        await group.close();
      }
      expect(node.segmentCount()).toBeLessThan(files.length);
      expect((await segmentFiles(directory))[0]).not.toBe(files[0]);
      const states = await statesOf(node);
      await node.close();
      node = await openNodeLog(directory, new Recorder(), { segmentBytesMax: 4096 });
      expect(await statesOf(node)).toEqual(states);
      await node.close();
    });
  });
});
