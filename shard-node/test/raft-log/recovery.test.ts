import { cp, mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Entry, HardState } from '../../src/raft/index.js';
import { isRaftLogError, type RaftLogStore } from '../../src/raft-log/index.js';
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

interface State {
  readonly entries: readonly Entry[];
  readonly hardState: HardState;
}

function stateOf(store: RaftLogStore): State {
  return { entries: liveEntries(store), hardState: store.hardState() };
}

describe('recovery', () => {
  let root: string;
  let caseNumber = 0;

  beforeAll(async () => {
    root = await temporaryDirectory();
  });

  afterAll(async () => {
    await removeDirectory(root);
  });

  /** A copy of `source` to damage, so that every case starts from the same bytes. */
  async function copyOf(source: string): Promise<string> {
    const target = path.join(root, `case-${caseNumber++}`);
    await cp(source, target, { recursive: true });
    return target;
  }

  /** A log directory holding only `name` with `bytes`: one damaged copy of a pristine segment. */
  async function singleFileCopy(name: string, bytes: Uint8Array): Promise<string> {
    const target = path.join(root, `case-${caseNumber++}`);
    await mkdir(target);
    await writeFile(path.join(target, name), bytes);
    return target;
  }

  function flipped(bytes: Buffer, offset: number): Buffer {
    const copy = Buffer.from(bytes);
    copy[offset] = copy[offset]! ^ 0x5a;
    return copy;
  }

  async function flipByte(file: string, offset: number): Promise<void> {
    const bytes = await readFile(file);
    bytes[offset] = bytes[offset]! ^ 0x5a;
    await writeFile(file, bytes);
  }

  async function openError(directory: string): Promise<unknown> {
    return openStore(directory).then(
      async (store) => {
        await store.close();
        return undefined;
      },
      (error: unknown) => error,
    );
  }

  describe('in a single segment', () => {
    let pristine: string;
    let file: string;
    let pristineBytes: Buffer;
    let before: State;
    let after: State;
    /** Where the last record (one save of 2 entries) starts and ends. */
    let lastRecordStart: number;
    let lastRecordEnd: number;

    beforeAll(async () => {
      pristine = path.join(root, 'single');
      const store = await openStore(pristine);
      await store.append(entries(1, 5, 1, 20));
      await store.setHardState({ term: 1, vote: 1, commit: 3 });
      await store.append(entries(6, 8, 2, 20));
      before = stateOf(store);
      lastRecordStart = store.logBytes();
      await store.append(entries(9, 10, 2, 4));
      after = stateOf(store);
      lastRecordEnd = store.logBytes();
      await store.close();
      file = (await segmentFiles(pristine))[0]!;
      pristineBytes = await readFile(path.join(pristine, file));
    });

    it('opens a torn tail cut at every byte of the last record, without that record', async () => {
      expect(lastRecordEnd - lastRecordStart).toBeGreaterThan(50);
      for (let cut = lastRecordStart; cut < lastRecordEnd; cut++) {
        const directory = await singleFileCopy(file, pristineBytes.subarray(0, cut));
        const recorder = new Recorder();
        const store = await openStore(directory, recorder);
        expect(stateOf(store)).toEqual(before);
        expect(recorder.warnings.map((warning) => warning.message)).toEqual(
          cut === lastRecordStart ? [] : ['raft-log: truncated a torn tail'],
        );
        // The log goes on after the truncated tail, and the next open sees no damage.
        if (cut % 8 === 0) {
          await store.append([entry(9, 3)], { sync: false });
          await store.close();
          const reopened = await openStore(directory);
          expect(reopened.lastIndex()).toBe(9);
          expect(reopened.term(9)).toBe(3);
          await reopened.close();
        } else {
          await store.close();
        }
        await rm(directory, { recursive: true });
      }
    });

    it('opens without the last record when a byte of it is flipped', async () => {
      for (let offset = lastRecordStart; offset < lastRecordEnd; offset += 3) {
        const directory = await singleFileCopy(file, flipped(pristineBytes, offset));
        const recorder = new Recorder();
        const store = await openStore(directory, recorder);
        expect(stateOf(store)).toEqual(before);
        expect(recorder.warnings).toHaveLength(1);
        expect(recorder.warnings[0]!.fields).toMatchObject({ offsetBytes: lastRecordStart });
        await store.close();
        await rm(directory, { recursive: true });
      }
    });

    it('refuses to open with RAFT_LOG_CORRUPT when a byte of an earlier record is flipped', async () => {
      // Every byte of the records before the last one: checkpoint, entries, hard state, entries.
      for (let offset = 0; offset < lastRecordStart; offset += 3) {
        const directory = await singleFileCopy(file, flipped(pristineBytes, offset));
        const error = await openError(directory);
        expect(isRaftLogError(error, 'RAFT_LOG_CORRUPT'), `flip at ${offset}: ${String(error)}`).toBe(true);
        expect((error as Error).message).toContain(file);
        expect((error as Error).message).toMatch(/at offset \d+/);
        await rm(directory, { recursive: true });
      }
    });

    it('keeps the pristine log intact', async () => {
      const store = await openStore(await copyOf(pristine));
      expect(stateOf(store)).toEqual(after);
      await store.close();
    });
  });

  describe('across segments', () => {
    let pristine: string;
    let files: string[];
    let expected: State;

    beforeAll(async () => {
      pristine = path.join(root, 'segments');
      const store = await openStore(pristine, new Recorder(), { segmentBytesMax: 4096 });
      for (let index = 1; index <= 60; index += 5) {
        await store.save(
          { entries: entries(index, index + 4, 1, 200), hardState: { term: 1, vote: 1, commit: index } },
          { sync: false },
        );
      }
      expected = stateOf(store);
      await store.close();
      files = await segmentFiles(pristine);
    });

    it('replays every segment', async () => {
      expect(files.length).toBeGreaterThan(3);
      const store = await openStore(await copyOf(pristine));
      expect(stateOf(store)).toEqual(expected);
      await store.close();
    });

    it('refuses a damaged byte, a cut tail or a missing file in a segment before the last', async () => {
      const second = files[1]!;
      const damages: [string, (directory: string) => Promise<void>][] = [
        ['flipped byte in the middle', (directory) => flipByte(path.join(directory, second), 300)],
        [
          'flipped byte in the last record',
          async (directory) => {
            const bytes = await readFile(path.join(directory, second));
            await flipByte(path.join(directory, second), bytes.length - 5);
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
      ];
      for (const [name, damage] of damages) {
        const directory = await copyOf(pristine);
        await damage(directory);
        const error = await openError(directory);
        expect(isRaftLogError(error, 'RAFT_LOG_CORRUPT'), `${name}: ${String(error)}`).toBe(true);
      }
    });

    it('refuses a log whose newest segments are gone, rather than open it shorter', async () => {
      expect(await readFile(path.join(pristine, 'NEWEST'), 'latin1')).toBe(
        `${files.length.toString(16).padStart(16, '0')}\n`,
      );
      const damages: [string, (directory: string) => Promise<void>][] = [
        ['the newest segment deleted', (directory) => rm(path.join(directory, files.at(-1)!))],
        [
          'the two newest deleted',
          async (directory) => {
            for (const file of files.slice(-2)) await rm(path.join(directory, file));
          },
        ],
        [
          'every segment deleted',
          async (directory) => {
            for (const file of files) await rm(path.join(directory, file));
          },
        ],
      ];
      for (const [name, damage] of damages) {
        const directory = await copyOf(pristine);
        await damage(directory);
        const error = await openError(directory);
        expect(isRaftLogError(error, 'RAFT_LOG_CORRUPT'), `${name}: ${String(error)}`).toBe(true);
        expect(String(error), name).toMatch(
          /NEWEST is corrupt at offset 0: it names segment \d+ as the newest made durable/,
        );
      }
      const garbled = await copyOf(pristine);
      await writeFile(path.join(garbled, 'NEWEST'), 'not a segment');
      expect(String(await openError(garbled))).toMatch(/NEWEST does not name a segment/);
      // A log written before NEWEST existed opens, and gets one.
      const older = await copyOf(pristine);
      await rm(path.join(older, 'NEWEST'));
      const store = await openStore(older);
      expect(stateOf(store)).toEqual(expected);
      await store.close();
      expect(await readFile(path.join(older, 'NEWEST'), 'latin1')).toBe(
        await readFile(path.join(pristine, 'NEWEST'), 'latin1'),
      );
    });
  });

  it('loses at most the unsynced tail in a crash between write and fsync, never an earlier record', async () => {
    const pristine = path.join(root, 'crash');
    const store = await openStore(pristine);
    // Each save is one record, so the log after a cut is exactly the log after some save.
    const states: State[] = [stateOf(store)];
    const endOffsets: number[] = [store.logBytes()];
    const synced: boolean[] = [true];
    let term = 1;
    let lastIndex = 0;
    for (let step = 0; step < 40; step++) {
      const sync = step % 4 === 3;
      if (step % 5 === 4) {
        term++;
        await store.setHardState({ term, vote: 1, commit: lastIndex }, { sync });
      } else {
        // Now and then, overwrite a short suffix at a new term, as a follower does.
        const from = step % 7 === 6 ? Math.max(1, lastIndex - 2) : lastIndex + 1;
        if (from <= lastIndex) term++;
        lastIndex = from + 2;
        await store.append(entries(from, lastIndex, term, 50), { sync });
      }
      states.push(stateOf(store));
      endOffsets.push(store.logBytes());
      synced.push(sync);
    }
    await store.close();
    const file = (await segmentFiles(pristine))[0]!;
    const fileBytes = endOffsets[endOffsets.length - 1]!;
    for (let trial = 0; trial < 20; trial++) {
      // The crash happens after save `crashAfter`: everything up to the last synced save before
      // it is on disk, and any prefix of the bytes written since.
      const crashAfter = 1 + ((trial * 13) % (states.length - 1));
      let lastSynced = crashAfter;
      while (!synced[lastSynced]) lastSynced--;
      const durableBytes = endOffsets[lastSynced]!;
      const cut =
        durableBytes +
        Math.floor((((trial * 7919) % 1000) / 1000) * (endOffsets[crashAfter]! - durableBytes + 1));
      const directory = await copyOf(pristine);
      await truncate(path.join(directory, file), Math.min(cut, fileBytes));
      const reopened = await openStore(directory);
      let survivor = 0;
      while (survivor + 1 < endOffsets.length && endOffsets[survivor + 1]! <= cut) survivor++;
      expect(survivor).toBeGreaterThanOrEqual(lastSynced);
      expect(stateOf(reopened)).toEqual(states[survivor]);
      await reopened.close();
      await rm(directory, { recursive: true });
    }
  });
});
