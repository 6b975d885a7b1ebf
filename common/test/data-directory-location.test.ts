import { existsSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StartupError, ensureDataDirectory, pseudoFileSystemOf } from '@impulse/common';
import { temporaryDirectory } from '../../test/support/temporary-directory.js';

async function refusalOf(run: () => Promise<unknown>): Promise<StartupError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof StartupError) return error;
    throw error;
  }
  throw new Error('expected a StartupError');
}

describe('ensureDataDirectory', () => {
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  beforeEach(async () => {
    directory = await temporaryDirectory('data-directory-location');
  });
  afterEach(async () => {
    await directory.remove();
  });

  it('creates the missing levels of a new directory, and takes an existing one as it is', async () => {
    const path = `${directory.path}/a/b/c`;
    expect(await ensureDataDirectory(path)).toBe(path);
    expect(statSync(path).isDirectory()).toBe(true);
    expect(await ensureDataDirectory(`${path}/../c`)).toBe(path);
  });

  it('refuses a directory under /proc or /sys at once, creating nothing', async () => {
    const proc = await refusalOf(() => ensureDataDirectory('/proc/impulse-unit-test/data'));
    expect(proc.code).toBe('DATA_DIRECTORY_UNUSABLE');
    expect(proc.exitCode).toBe(2);
    expect(proc.message).toBe(
      'data directory /proc/impulse-unit-test/data is on the proc pseudo file system (at /proc), which cannot hold data',
    );
    expect(existsSync('/proc/impulse-unit-test')).toBe(false);
    expect((await refusalOf(() => ensureDataDirectory('/sys/impulse-unit-test'))).message).toMatch(/sysfs/);
    // /proc itself exists: it is refused as well, not only what would be created in it.
    expect((await refusalOf(() => ensureDataDirectory('/proc/self'))).code).toBe('DATA_DIRECTORY_UNUSABLE');
  });

  it('refuses a path that is, or goes through, a regular file', async () => {
    const file = `${directory.path}/file`;
    writeFileSync(file, 'x');
    for (const path of [file, `${file}/data`, `${file}/data/deeper`]) {
      const refusal = await refusalOf(() => ensureDataDirectory(path));
      expect(refusal.code).toBe('DATA_DIRECTORY_UNUSABLE');
      expect(refusal.message).toBe(`data directory ${path}: ${file} exists and is not a directory`);
    }
  });

  it('knows the pseudo file systems by their statfs magic, also sign-extended', () => {
    expect(pseudoFileSystemOf(0x9fa0)).toBe('proc');
    expect(pseudoFileSystemOf(0x62656572)).toBe('sysfs');
    expect(pseudoFileSystemOf(0xcafe4a11 | 0)).toBe('bpf');
    expect(pseudoFileSystemOf(0xef53)).toBeUndefined();
    // The file system the tests run on holds data.
    expect(pseudoFileSystemOf(statfsSync(directory.path).type)).toBeUndefined();
  });
});
