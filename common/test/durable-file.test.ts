import type * as FileSystem from 'node:fs/promises';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createDirectoryDurably,
  ensureDataDirectory,
  replaceFileDurably,
  syncDirectory,
} from '@impulse/common';

/** Every path fsynced through `node:fs/promises`, in order (see the mock below). */
const fsynced = vi.hoisted(() => [] as string[]);

// Records each fsync with the path its handle was opened on, so that a test can tell which
// directories were made durable: nothing else shows it short of cutting the power.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FileSystem>();
  const open: typeof actual.open = async (...args) => {
    const handle = await actual.open(...args);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      fsynced.push(String(args[0]));
      await sync();
    };
    return handle;
  };
  return { ...actual, default: { ...actual, open }, open };
});

describe('replaceFileDurably', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-durable-file-'));
    fsynced.length = 0;
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('creates or replaces a file whole, with its mode, and leaves no temporary file', async () => {
    const path = join(directory, 'IDENTITY');
    await replaceFileDurably(path, 'first\n');
    expect(await readFile(path, 'utf8')).toBe('first\n');
    await writeFile(`${path}.tmp`, 'left by a crash');
    await replaceFileDurably(path, Buffer.from('second\n'), 0o600);
    expect(await readFile(path, 'utf8')).toBe('second\n');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(directory)).toEqual(['IDENTITY']);
    // The temporary file before its rename, the directory after it.
    expect(fsynced.slice(-2)).toEqual([`${path}.tmp`, directory]);
  });

  it('fails without touching the file when the directory cannot take the temporary file', async () => {
    await expect(replaceFileDurably(join(directory, 'missing', 'FILE'), 'x')).rejects.toMatchObject({
      code: 'ENOENT',
    });
    await expect(syncDirectory(join(directory, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(directory)).toEqual([]);
  });
});

describe('createDirectoryDurably', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-durable-directory-'));
    fsynced.length = 0;
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('fsyncs the folder holding each level it creates, outermost first', async () => {
    const target = join(directory, 'a', 'b', 'c');
    expect(await createDirectoryDurably(target)).toEqual([
      join(directory, 'a'),
      join(directory, 'a', 'b'),
      target,
    ]);
    expect((await stat(target)).isDirectory()).toBe(true);
    expect(fsynced).toEqual([directory, join(directory, 'a'), join(directory, 'a', 'b')]);
  });

  it('creates and fsyncs nothing when the directory exists', async () => {
    await mkdir(join(directory, 'there'));
    expect(await createDirectoryDurably(join(directory, 'there'))).toEqual([]);
    expect(fsynced).toEqual([]);
  });
});

describe('ensureDataDirectory', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-durable-data-directory-'));
    fsynced.length = 0;
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('fsyncs the folder holding each level of the data directory it creates', async () => {
    const target = join(directory, 'data', 'g1');
    expect(await ensureDataDirectory(target)).toBe(target);
    expect(fsynced).toEqual([directory, join(directory, 'data')]);
  });
});
