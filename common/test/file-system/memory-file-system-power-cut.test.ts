import { describe, expect, it } from 'vitest';
import {
  MemoryFileSystem,
  createDirectoryDurably,
  replaceFileDurably,
  syncDirectory,
  type FileHandle,
} from '@impulse/common';
import { errorCode, thrownCode } from './file-system-conformance.js';

/**
 * The durability model of `MemoryFileSystem`, case by case, as deploy/powerfs/README.md states it
 * and deploy/local/test/power-fs.test.ts checks it on the FUSE file system: what an fsync made
 * durable survives a power cut, and nothing else does.
 */

async function write(fs: MemoryFileSystem, path: string, text: string, position = 0): Promise<FileHandle> {
  const handle = await fs.open(path, position === 0 ? 'w' : 'r+');
  await handle.write(Buffer.from(text), 0, Buffer.byteLength(text), position);
  return handle;
}

/** Writes a file whole, fsyncs it (not its folder) and closes it. */
async function writeSynced(fs: MemoryFileSystem, path: string, text: string): Promise<void> {
  const handle = await write(fs, path, text);
  await handle.sync();
  await handle.close();
}

async function text(fs: MemoryFileSystem, path: string): Promise<string> {
  return (await fs.readFile(path)).toString('utf8');
}

/** A file system with `/d`, durable. */
async function withFolder(): Promise<MemoryFileSystem> {
  const fs = new MemoryFileSystem();
  await createDirectoryDurably('/d', fs);
  expect(fs.stats().pendingOperations).toBe(0);
  return fs;
}

describe('MemoryFileSystem power cut: contents', () => {
  it('keeps a synced write and drops an unsynced one', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'durable');
    await syncDirectory('/d', fs);
    const handle = await write(fs, '/d/f', ' and more', 7);
    expect(await text(fs, '/d/f')).toBe('durable and more');
    fs.powerCut();
    expect(await text(fs, '/d/f')).toBe('durable');
    await handle.close();
  });

  it('keeps what a datasync made durable, as a sync', async () => {
    const fs = await withFolder();
    const handle = await write(fs, '/d/f', 'first');
    await handle.datasync();
    await handle.write(Buffer.from(' second'), 0, 7, 5);
    await handle.datasync();
    handle.writeNow(Buffer.from(' third'), 0, 6, 12);
    fs.powerCut();
    // The datasync made the creation durable too (powerfs treats fdatasync as fsync).
    expect(await text(fs, '/d/f')).toBe('first second');
  });

  it('restores synced bytes an unsynced write overwrote or a truncation cut off', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'abcdefghij');
    const handle = await fs.open('/d/f', 'r+');
    handle.writeNow(Buffer.from('XY'), 0, 2, 2);
    handle.writeNow(Buffer.from('Z'), 0, 1, 3); // overlaps the first: the synced byte comes back
    await handle.truncate(6);
    await handle.truncate(8); // extends with zeros, over bytes the truncation saved
    expect(await fs.readFile('/d/f')).toEqual(Buffer.from('abXZef\0\0', 'latin1'));
    fs.powerCut();
    expect(await text(fs, '/d/f')).toBe('abcdefghij');
    // Opening with `w` is a truncation too.
    await (await fs.open('/d/f', 'w')).close();
    fs.powerCut();
    expect(await text(fs, '/d/f')).toBe('abcdefghij');
  });

  it('keeps what an fsync through any handle of the file made durable', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'one');
    const writer = await fs.open('/d/f', 'r+');
    const syncer = await fs.open('/d/f', 'r');
    writer.writeNow(Buffer.from('two'), 0, 3, 0);
    await syncer.sync();
    writer.writeNow(Buffer.from('333'), 0, 3, 0);
    fs.powerCut();
    expect(await text(fs, '/d/f')).toBe('two');
  });

  it('tears unsynced appends at a random length when given a generator, and never overwrites', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'abcdef');
    await writeSynced(fs, '/d/g', 'ghijkl');
    const f = await fs.open('/d/f', 'r+');
    const g = await fs.open('/d/g', 'r+');
    f.writeNow(Buffer.from('XY0123456789'), 0, 12, 4); // overwrites "ef", appends 10 bytes
    g.writeNow(Buffer.from('0123'), 0, 4, 6);
    const draws = [0.5, 0.99];
    fs.powerCut({ random: () => draws.shift() ?? 0 });
    expect(draws).toEqual([]);
    // f: floor(0.5 * 11) = 5 of its 10 appended bytes, drawn first (it changed first); the
    // overwritten "ef" comes back. g: floor(0.99 * 5) = 4, all of them.
    expect(await text(fs, '/d/f')).toBe('abcdef01234');
    expect(await text(fs, '/d/g')).toBe('ghijkl0123');
    // What a torn cut kept is durable now: a second cut keeps it.
    fs.powerCut();
    expect(await text(fs, '/d/f')).toBe('abcdef01234');
  });

  it('draws nothing for a file with nothing appended, and keeps none with a draw of 0', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'abcdef');
    const f = await fs.open('/d/f', 'r+');
    f.writeNow(Buffer.from('X'), 0, 1, 0);
    await write(fs, '/d/g', 'appended'); // not durable: the file goes, whatever its bytes
    let draws = 0;
    fs.powerCut({
      random: () => {
        draws++;
        return 0.99;
      },
    });
    expect(draws).toBe(1);
    expect(await fs.readdir('/d')).toEqual(['f']);
    expect(await text(fs, '/d/f')).toBe('abcdef');
    const h = await fs.open('/d/f', 'r+');
    h.writeNow(Buffer.from('ghi'), 0, 3, 6);
    fs.powerCut({ random: () => 0 });
    expect(await text(fs, '/d/f')).toBe('abcdef');
  });
});

describe('MemoryFileSystem power cut: names', () => {
  it('loses a file created without an fsync of it or of its folder', async () => {
    const fs = await withFolder();
    await (await write(fs, '/d/folder-synced', 'kept, empty')).close();
    await syncDirectory('/d', fs); // the creation is durable, the contents are not
    await writeSynced(fs, '/d/file-synced', 'kept');
    await (await write(fs, '/d/unsynced', 'gone')).close();
    fs.powerCut();
    expect(await fs.readdir('/d')).toEqual(['file-synced', 'folder-synced']);
    expect(await text(fs, '/d/file-synced')).toBe('kept');
    expect(await text(fs, '/d/folder-synced')).toBe('');
  });

  it('undoes a rename over a file until the folder is synced (the atomic-replace pattern)', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/CURRENT', 'old');
    await syncDirectory('/d', fs);
    await writeSynced(fs, '/d/CURRENT.tmp', 'new');
    await fs.rename('/d/CURRENT.tmp', '/d/CURRENT');
    expect(await text(fs, '/d/CURRENT')).toBe('new');
    fs.powerCut();
    // The temporary file's creation was made durable by its fsync; the rename was not.
    expect(await fs.readdir('/d')).toEqual(['CURRENT', 'CURRENT.tmp']);
    expect(await text(fs, '/d/CURRENT')).toBe('old');

    await fs.rename('/d/CURRENT.tmp', '/d/CURRENT');
    await syncDirectory('/d', fs);
    fs.powerCut();
    expect(await fs.readdir('/d')).toEqual(['CURRENT']);
    expect(await text(fs, '/d/CURRENT')).toBe('new');
  });

  it('makes a rename durable by an fsync of the file, or of the folder it left or entered', async () => {
    for (const sync of ['file', 'left', 'entered', 'none'] as const) {
      const fs = await withFolder();
      await createDirectoryDurably('/e', fs);
      await writeSynced(fs, '/d/f', 'contents');
      await syncDirectory('/d', fs);
      await fs.rename('/d/f', '/e/f');
      if (sync === 'file') await (await fs.open('/e/f', 'r')).sync();
      if (sync === 'left') await syncDirectory('/d', fs);
      if (sync === 'entered') await syncDirectory('/e', fs);
      fs.powerCut();
      const moved = sync !== 'none';
      expect([await fs.readdir('/d'), await fs.readdir('/e')], sync).toEqual(
        moved ? [[], ['f']] : [['f'], []],
      );
    }
  });

  it('makes a file created and renamed durable with the rename (the rename brings the creation)', async () => {
    const fs = await withFolder();
    await createDirectoryDurably('/e', fs);
    await (await write(fs, '/d/f', 'x')).close();
    await fs.rename('/d/f', '/e/f');
    await syncDirectory('/e', fs);
    expect(fs.stats().pendingOperations).toBe(0);
    // Moved back, durably (an fsync of the folder it left): the creation in /d, durable with
    // the first rename, is not undone.
    await fs.rename('/e/f', '/d/f');
    await syncDirectory('/e', fs);
    fs.powerCut();
    expect(await fs.readdir('/d')).toEqual(['f']);
    expect(await fs.readdir('/e')).toEqual([]);
  });

  it('brings back a removal until the folder is synced', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'kept');
    await writeSynced(fs, '/d/g', 'removed');
    await syncDirectory('/d', fs);
    const removed = await fs.open('/d/g', 'r');
    await fs.unlink('/d/f');
    await fs.rm('/d/g');
    // An fsync of the removed file (through a handle still open) makes no removal durable.
    await removed.sync();
    fs.powerCut();
    expect(await fs.readdir('/d')).toEqual(['f', 'g']);
    expect(await text(fs, '/d/f')).toBe('kept');
    await fs.unlink('/d/f');
    await syncDirectory('/d', fs);
    fs.powerCut();
    expect(await fs.readdir('/d')).toEqual(['g']);
  });

  it('brings back the file a rename replaced, with its durable contents', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/a', 'a');
    await writeSynced(fs, '/d/b', 'b');
    await syncDirectory('/d', fs);
    const replaced = await fs.open('/d/b', 'r+');
    replaced.writeNow(Buffer.from('unsynced'), 0, 8, 0);
    await fs.rename('/d/a', '/d/b');
    fs.powerCut();
    expect(await fs.readdir('/d')).toEqual(['a', 'b']);
    expect([await text(fs, '/d/a'), await text(fs, '/d/b')]).toEqual(['a', 'b']);
  });

  it('does not undo into a name a durable change took since', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'old');
    await syncDirectory('/d', fs);
    await fs.unlink('/d/f'); // not durable
    await writeSynced(fs, '/d/f', 'new'); // durable by its own fsync
    fs.powerCut();
    expect(await fs.readdir('/d')).toEqual(['f']);
    expect(await text(fs, '/d/f')).toBe('new');
  });
});

describe('MemoryFileSystem power cut: folders', () => {
  it('loses a folder whose creation was not durable, with what was made durable inside it', async () => {
    const fs = new MemoryFileSystem();
    await fs.mkdir('/a/b/c', { recursive: true });
    await writeSynced(fs, '/a/b/c/f', 'synced');
    await syncDirectory('/a/b/c', fs); // makes c's entries durable, and c's own creation
    await syncDirectory('/a/b', fs);
    fs.powerCut();
    // a was never made durable in /: it goes, and b and c with it.
    expect(await fs.readdir('/')).toEqual([]);
  });

  it('keeps folders created durably, level by level', async () => {
    const fs = new MemoryFileSystem();
    expect(await createDirectoryDurably('/a/b/c', fs)).toEqual(['/a', '/a/b', '/a/b/c']);
    await writeSynced(fs, '/a/b/c/f', 'synced');
    fs.powerCut();
    expect(await fs.readdir('/a/b/c')).toEqual(['f']);
    expect(await createDirectoryDurably('/a/b/c', fs)).toEqual([]);
  });

  it('keeps a folder made durable by its own fsync', async () => {
    const fs = new MemoryFileSystem();
    await fs.mkdir('/a');
    await syncDirectory('/a', fs);
    fs.powerCut();
    expect(await fs.readdir('/')).toEqual(['a']);
  });

  it('makes the removals inside a folder durable once its removal is', async () => {
    const fs = new MemoryFileSystem();
    await createDirectoryDurably('/a/b', fs);
    await writeSynced(fs, '/a/b/f', 'f');
    await writeSynced(fs, '/a/g', 'g');
    await syncDirectory('/a/b', fs);
    await syncDirectory('/a', fs);
    await fs.rm('/a', { recursive: true });
    expect(fs.stats().pendingOperations).toBe(4);
    await syncDirectory('/', fs);
    expect(fs.stats().pendingOperations).toBe(0);
    fs.powerCut();
    expect(await fs.readdir('/')).toEqual([]);
  });

  it('brings a removed tree back as it was durable, its removals inside undone', async () => {
    const fs = new MemoryFileSystem();
    await createDirectoryDurably('/a/b', fs);
    await writeSynced(fs, '/a/b/f', 'f');
    await syncDirectory('/a/b', fs);
    const inner = await fs.open('/a/b', 'r');
    await fs.rm('/a', { recursive: true });
    fs.powerCut();
    expect(await text(fs, '/a/b/f')).toBe('f');
    expect(await errorCode(inner.sync())).toBe('EIO');

    // The inner folder's fsync (through a handle opened before its removal) makes the removals
    // made in it durable, but not its own: the folder comes back, empty.
    const handle = await fs.open('/a/b', 'r');
    await fs.rm('/a', { recursive: true });
    await handle.sync();
    fs.powerCut();
    expect(await fs.readdir('/a')).toEqual(['b']);
    expect(await fs.readdir('/a/b')).toEqual([]);
  });

  it('moves a renamed folder back, and the folder it replaced', async () => {
    const fs = new MemoryFileSystem();
    await createDirectoryDurably('/a/in', fs);
    await createDirectoryDurably('/empty', fs);
    await fs.rename('/a', '/empty');
    expect(await fs.readdir('/')).toEqual(['empty']);
    fs.powerCut();
    expect(await fs.readdir('/')).toEqual(['a', 'empty']);
    expect(await fs.readdir('/a')).toEqual(['in']);
    await fs.rename('/a', '/empty');
    await syncDirectory('/', fs);
    fs.powerCut();
    expect(await fs.readdir('/')).toEqual(['empty']);
    expect(await fs.readdir('/empty')).toEqual(['in']);
  });
});

describe('MemoryFileSystem handles across a cut or a crash', () => {
  it('fails every handle opened before a power cut with EIO, and serves new ones', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'abc');
    const handle = await fs.open('/d/f', 'r+');
    const folder = await fs.open('/d', 'r');
    fs.powerCut();
    expect(await errorCode(handle.read(Buffer.alloc(3), 0, 3, 0))).toBe('EIO');
    expect(await errorCode(handle.write(Buffer.from('x'), 0, 1, 0))).toBe('EIO');
    expect(thrownCode(() => handle.writeNow(Buffer.from('x'), 0, 1, 0))).toBe('EIO');
    expect(await errorCode(handle.sync())).toBe('EIO');
    expect(await errorCode(handle.datasync())).toBe('EIO');
    expect(await errorCode(handle.truncate(0))).toBe('EIO');
    expect(await errorCode(handle.size())).toBe('EIO');
    expect(await errorCode(folder.sync())).toBe('EIO');
    // What the kernel refuses itself comes first: it never reaches the file system to fail.
    expect(await errorCode(folder.read(Buffer.alloc(1), 0, 1, 0))).toBe('EISDIR');
    expect(thrownCode(() => folder.writeNow(Buffer.from('x'), 0, 1, 0))).toBe('EBADF');
    await handle.close();
    await folder.close();
    expect(await errorCode(handle.read(Buffer.alloc(3), 0, 3, 0))).toBe('EBADF');
    const fresh = await fs.open('/d/f', 'r');
    expect(await fresh.size()).toBe(3);
    await fresh.close();
  });

  it('loses nothing in a process crash but closes every handle (EBADF)', async () => {
    const fs = await withFolder();
    const handle = await write(fs, '/d/f', 'unsynced');
    fs.processCrash();
    expect(await errorCode(handle.write(Buffer.from('x'), 0, 1, 0))).toBe('EBADF');
    expect(await errorCode(handle.sync())).toBe('EBADF');
    expect(await text(fs, '/d/f')).toBe('unsynced');
    // The crash made nothing durable: a power cut after it still loses the file.
    const stats = fs.stats();
    expect(stats).toMatchObject({ files: 1, unsyncedBytes: 8, pendingOperations: 1, processCrashes: 1 });
    fs.powerCut();
    expect(await fs.readdir('/d')).toEqual([]);
  });
});

describe('MemoryFileSystem stats and corruption', () => {
  it('counts files, folders, bytes, and what a cut would throw away', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'abcd');
    const handle = await write(fs, '/d/g', 'xyz');
    handle.writeNow(Buffer.from('!'), 0, 1, 3);
    expect(fs.stats()).toEqual({
      files: 2,
      folders: 1,
      bytes: 8,
      unsyncedBytes: 4,
      dirtyFiles: 1,
      pendingOperations: 1, // g's creation: f's was made durable by its fsync
      powerCuts: 0,
      processCrashes: 0,
    });
    await handle.sync();
    await syncDirectory('/d', fs);
    expect(fs.stats()).toMatchObject({ unsyncedBytes: 0, dirtyFiles: 0, pendingOperations: 0 });
    fs.powerCut();
    expect(fs.stats()).toMatchObject({ files: 2, bytes: 8, powerCuts: 1 });
    // A file whose removal is durable has nothing left to lose.
    const removed = await fs.open('/d/g', 'r+');
    removed.writeNow(Buffer.from('more'), 0, 4, 4);
    await fs.unlink('/d/g');
    expect(fs.stats()).toMatchObject({ files: 1, unsyncedBytes: 4, dirtyFiles: 1 });
    await syncDirectory('/d', fs);
    expect(fs.stats()).toMatchObject({ files: 1, unsyncedBytes: 0, dirtyFiles: 0 });
  });

  it('flips a byte in what reads see and in what a cut brings back', async () => {
    const fs = await withFolder();
    await writeSynced(fs, '/d/f', 'abcd');
    await syncDirectory('/d', fs);
    fs.corrupt('/d/f', 1);
    expect(await fs.readFile('/d/f')).toEqual(Buffer.from([0x61, 0x62 ^ 0xff, 0x63, 0x64]));
    const handle = await fs.open('/d/f', 'r+');
    handle.writeNow(Buffer.from('XYZ'), 0, 3, 0);
    fs.corrupt('/d/f', 2);
    expect(fs.stats().unsyncedBytes).toBe(3); // damage is no write
    fs.powerCut();
    expect(await fs.readFile('/d/f')).toEqual(Buffer.from([0x61, 0x62 ^ 0xff, 0x63 ^ 0xff, 0x64]));
    expect(() => fs.corrupt('/d/f', 4)).toThrow(/assertion failed/);
    expect(() => fs.corrupt('/d', 0)).toThrow(/assertion failed/);
  });
});

describe('MemoryFileSystem determinism', () => {
  it('completes every call in microtasks: no timer, no real I/O', async () => {
    const fs = new MemoryFileSystem();
    let macrotaskRan = false;
    const macrotask = new Promise<void>((resolve) =>
      setImmediate(() => {
        macrotaskRan = true;
        resolve();
      }),
    );
    await createDirectoryDurably('/a/b', fs);
    for (let round = 0; round < 20; round++) {
      await replaceFileDurably(`/a/b/file-${round % 3}`, `round ${round}`, 0o644, fs);
      await fs.readdir('/a/b');
      await fs.rm(`/a/b/file-${(round + 1) % 3}`, { force: true });
    }
    expect(macrotaskRan).toBe(false);
    await macrotask;
  });

  it('refuses a generator answering outside [0, 1) (an assertion)', async () => {
    const fs = await withFolder();
    await (await write(fs, '/d/f', 'x')).close();
    expect(() => fs.powerCut({ random: () => 1 })).toThrow(/assertion failed/);
  });
});
