import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MemoryFileSystem,
  nodeFileSystem,
  type FileHandle,
  type FileSystem,
  type OpenFlags,
} from '@impulse/common';

/**
 * The same random scripts on `nodeFileSystem` (in a temporary folder) and on `MemoryFileSystem`
 * give the same answers, the same error codes and the same tree: the conformance suite's cases,
 * and the mixes of them nobody wrote down. No power cut here (node has none): the model test
 * checks those.
 */

/** Names relative to the script's folder: files or folders, at three depths. */
const paths = ['a', 'b', 'd', 'd/a', 'd/e', 'd/e/a', 'e'];

type Step =
  | { readonly kind: 'open'; readonly path: string; readonly flags: OpenFlags }
  | {
      readonly kind: 'write';
      readonly handle: number;
      readonly bytes: Uint8Array;
      readonly position: number;
      readonly now: boolean;
    }
  | { readonly kind: 'writeFile'; readonly handle: number; readonly text: string }
  | { readonly kind: 'read'; readonly handle: number; readonly length: number; readonly position: number }
  | { readonly kind: 'size'; readonly handle: number }
  | { readonly kind: 'truncate'; readonly handle: number; readonly length: number }
  | { readonly kind: 'sync'; readonly handle: number; readonly data: boolean }
  | { readonly kind: 'close'; readonly handle: number }
  | { readonly kind: 'mkdir'; readonly path: string; readonly recursive: boolean }
  | { readonly kind: 'rm'; readonly path: string; readonly recursive: boolean; readonly force: boolean }
  | { readonly kind: 'rename'; readonly from: string; readonly to: string }
  | { readonly kind: 'unlink'; readonly path: string }
  | { readonly kind: 'stat'; readonly path: string }
  | { readonly kind: 'readdir'; readonly path: string }
  | { readonly kind: 'readFile'; readonly path: string };

const path = fc.constantFrom(...paths);
const handle = fc.nat();
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('open'),
      path,
      flags: fc.constantFrom<OpenFlags>('r', 'r+', 'w', 'wx'),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('write'),
      handle,
      bytes: fc.uint8Array({ minLength: 0, maxLength: 6 }),
      position: fc.nat(16),
      now: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('writeFile'), handle, text: fc.string({ maxLength: 6 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('read'), handle, length: fc.nat(12), position: fc.nat(16) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('size'), handle }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate'), handle, length: fc.nat(16) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sync'), handle, data: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close'), handle }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('mkdir'), path, recursive: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('rm'), path, recursive: fc.boolean(), force: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rename'), from: path, to: path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unlink'), path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('stat'), path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('readdir'), path }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('readFile'), path }) },
);

/** One file system running a script in its folder `root`, answering each step as plain data. */
class ScriptRunner {
  /** Each handle, and whether it is a folder's (whose size means nothing portable). */
  readonly handles: Array<{ readonly handle: FileHandle; readonly folder: boolean }> = [];

  constructor(
    private readonly fs: FileSystem,
    private readonly root: string,
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

  async closeAll(): Promise<void> {
    for (const { handle } of this.handles) await handle.close();
  }

  private async answer(step: Step): Promise<unknown> {
    const at = (path: string): string => join(this.root, path);
    if ('handle' in step) {
      const chosen = this.handles[step.handle % Math.max(1, this.handles.length)];
      if (chosen === undefined) return 'no handle';
      const { handle, folder } = chosen;
      switch (step.kind) {
        case 'write': {
          const bytes = Buffer.from(step.bytes);
          return step.now
            ? handle.writeNow(bytes, 0, bytes.length, step.position)
            : await handle.write(bytes, 0, bytes.length, step.position);
        }
        case 'writeFile':
          return handle.writeFile(step.text);
        case 'read': {
          const buffer = Buffer.alloc(step.length);
          const bytesRead = await handle.read(buffer, 0, step.length, step.position);
          return buffer.subarray(0, bytesRead).toString('hex');
        }
        case 'size': {
          const size = await handle.size();
          return folder ? 'folder' : size;
        }
        case 'truncate':
          return handle.truncate(step.length);
        case 'sync':
          return step.data ? handle.datasync() : handle.sync();
        case 'close':
          return handle.close();
      }
    }
    switch (step.kind) {
      case 'open': {
        const handle = await this.fs.open(at(step.path), step.flags);
        const folder = (await this.fs.stat(at(step.path))).isDirectory;
        this.handles.push({ handle, folder });
        return 'handle';
      }
      case 'mkdir': {
        const first = await this.fs.mkdir(at(step.path), { recursive: step.recursive });
        return first === undefined ? undefined : first.slice(this.root.length);
      }
      case 'rm':
        return this.fs.rm(at(step.path), { recursive: step.recursive, force: step.force });
      case 'rename':
        return this.fs.rename(at(step.from), at(step.to));
      case 'unlink':
        return this.fs.unlink(at(step.path));
      case 'stat': {
        const stat = await this.fs.stat(at(step.path));
        return stat.isDirectory ? 'folder' : stat.size;
      }
      case 'readdir':
        return this.fs.readdir(at(step.path));
      case 'readFile':
        return (await this.fs.readFile(at(step.path))).toString('hex');
    }
  }
}

describe('nodeFileSystem and MemoryFileSystem on the same random scripts', () => {
  let directory: string;
  let run = 0;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-file-system-differential-'));
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('answer alike, step by step, and end with the same tree', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40, size: 'max' }), async (steps) => {
        const root = join(directory, `run-${run++}`);
        await nodeFileSystem.mkdir(root);
        const memory = new MemoryFileSystem();
        await memory.mkdir(root, { recursive: true });
        const onNode = new ScriptRunner(nodeFileSystem, root);
        const inMemory = new ScriptRunner(memory, root);
        try {
          for (const [index, current] of steps.entries()) {
            const where = `step ${index}: ${JSON.stringify(current)}`;
            expect(await inMemory.run(current), where).toEqual(await onNode.run(current));
          }
          expect(await inMemory.tree()).toEqual(await onNode.tree());
        } finally {
          await onNode.closeAll();
          await nodeFileSystem.rm(root, { recursive: true, force: true });
        }
      }),
      {
        // A fixed seed keeps the suite deterministic; FILE_SYSTEM_DIFFERENTIAL_SEED and
        // FILE_SYSTEM_DIFFERENTIAL_RUNS explore further.
        numRuns: Number(process.env['FILE_SYSTEM_DIFFERENTIAL_RUNS'] ?? 100),
        seed: Number(process.env['FILE_SYSTEM_DIFFERENTIAL_SEED'] ?? 20261207),
      },
    );
  });
});
