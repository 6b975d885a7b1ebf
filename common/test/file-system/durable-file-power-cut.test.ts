import { describe, expect, it } from 'vitest';
import {
  MemoryFileSystem,
  createDirectoryDurably,
  replaceFileDurably,
  replaceFileDurablyWith,
  syncDirectory,
  type FileHandle,
  type FileStat,
  type FileSystem,
  type OpenFlags,
} from '@impulse/common';

/** Thrown by every call once `CuttingFileSystem` cut the power: the process is gone. */
class PowerIsOff extends Error {
  constructor() {
    super('the power is off');
  }
}

/**
 * A `MemoryFileSystem` that cuts the power right after its `cutAfter`-th call returns (counting
 * the calls of the handles it opens), and fails every call from then on, as if the process died
 * with the power: it drives a durable-file helper step by step.
 */
class CuttingFileSystem implements FileSystem {
  private calls = 0;
  private off = false;

  constructor(
    private readonly fs: MemoryFileSystem,
    private readonly cutAfter: number,
    private readonly random: (() => number) | undefined,
  ) {}

  /** Whether the cut happened (false: the helper finished in fewer calls). */
  get cut(): boolean {
    return this.off;
  }

  open(path: string, flags: OpenFlags, mode?: number): Promise<FileHandle> {
    return this.step(async () => this.wrap(await this.fs.open(path, flags, mode)));
  }
  readFile(path: string): Promise<Buffer> {
    return this.step(() => this.fs.readFile(path));
  }
  readdir(path: string): Promise<string[]> {
    return this.step(() => this.fs.readdir(path));
  }
  mkdir(path: string, options?: { recursive?: boolean }): Promise<string | undefined> {
    return this.step(() => this.fs.mkdir(path, options));
  }
  rm(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void> {
    return this.step(() => this.fs.rm(path, options));
  }
  rename(from: string, to: string): Promise<void> {
    return this.step(() => this.fs.rename(from, to));
  }
  unlink(path: string): Promise<void> {
    return this.step(() => this.fs.unlink(path));
  }
  stat(path: string): Promise<FileStat> {
    return this.step(() => this.fs.stat(path));
  }

  private wrap(handle: FileHandle): FileHandle {
    return {
      write: (...args) => this.step(() => handle.write(...args)),
      writeNow: (...args) => {
        if (this.off) throw new PowerIsOff();
        const written = handle.writeNow(...args);
        this.counted();
        return written;
      },
      writeFile: (data) => this.step(() => handle.writeFile(data)),
      read: (...args) => this.step(() => handle.read(...args)),
      size: () => this.step(() => handle.size()),
      truncate: (length) => this.step(() => handle.truncate(length)),
      datasync: () => this.step(() => handle.datasync()),
      sync: () => this.step(() => handle.sync()),
      close: () => this.step(() => handle.close()),
    };
  }

  private async step<T>(call: () => Promise<T>): Promise<T> {
    if (this.off) throw new PowerIsOff();
    const answer = await call();
    this.counted();
    return answer;
  }

  private counted(): void {
    this.calls++;
    if (this.calls !== this.cutAfter) return;
    this.off = true;
    this.fs.powerCut(this.random === undefined ? {} : { random: this.random });
    throw new PowerIsOff();
  }
}

/** A small seeded generator (mulberry32), for torn cuts that replay. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs `helper` on a fresh copy of a prepared file system, cutting the power after its 1st call,
 * then its 2nd, and so on until it finishes before the cut; `check` looks at each file system
 * after its cut. Answers how many cut points there were.
 */
async function cutAtEveryStep(
  prepare: (fs: MemoryFileSystem) => Promise<void>,
  helper: (fs: FileSystem) => Promise<unknown>,
  check: (fs: MemoryFileSystem, cutAfter: number) => Promise<void>,
  random?: () => number,
): Promise<number> {
  for (let cutAfter = 1; ; cutAfter++) {
    const fs = new MemoryFileSystem();
    await prepare(fs);
    const cutting = new CuttingFileSystem(fs, cutAfter, random);
    const outcome = await helper(cutting).then(
      () => 'finished',
      (error: unknown) => {
        if (error instanceof PowerIsOff) return 'cut';
        throw error;
      },
    );
    if (!cutting.cut) {
      expect(outcome).toBe('finished');
      return cutAfter - 1;
    }
    expect(outcome).toBe('cut');
    await check(fs, cutAfter);
  }
}

const oldContents = 'the old contents, longer than the new';
const newContents = 'the new contents';

async function prepareOld(fs: MemoryFileSystem): Promise<void> {
  await createDirectoryDurably('/data', fs);
  await replaceFileDurably('/data/CURRENT', oldContents, 0o644, fs);
}

async function contentsAfterCut(fs: MemoryFileSystem): Promise<string | undefined> {
  try {
    return (await fs.readFile('/data/CURRENT')).toString('utf8');
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return undefined;
    throw error;
  }
}

describe('replaceFileDurably under a power cut at every step', () => {
  for (const torn of [false, true]) {
    it(`leaves the old contents or the new, never a mix or nothing${torn ? ' (torn writes)' : ''}`, async () => {
      const seen = new Set<string | undefined>();
      const steps = await cutAtEveryStep(
        prepareOld,
        (fs) => replaceFileDurably('/data/CURRENT', newContents, 0o644, fs),
        async (fs, cutAfter) => {
          const contents = await contentsAfterCut(fs);
          expect([oldContents, newContents], `cut after call ${cutAfter}`).toContain(contents);
          seen.add(contents);
          // A restarted process replaces it again, over whatever temporary file the cut left.
          await replaceFileDurably('/data/CURRENT', 'after the restart', 0o644, fs);
          fs.powerCut();
          expect(await contentsAfterCut(fs)).toBe('after the restart');
          expect(await fs.readdir('/data')).toEqual(['CURRENT']);
        },
        torn ? seeded(12) : undefined,
      );
      // rm, open, writeFile, sync, close, rename, then the folder: open, sync, close.
      expect(steps).toBe(9);
      // Both outcomes happen: before the folder's fsync the rename is undone, after it not.
      expect([...seen].sort()).toEqual([newContents, oldContents].sort());
    });
  }

  it('creates a first file whole or not at all', async () => {
    await cutAtEveryStep(
      (fs) => createDirectoryDurably('/data', fs).then(() => undefined),
      (fs) => replaceFileDurably('/data/CURRENT', newContents, 0o644, fs),
      async (fs) => expect([undefined, newContents]).toContain(await contentsAfterCut(fs)),
      seeded(7),
    );
  });

  it('holds for an image written in many writes (replaceFileDurablyWith)', async () => {
    const image = Buffer.from('0123456789'.repeat(50));
    await cutAtEveryStep(
      prepareOld,
      (fs) =>
        replaceFileDurablyWith(
          '/data/CURRENT',
          async (file) => {
            for (let position = 0; position < image.length; position += 100) {
              await file.write(image, position, 100, position);
            }
          },
          0o644,
          fs,
        ),
      async (fs) => expect([oldContents, image.toString()]).toContain(await contentsAfterCut(fs)),
      seeded(3),
    );
  });
});

describe('createDirectoryDurably under a power cut at every step', () => {
  it('leaves an outer part of the path, and the whole of it once it returned', async () => {
    const levels = ['/a', '/a/b', '/a/b/c'];
    const steps = await cutAtEveryStep(
      async () => undefined,
      (fs) => createDirectoryDurably('/a/b/c', fs),
      async (fs) => {
        const present: string[] = [];
        for (const level of levels) {
          if ((await fs.stat(level).catch(() => undefined))?.isDirectory === true) present.push(level);
        }
        expect(levels.slice(0, present.length)).toEqual(present);
      },
    );
    expect(steps).toBe(10); // mkdir, then open, sync, close of each of the three folders holding a level
    const fs = new MemoryFileSystem();
    await createDirectoryDurably('/a/b/c', fs);
    fs.powerCut();
    expect(await fs.readdir('/a/b')).toEqual(['c']);
  });

  it('syncDirectory fails with ENOENT on a missing folder', async () => {
    const fs = new MemoryFileSystem();
    await expect(syncDirectory('/missing', fs)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
