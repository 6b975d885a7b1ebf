import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MemoryFileSystem,
  createDirectoryDurably,
  syncDirectory,
  type FileHandle,
  type OpenFlags,
} from '@impulse/common';
import { FileSystemModel, modelFolders, type ModelFolder, type Outcome } from './file-system-model.js';

/** The names the generated steps use: three in each of the model's two folders. */
const names = modelFolders.flatMap((folder) => ['a', 'b', 'c'].map((name) => `${folder}/${name}`));

type Step =
  | { readonly kind: 'open'; readonly name: string; readonly flags: OpenFlags }
  | {
      readonly kind: 'write';
      readonly handle: number;
      readonly bytes: Uint8Array;
      readonly position: number;
      readonly now: boolean;
    }
  | { readonly kind: 'truncate'; readonly handle: number; readonly length: number }
  | { readonly kind: 'sync'; readonly handle: number; readonly data: boolean }
  | { readonly kind: 'close'; readonly handle: number }
  | { readonly kind: 'syncFolder'; readonly folder: ModelFolder }
  | { readonly kind: 'rename'; readonly from: string; readonly to: string }
  | { readonly kind: 'unlink'; readonly name: string }
  | { readonly kind: 'powerCut' }
  | { readonly kind: 'processCrash' };

const name = fc.constantFrom(...names);
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('open'),
      name,
      flags: fc.constantFrom<OpenFlags>('r', 'r+', 'w', 'wx'),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('write'),
      handle: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
      position: fc.nat(24),
      now: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('truncate'), handle: fc.nat(), length: fc.nat(24) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('sync'), handle: fc.nat(), data: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close'), handle: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('syncFolder'), folder: fc.constantFrom(...modelFolders) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rename'), from: name, to: name }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unlink'), name }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('powerCut') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('processCrash') }) },
);

/** What a call on the real file system answered, in the model's terms. */
async function outcome(call: () => Promise<unknown> | unknown): Promise<Outcome> {
  try {
    const value = await call();
    return { value: value !== null && typeof value === 'object' ? 'handle' : value };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string') throw error; // an assertion: a bug, not an answer
    return { error: code };
  }
}

/** Runs one step on both; answers both outcomes (the real one first). */
async function apply(
  fs: MemoryFileSystem,
  handles: FileHandle[],
  model: FileSystemModel,
  step: Step,
): Promise<[Outcome, Outcome] | undefined> {
  const handleOf = (index: number): [FileHandle, number] | undefined => {
    const handle = handles[index % Math.max(1, handles.length)];
    return handle === undefined ? undefined : [handle, index % handles.length];
  };
  switch (step.kind) {
    case 'open': {
      const real = await outcome(async () => {
        const handle = await fs.open(`/${step.name}`, step.flags);
        handles.push(handle);
        return handle;
      });
      return [real, model.open(step.name, step.flags)];
    }
    case 'write': {
      const chosen = handleOf(step.handle);
      if (chosen === undefined) return undefined;
      const [handle, index] = chosen;
      const bytes = Buffer.from(step.bytes);
      const real = await outcome(() =>
        step.now
          ? handle.writeNow(bytes, 0, bytes.length, step.position)
          : handle.write(bytes, 0, bytes.length, step.position),
      );
      return [real, model.write(index, bytes, step.position)];
    }
    case 'truncate': {
      const chosen = handleOf(step.handle);
      if (chosen === undefined) return undefined;
      const [handle, index] = chosen;
      return [await outcome(() => handle.truncate(step.length)), model.truncate(index, step.length)];
    }
    case 'sync': {
      const chosen = handleOf(step.handle);
      if (chosen === undefined) return undefined;
      const [handle, index] = chosen;
      return [await outcome(() => (step.data ? handle.datasync() : handle.sync())), model.sync(index)];
    }
    case 'close': {
      const chosen = handleOf(step.handle);
      if (chosen === undefined) return undefined;
      const [handle, index] = chosen;
      return [await outcome(() => handle.close()), model.close(index)];
    }
    case 'syncFolder':
      return [await outcome(() => syncDirectory(`/${step.folder}`, fs)), model.syncFolder(step.folder)];
    case 'rename':
      return [
        await outcome(() => fs.rename(`/${step.from}`, `/${step.to}`)),
        model.rename(step.from, step.to),
      ];
    case 'unlink':
      return [await outcome(() => fs.unlink(`/${step.name}`)), model.unlink(step.name)];
    case 'powerCut':
      fs.powerCut();
      model.powerCut();
      return undefined;
    case 'processCrash':
      fs.processCrash();
      model.processCrash();
      return undefined;
  }
}

/** Every file of the real file system, by `folder/name`, with its contents. */
async function listing(fs: MemoryFileSystem): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const folder of modelFolders) {
    for (const entry of await fs.readdir(`/${folder}`)) {
      files.set(`${folder}/${entry}`, await fs.readFile(`/${folder}/${entry}`));
    }
  }
  return files;
}

describe('MemoryFileSystem against a model of the power-cut rules', () => {
  it('answers every call as the model does, and holds what it holds, across random power cuts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }), async (steps) => {
        const fs = new MemoryFileSystem();
        for (const folder of modelFolders) await createDirectoryDurably(`/${folder}`, fs);
        const model = new FileSystemModel();
        const handles: FileHandle[] = [];
        for (const [index, current] of steps.entries()) {
          const outcomes = await apply(fs, handles, model, current);
          const where = `step ${index}: ${JSON.stringify(current)}`;
          if (outcomes !== undefined) expect(outcomes[0], where).toEqual(outcomes[1]);
          expect(await listing(fs), where).toEqual(model.listing());
          expect(handles.length, where).toBe(model.handleCount);
          expect(fs.stats().pendingOperations, where).toBe(model.pendingOperations);
          if (current.kind === 'powerCut') {
            expect(fs.stats(), where).toMatchObject({ dirtyFiles: 0, unsyncedBytes: 0 });
          }
        }
      }),
      {
        // A fixed seed keeps the suite deterministic; MEMORY_FS_MODEL_SEED and MEMORY_FS_MODEL_RUNS
        // explore further.
        numRuns: Number(process.env['MEMORY_FS_MODEL_RUNS'] ?? 300),
        seed: Number(process.env['MEMORY_FS_MODEL_SEED'] ?? 20261207),
      },
    );
  });
});
