import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileHandle, FileSystem } from '@impulse/common';

/** A file system to run the suite on, with an empty folder of its own and a way to clean it up. */
export interface ConformanceSubject {
  readonly fs: FileSystem;
  /** An empty folder, absolute. */
  readonly root: string;
  cleanUp(): Promise<void>;
}

/** The code a promise is rejected with (fails the test when it resolves). */
export async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
  throw new Error('expected an error, got none');
}

/** The code a synchronous call throws with. */
export function thrownCode(call: () => unknown): string {
  try {
    call();
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
  throw new Error('expected an error, got none');
}

async function writeText(handle: FileHandle, text: string, position: number): Promise<number> {
  const bytes = Buffer.from(text, 'utf8');
  return handle.write(bytes, 0, bytes.length, position);
}

async function readText(handle: FileHandle, length: number, position: number): Promise<string> {
  const buffer = Buffer.alloc(length);
  const bytesRead = await handle.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead).toString('utf8');
}

/**
 * The one suite every `FileSystem` passes (STYLE.md: one conformance suite for every engine): the
 * same scripts give the same answers and the same error codes, whatever the implementation. What
 * node answers is the reference: a case written here was first checked against `node:fs`.
 */
export function describeFileSystemConformance(
  name: string,
  subject: () => Promise<ConformanceSubject>,
): void {
  describe(`FileSystem conformance: ${name}`, () => {
    let fs: FileSystem;
    let root: string;
    let cleanUp: () => Promise<void>;
    const at = (...names: string[]): string => join(root, ...names);

    beforeEach(async () => {
      ({ fs, root, cleanUp } = await subject());
    });

    afterEach(async () => {
      await cleanUp();
    });

    describe('open', () => {
      it('opens with r and r+ only what exists, creates with w, and refuses with wx what exists', async () => {
        expect(await errorCode(fs.open(at('f'), 'r'))).toBe('ENOENT');
        expect(await errorCode(fs.open(at('f'), 'r+'))).toBe('ENOENT');
        const created = await fs.open(at('f'), 'wx');
        await writeText(created, 'abc', 0);
        await created.close();
        expect(await errorCode(fs.open(at('f'), 'wx'))).toBe('EEXIST');
        const reader = await fs.open(at('f'), 'r');
        expect(await readText(reader, 10, 0)).toBe('abc');
        await reader.close();
        // w truncates what was there.
        const truncating = await fs.open(at('f'), 'w');
        expect(await truncating.size()).toBe(0);
        await truncating.close();
        expect((await fs.stat(at('f'))).size).toBe(0);
      });

      it('opens a folder with r only, and refuses to read or write it', async () => {
        await fs.mkdir(at('d'));
        expect(await errorCode(fs.open(at('d'), 'r+'))).toBe('EISDIR');
        expect(await errorCode(fs.open(at('d'), 'w'))).toBe('EISDIR');
        expect(await errorCode(fs.open(at('d'), 'wx'))).toBe('EEXIST');
        const folder = await fs.open(at('d'), 'r');
        expect(await errorCode(folder.read(Buffer.alloc(4), 0, 4, 0))).toBe('EISDIR');
        expect(await errorCode(folder.write(Buffer.alloc(4), 0, 4, 0))).toBe('EBADF');
        // node answers no bytes to move without a system call, but `writeSync` makes one.
        expect(await folder.write(Buffer.alloc(0), 0, 0, 0)).toBe(0);
        expect(await folder.read(Buffer.alloc(0), 0, 0, 0)).toBe(0);
        expect(thrownCode(() => folder.writeNow(Buffer.alloc(0), 0, 0, 0))).toBe('EBADF');
        expect(await errorCode(folder.truncate(0))).toBe('EINVAL');
        await folder.sync();
        await folder.datasync();
        await folder.close();
      });

      it('fails through a missing folder with ENOENT and through a file with ENOTDIR', async () => {
        expect(await errorCode(fs.open(at('missing', 'f'), 'w'))).toBe('ENOENT');
        await (await fs.open(at('f'), 'w')).close();
        expect(await errorCode(fs.open(at('f', 'g'), 'w'))).toBe('ENOTDIR');
        expect(await errorCode(fs.open(at('f', 'g'), 'r'))).toBe('ENOTDIR');
      });

      it('lets a handle do only what it was opened for', async () => {
        const writer = await fs.open(at('f'), 'w');
        await writeText(writer, 'abc', 0);
        expect(await errorCode(writer.read(Buffer.alloc(4), 0, 4, 0))).toBe('EBADF');
        await writer.close();
        const reader = await fs.open(at('f'), 'r');
        expect(await errorCode(reader.write(Buffer.from('x'), 0, 1, 0))).toBe('EBADF');
        expect(thrownCode(() => reader.writeNow(Buffer.from('x'), 0, 1, 0))).toBe('EBADF');
        expect(await errorCode(reader.writeFile('x'))).toBe('EBADF');
        expect(await errorCode(reader.truncate(0))).toBe('EINVAL');
        // An fsync needs no write access.
        await reader.sync();
        await reader.datasync();
        await reader.close();
        const both = await fs.open(at('f'), 'r+');
        await writeText(both, 'X', 1);
        expect(await readText(both, 10, 0)).toBe('aXc');
        await both.close();
      });

      it('answers EBADF on a closed handle, and closes twice without an error', async () => {
        const handle = await fs.open(at('f'), 'w');
        await handle.close();
        await handle.close();
        expect(await errorCode(handle.write(Buffer.from('x'), 0, 1, 0))).toBe('EBADF');
        expect(thrownCode(() => handle.writeNow(Buffer.from('x'), 0, 1, 0))).toBe('EBADF');
        expect(await errorCode(handle.read(Buffer.alloc(1), 0, 1, 0))).toBe('EBADF');
        expect(await errorCode(handle.sync())).toBe('EBADF');
        expect(await errorCode(handle.datasync())).toBe('EBADF');
        expect(await errorCode(handle.truncate(0))).toBe('EBADF');
      });
    });

    describe('write and read', () => {
      it('writes at positions, leaving a hole of zeros past the end', async () => {
        const handle = await fs.open(at('f'), 'w');
        expect(await writeText(handle, 'abc', 0)).toBe(3);
        expect(handle.writeNow(Buffer.from('--XY--'), 2, 2, 6)).toBe(2);
        expect(await handle.size()).toBe(8);
        expect(await writeText(handle, 'Q', 1)).toBe(1);
        await handle.close();
        expect(await fs.readFile(at('f'))).toEqual(Buffer.from('aQc\0\0\0XY', 'latin1'));
      });

      it('writes and reads at offsets of the buffer', async () => {
        await (await fs.open(at('f'), 'w')).close();
        const both = await fs.open(at('f'), 'r+');
        expect(await both.write(Buffer.from('0123456789'), 3, 4, 0)).toBe(4);
        const buffer = Buffer.from('..........');
        expect(await both.read(buffer, 5, 3, 1)).toBe(3);
        expect(buffer.toString()).toBe('.....456..');
        await both.close();
      });

      it('reads nothing past the end, and a short read across it', async () => {
        const handle = await fs.open(at('f'), 'w');
        await writeText(handle, 'abcdef', 0);
        await handle.close();
        const reader = await fs.open(at('f'), 'r');
        expect(await reader.read(Buffer.alloc(4), 0, 4, 6)).toBe(0);
        expect(await reader.read(Buffer.alloc(4), 0, 4, 100)).toBe(0);
        expect(await readText(reader, 10, 4)).toBe('ef');
        expect(await reader.read(Buffer.alloc(4), 0, 0, 0)).toBe(0);
        await reader.close();
      });

      it('answers zero-length writes at once, without growing the file', async () => {
        const handle = await fs.open(at('f'), 'w');
        expect(await handle.write(Buffer.alloc(0), 0, 0, 100)).toBe(0);
        expect(handle.writeNow(Buffer.alloc(0), 0, 0, 100)).toBe(0);
        expect(await handle.size()).toBe(0);
        await handle.close();
      });

      it('replaces the whole contents with writeFile, whatever was there', async () => {
        const handle = await fs.open(at('f'), 'w');
        await handle.writeFile('a long first version');
        await handle.writeFile(Buffer.from('short'));
        expect(await handle.size()).toBe(5);
        await handle.writeFile('');
        expect(await handle.size()).toBe(0);
        await handle.writeFile('é');
        await handle.close();
        expect((await fs.readFile(at('f'))).toString('utf8')).toBe('é');
      });

      it('truncates down and extends with zeros', async () => {
        const handle = await fs.open(at('f'), 'w');
        await writeText(handle, 'abcdef', 0);
        await handle.truncate(2);
        expect(await handle.size()).toBe(2);
        await handle.truncate(5);
        await handle.close();
        expect(await fs.readFile(at('f'))).toEqual(Buffer.from('ab\0\0\0', 'latin1'));
      });

      it('keeps an unlinked file open: reads and writes go on, the name is gone', async () => {
        const handle = await fs.open(at('f'), 'w');
        await writeText(handle, 'abc', 0);
        await fs.unlink(at('f'));
        expect(await errorCode(fs.stat(at('f')))).toBe('ENOENT');
        await writeText(handle, 'd', 3);
        expect(await handle.size()).toBe(4);
        await handle.sync();
        await handle.close();
        expect(await fs.readdir(root)).toEqual([]);
      });

      it('refuses to read a folder as a file', async () => {
        await fs.mkdir(at('d'));
        expect(await errorCode(fs.readFile(at('d')))).toBe('EISDIR');
        expect(await errorCode(fs.readFile(at('missing')))).toBe('ENOENT');
      });
    });

    describe('rename', () => {
      it('replaces a file, which a handle opened on it still reads', async () => {
        for (const [name, text] of [
          ['old', 'old contents'],
          ['new', 'new'],
        ] as const) {
          const handle = await fs.open(at(name), 'w');
          await handle.writeFile(text);
          await handle.close();
        }
        const reader = await fs.open(at('new'), 'r');
        const replacedReader = await fs.open(at('old'), 'r');
        await fs.rename(at('new'), at('old'));
        expect(await fs.readdir(root)).toEqual(['old']);
        expect((await fs.readFile(at('old'))).toString()).toBe('new');
        expect(await readText(reader, 20, 0)).toBe('new');
        expect(await readText(replacedReader, 20, 0)).toBe('old contents');
        await reader.close();
        await replacedReader.close();
        // A rename onto itself changes nothing.
        await fs.rename(at('old'), at('old'));
        expect(await fs.readdir(root)).toEqual(['old']);
      });

      it('moves a folder with what it holds, and over an empty folder', async () => {
        await fs.mkdir(at('a', 'b'), { recursive: true });
        await (await fs.open(at('a', 'b', 'f'), 'w')).close();
        await fs.mkdir(at('empty'));
        await fs.rename(at('a'), at('empty'));
        expect(await fs.readdir(root)).toEqual(['empty']);
        expect(await fs.readdir(at('empty', 'b'))).toEqual(['f']);
        await fs.rename(at('empty', 'b'), at('b'));
        expect(await fs.readdir(root)).toEqual(['b', 'empty']);
        await fs.rename(at('b'), at('b'));
      });

      it('answers the error codes of POSIX', async () => {
        await fs.mkdir(at('d', 'inner'), { recursive: true });
        await fs.mkdir(at('empty'));
        await (await fs.open(at('f'), 'w')).close();
        expect(await errorCode(fs.rename(at('missing'), at('x')))).toBe('ENOENT');
        expect(await errorCode(fs.rename(at('f'), at('missing', 'x')))).toBe('ENOENT');
        expect(await errorCode(fs.rename(at('f', 'x'), at('x')))).toBe('ENOTDIR');
        expect(await errorCode(fs.rename(at('f'), at('f', 'x')))).toBe('ENOTDIR');
        expect(await errorCode(fs.rename(at('f'), at('d')))).toBe('EISDIR');
        expect(await errorCode(fs.rename(at('f'), at('empty')))).toBe('EISDIR');
        expect(await errorCode(fs.rename(at('d'), at('f')))).toBe('ENOTDIR');
        expect(await errorCode(fs.rename(at('empty'), at('d')))).toBe('ENOTEMPTY');
        expect(await errorCode(fs.rename(at('d'), at('d', 'inner', 'x')))).toBe('EINVAL');
        expect(await errorCode(fs.rename(at('d'), at('d', 'inner')))).toBe('EINVAL');
        expect(await errorCode(fs.rename(at('d', 'inner'), at('d')))).toBe('ENOTEMPTY');
        await (await fs.open(at('d', 'file'), 'w')).close();
        // A file renamed over its own folder: the ancestry is checked before the kinds.
        expect(await errorCode(fs.rename(at('d', 'file'), at('d')))).toBe('ENOTEMPTY');
        expect(await fs.readdir(root)).toEqual(['d', 'empty', 'f']);
      });
    });

    describe('readdir', () => {
      it('answers the names sorted', async () => {
        for (const name of ['b', 'a', 'C', '10', '9', 'a.tmp', 'ä'])
          await (await fs.open(at(name), 'w')).close();
        await fs.mkdir(at('B'));
        expect(await fs.readdir(root)).toEqual(['10', '9', 'B', 'C', 'a', 'a.tmp', 'b', 'ä']);
      });

      it('fails on a file with ENOTDIR and on a missing path with ENOENT', async () => {
        await (await fs.open(at('f'), 'w')).close();
        expect(await errorCode(fs.readdir(at('f')))).toBe('ENOTDIR');
        expect(await errorCode(fs.readdir(at('missing')))).toBe('ENOENT');
      });
    });

    describe('mkdir', () => {
      it('creates one level, answering nothing, and refuses what exists or has no parent', async () => {
        expect(await fs.mkdir(at('d'))).toBeUndefined();
        expect(await errorCode(fs.mkdir(at('d')))).toBe('EEXIST');
        expect(await errorCode(fs.mkdir(at('x', 'y')))).toBe('ENOENT');
        await (await fs.open(at('f'), 'w')).close();
        expect(await errorCode(fs.mkdir(at('f')))).toBe('EEXIST');
        expect(await errorCode(fs.mkdir(at('f', 'g')))).toBe('ENOTDIR');
        expect((await fs.stat(at('d'))).isDirectory).toBe(true);
      });

      it('with recursive, creates the missing levels and answers the first it made', async () => {
        expect(await fs.mkdir(at('a', 'b', 'c'), { recursive: true })).toBe(at('a'));
        expect(await fs.mkdir(at('a', 'b', 'c', 'd', 'e'), { recursive: true })).toBe(at('a', 'b', 'c', 'd'));
        expect(await fs.mkdir(at('a', 'b'), { recursive: true })).toBeUndefined();
        expect(await fs.mkdir(root, { recursive: true })).toBeUndefined();
        expect(await fs.readdir(at('a', 'b', 'c', 'd'))).toEqual(['e']);
      });

      it('with recursive, refuses a file at the path (EEXIST) or on the way (ENOTDIR), creating nothing', async () => {
        await (await fs.open(at('f'), 'w')).close();
        expect(await errorCode(fs.mkdir(at('f'), { recursive: true }))).toBe('EEXIST');
        expect(await errorCode(fs.mkdir(at('f', 'g', 'h'), { recursive: true }))).toBe('ENOTDIR');
        expect(await fs.readdir(root)).toEqual(['f']);
      });
    });

    describe('rm and unlink', () => {
      it('removes a file; a folder only with recursive, with all it holds', async () => {
        await fs.mkdir(at('d', 'e'), { recursive: true });
        await (await fs.open(at('d', 'e', 'f'), 'w')).close();
        await (await fs.open(at('d', 'g'), 'w')).close();
        await (await fs.open(at('f'), 'w')).close();
        await fs.rm(at('f'));
        expect(await errorCode(fs.rm(at('d')))).toBe('EISDIR');
        expect(await errorCode(fs.rm(at('d', 'e')))).toBe('EISDIR');
        await fs.rm(at('d', 'g'), { recursive: true });
        expect(await fs.readdir(at('d'))).toEqual(['e']);
        await fs.rm(at('d'), { recursive: true });
        expect(await fs.readdir(root)).toEqual([]);
      });

      it('with force, forgives a missing path but not a file on the way', async () => {
        expect(await errorCode(fs.rm(at('missing')))).toBe('ENOENT');
        expect(await errorCode(fs.rm(at('missing'), { recursive: true }))).toBe('ENOENT');
        await fs.rm(at('missing'), { force: true });
        await fs.rm(at('missing', 'below'), { force: true, recursive: true });
        await (await fs.open(at('f'), 'w')).close();
        expect(await errorCode(fs.rm(at('f', 'below'), { force: true }))).toBe('ENOTDIR');
      });

      it('unlinks files only', async () => {
        await fs.mkdir(at('d'));
        expect(await errorCode(fs.unlink(at('d')))).toBe('EISDIR');
        expect(await errorCode(fs.unlink(at('missing')))).toBe('ENOENT');
        await (await fs.open(at('f'), 'w')).close();
        expect(await errorCode(fs.unlink(at('f', 'g')))).toBe('ENOTDIR');
        await fs.unlink(at('f'));
        expect(await fs.readdir(root)).toEqual(['d']);
      });
    });

    describe('stat', () => {
      it('answers a file size and whether a path is a folder; ENOENT or ENOTDIR when it cannot', async () => {
        const handle = await fs.open(at('f'), 'w');
        await writeText(handle, 'abcd', 0);
        await handle.close();
        await fs.mkdir(at('d'));
        expect(await fs.stat(at('f'))).toEqual({ size: 4, isDirectory: false });
        expect((await fs.stat(at('d'))).isDirectory).toBe(true);
        expect((await fs.stat(root)).isDirectory).toBe(true);
        expect(await errorCode(fs.stat(at('missing')))).toBe('ENOENT');
        expect(await errorCode(fs.stat(at('f', 'x')))).toBe('ENOTDIR');
      });

      it('resolves . and .. in paths', async () => {
        await fs.mkdir(at('d'));
        await (await fs.open(at('d', '..', 'f'), 'w')).close();
        expect(await fs.readdir(at('d', '.', '..'))).toEqual(['d', 'f']);
      });
    });

    describe('errors', () => {
      it('are Error objects with a code, an errno, a syscall and a path, as node throws them', async () => {
        const error = await fs.stat(at('missing')).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(Error);
        expect(error).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'stat', path: at('missing') });
        expect((error as Error).message).toBe(`ENOENT: no such file or directory, stat '${at('missing')}'`);
      });
    });
  });
}
