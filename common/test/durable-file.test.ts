import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { replaceFileDurably, syncDirectory } from '@impulse/common';

describe('replaceFileDurably', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-durable-file-'));
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
  });

  it('fails without touching the file when the directory cannot take the temporary file', async () => {
    await expect(replaceFileDurably(join(directory, 'missing', 'FILE'), 'x')).rejects.toMatchObject({
      code: 'ENOENT',
    });
    await expect(syncDirectory(join(directory, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(directory)).toEqual([]);
  });
});
