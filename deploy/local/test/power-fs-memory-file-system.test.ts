import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MemoryFileSystem,
  createDirectoryDurably,
  nodeFileSystem,
  syncDirectory,
  type FileHandle,
  type FileSystem,
  type OpenFlags,
} from '@impulse/common';
import { PowerFs } from '../src/power-fs.js';

/**
 * The simulator's `MemoryFileSystem` loses at a power cut what the FUSE power-cut file system
 * loses: the same random scripts, with random cuts, run on a powerfs mount (through
 * `nodeFileSystem`) and on a `MemoryFileSystem` answer alike and leave the same tree after every
 * step. Folders are created and removed but not renamed: there the two differ on purpose
 * (common/src/file-system/README.md: powerfs undoes by path, the memory one by identity). No
 * `size()` either: through FUSE's path-based interface, an fstat of a file no name leads to any
 * more fails (ENOENT, ESTALE) where POSIX, and the memory file system, answer its size.
 */

/** Names relative to a run's folder. `x/d` is a file or a folder, as the script makes it. */
const names = ['x/a', 'x/b', 'y/a', 'y/b', 'x/d', 'x/d/a'];
const files = ['x/a', 'x/b', 'y/a', 'y/b', 'x/d/a'];

type Step =
  | { readonly kind: 'open'; readonly name: string; readonly flags: OpenFlags }
  | { readonly kind: 'write'; readonly handle: number; readonly bytes: Uint8Array; readonly position: number }
  | { readonly kind: 'truncate'; readonly handle: number; readonly length: number }
  | { readonly kind: 'read'; readonly handle: number; readonly length: number; readonly position: number }
  | { readonly kind: 'sync'; readonly handle: number; readonly data: boolean }
  | { readonly kind: 'close'; readonly handle: number }
  | { readonly kind: 'syncFolder'; readonly name: string }
  | { readonly kind: 'rename'; readonly from: string; readonly to: string }
  | { readonly kind: 'unlink'; readonly name: string }
  | { readonly kind: 'mkdir' }
  | { readonly kind: 'rmFolder' }
  | { readonly kind: 'cut' };

const handle = fc.nat();
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('open'),
      name: fc.constantFrom(...names),
      flags: fc.constantFrom<OpenFlags>('r', 'r+', 'w', 'wx'),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('write'),
      handle,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
      position: fc.nat(24),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate'), handle, length: fc.nat(24) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('read'),
      handle,
      length: fc.integer({ min: 1, max: 12 }),
      position: fc.nat(24),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('sync'), handle, data: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close'), handle }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('syncFolder'), name: fc.constantFrom('x', 'y', 'x/d') }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('rename'),
      from: fc.constantFrom(...files),
      to: fc.constantFrom(...files),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unlink'), name: fc.constantFrom(...files) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('mkdir') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rmFolder') }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cut') }) },
);

/** One file system running a script in its folder `root`, answering each step as plain data. */
class ScriptRunner {
  /** Each handle, with the number of cuts before it was opened. */
  private readonly handles: Array<{ readonly handle: FileHandle; readonly cutsAtOpen: number }> = [];
  private cuts = 0;
  private folderMade = false;

  constructor(
    private readonly fs: FileSystem,
    private readonly root: string,
    private readonly cut: () => Promise<void>,
  ) {}

  async run(step: Step): Promise<unknown> {
    try {
      return await this.answer(step);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code !== 'string') throw error;
      return { error: code };
    }
  }

  /** The tree under the root: each path with its contents (hex) or `folder`. */
  async tree(folder = this.root, prefix = ''): Promise<Record<string, string>> {
    const tree: Record<string, string> = {};
    for (const name of await this.fs.readdir(folder)) {
      const path = join(folder, name);
      if ((await this.fs.stat(path)).isDirectory) {
        tree[`${prefix}${name}`] = 'folder';
        Object.assign(tree, await this.tree(path, `${prefix}${name}/`));
      } else {
        tree[`${prefix}${name}`] = (await this.fs.readFile(path)).toString('hex');
      }
    }
    return tree;
  }

  /**
   * Closes every handle. A close on the mount may answer EIO for a handle from before a cut (the
   * kernel's flush of a file the cut removed); the script is over, so it does not matter.
   */
  async closeAll(): Promise<void> {
    for (const { handle } of this.handles) await handle.close().catch(() => undefined);
  }

  private async answer(step: Step): Promise<unknown> {
    const at = (name: string): string => join(this.root, name);
    if ('handle' in step) {
      const chosen = this.handles[step.handle % Math.max(1, this.handles.length)];
      if (chosen === undefined) return 'no handle';
      const { handle: open, cutsAtOpen } = chosen;
      // The kernel answers these on a handle from before a cut without asking powerfs (a read
      // at the end of the file it knows, or from its cache; a close whose flush fails EIO when
      // the name now leads to a folder): FUSE's, not the model's. Both sides skip them.
      if ((step.kind === 'read' || step.kind === 'close') && cutsAtOpen !== this.cuts) return 'stale';
      switch (step.kind) {
        case 'write':
          return open.write(Buffer.from(step.bytes), 0, step.bytes.length, step.position);
        case 'truncate':
          return open.truncate(step.length);
        case 'read': {
          const buffer = Buffer.alloc(step.length);
          const bytesRead = await open.read(buffer, 0, step.length, step.position);
          return buffer.subarray(0, bytesRead).toString('hex');
        }
        case 'sync':
          return step.data ? open.datasync() : open.sync();
        case 'close':
          return open.close();
      }
    }
    switch (step.kind) {
      case 'open':
        this.handles.push({ handle: await this.fs.open(at(step.name), step.flags), cutsAtOpen: this.cuts });
        return 'handle';
      case 'syncFolder':
        return syncDirectory(at(step.name), this.fs);
      case 'rename':
        return this.fs.rename(at(step.from), at(step.to));
      case 'unlink':
        return this.fs.unlink(at(step.name));
      case 'mkdir':
        // Once a run: a folder made where a removed one was is where the two differ on purpose
        // (powerfs brings the removed folder's files back into the new one, by path).
        if (this.folderMade) return 'made already';
        this.folderMade = true;
        return this.fs.mkdir(at('x/d'));
      case 'rmFolder': {
        // A folder only: `rm -r` of a file would be an unlink, which the script has already.
        if (!(await this.fs.stat(at('x/d'))).isDirectory) return 'a file';
        return this.fs.rm(at('x/d'), { recursive: true });
      }
      case 'cut':
        this.cuts++;
        return this.cut();
    }
  }
}

describe('MemoryFileSystem and the FUSE power-cut file system on the same scripts', () => {
  let directory: string;
  let powerFs: PowerFs;
  let run = 0;

  beforeAll(async () => {
    directory = mkdtempSync(join(tmpdir(), 'impulse-powerfs-memory-'));
    powerFs = await PowerFs.mount({
      backingDirectory: join(directory, 'backing'),
      mountpoint: join(directory, 'mnt'),
    });
  });

  afterAll(async () => {
    await powerFs.unmount();
    rmSync(directory, { recursive: true, force: true });
  });

  it('answer alike and hold the same tree after every step, power cuts included', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40, size: 'max' }), async (steps) => {
        const root = join(powerFs.mountpoint, `run-${run++}`);
        const memory = new MemoryFileSystem();
        for (const fs of [nodeFileSystem, memory]) {
          await createDirectoryDurably(join(root, 'x'), fs);
          await createDirectoryDurably(join(root, 'y'), fs);
        }
        const onPowerFs = new ScriptRunner(nodeFileSystem, root, async () => {
          await powerFs.cut();
        });
        const inMemory = new ScriptRunner(memory, root, async () => memory.powerCut());
        try {
          for (const [index, current] of steps.entries()) {
            const where = `step ${index}: ${JSON.stringify(current)}`;
            expect(await inMemory.run(current), where).toEqual(await onPowerFs.run(current));
            expect(await inMemory.tree(), where).toEqual(await onPowerFs.tree());
          }
        } finally {
          await onPowerFs.closeAll();
          // Gone for good, so that a later run's cut brings nothing of this one back.
          await nodeFileSystem.rm(root, { recursive: true, force: true });
          await syncDirectory(powerFs.mountpoint);
        }
      }),
      {
        // A fixed seed keeps the suite deterministic; POWER_FS_MEMORY_SEED and POWER_FS_MEMORY_RUNS
        // explore further.
        numRuns: Number(process.env['POWER_FS_MEMORY_RUNS'] ?? 40),
        seed: Number(process.env['POWER_FS_MEMORY_SEED'] ?? 20261207),
      },
    );
  });
});
