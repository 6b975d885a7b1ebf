import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PowerFs } from '../src/power-fs.js';

/** Writes a file and fsyncs it (not its folder). */
function writeSynced(path: string, contents: string): void {
  const fd = openSync(path, 'w');
  writeSync(fd, contents);
  fsyncSync(fd);
  closeSync(fd);
}

function syncFolder(path: string): void {
  const fd = openSync(path, 'r');
  fsyncSync(fd);
  closeSync(fd);
}

async function mounted(mountpoint: string): Promise<boolean> {
  return (await readFile('/proc/mounts', 'utf8')).includes(` ${mountpoint} fuse.impulse-powerfs `);
}

/**
 * The power-cut file system of the chaos tool's power nemesis: what fsync made durable survives a
 * cut, and nothing else does (contents, creations, renames, removals).
 */
describe('PowerFs', () => {
  let root: string;
  let fs: PowerFs;
  let mnt: string;
  let diagnostics: string[];

  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'impulse-powerfs-'));
    mnt = join(root, 'mnt');
    diagnostics = [];
    fs = await PowerFs.mount({
      backingDirectory: join(root, 'backing'),
      mountpoint: mnt,
      onLogLine: (line) => diagnostics.push(line),
    });
  });

  afterEach(async () => {
    await fs.unmount();
    rmSync(root, { recursive: true, force: true });
  });

  it('keeps a synced write and drops an unsynced one', async () => {
    writeSynced(join(mnt, 'synced'), 'durable');
    syncFolder(mnt);
    writeFileSync(join(mnt, 'synced'), 'durable and more', { flag: 'a' });
    expect(readFileSync(join(mnt, 'synced'), 'utf8')).toBe('durabledurable and more');
    const cut = await fs.cut();
    expect(cut).toEqual({ filesReverted: 1, operationsUndone: 0, bytesDropped: 16 });
    expect(readFileSync(join(mnt, 'synced'), 'utf8')).toBe('durable');
  });

  it('restores synced bytes that an unsynced write overwrote or a truncation cut off', async () => {
    writeSynced(join(mnt, 'f'), 'abcdefghij');
    syncFolder(mnt);
    const fd = openSync(join(mnt, 'f'), 'r+');
    writeSync(fd, 'XY', 2);
    writeSync(fd, 'Z', 3); // overlaps the first overwrite: the synced byte is what comes back
    closeSync(fd);
    truncateSync(join(mnt, 'f'), 6);
    expect(readFileSync(join(mnt, 'f'), 'utf8')).toBe('abXZef');
    await fs.cut();
    expect(readFileSync(join(mnt, 'f'), 'utf8')).toBe('abcdefghij');
    // Opening with O_TRUNC is a truncation too.
    writeFileSync(join(mnt, 'f'), 'new');
    await fs.cut();
    expect(readFileSync(join(mnt, 'f'), 'utf8')).toBe('abcdefghij');
  });

  it('loses a file created without an fsync of it or of its folder', async () => {
    writeFileSync(join(mnt, 'folder-synced'), 'kept, empty');
    syncFolder(mnt); // the creation is durable, the contents are not
    writeSynced(join(mnt, 'file-synced'), 'kept');
    writeFileSync(join(mnt, 'unsynced'), 'gone');
    const cut = await fs.cut();
    expect(cut.operationsUndone).toBe(1);
    expect(readdirSync(mnt).sort()).toEqual(['file-synced', 'folder-synced']);
    expect(readFileSync(join(mnt, 'file-synced'), 'utf8')).toBe('kept');
    expect(readFileSync(join(mnt, 'folder-synced'), 'utf8')).toBe('');
  });

  it('undoes a rename over a file until the folder is synced (the atomic-replace pattern)', async () => {
    writeSynced(join(mnt, 'CURRENT'), 'old');
    syncFolder(mnt);
    writeSynced(join(mnt, 'CURRENT.tmp'), 'new');
    renameSync(join(mnt, 'CURRENT.tmp'), join(mnt, 'CURRENT'));
    expect(readFileSync(join(mnt, 'CURRENT'), 'utf8')).toBe('new');
    await fs.cut();
    // The temporary file's creation was made durable by its fsync; the rename was not.
    expect(readdirSync(mnt).sort()).toEqual(['CURRENT', 'CURRENT.tmp']);
    expect(readFileSync(join(mnt, 'CURRENT'), 'utf8')).toBe('old');

    renameSync(join(mnt, 'CURRENT.tmp'), join(mnt, 'CURRENT'));
    syncFolder(mnt);
    await fs.cut();
    expect(readdirSync(mnt)).toEqual(['CURRENT']);
    expect(readFileSync(join(mnt, 'CURRENT'), 'utf8')).toBe('new');
  });

  it('brings back a removed file until its folder is synced', async () => {
    writeSynced(join(mnt, 'a'), 'one');
    writeSynced(join(mnt, 'b'), 'two');
    syncFolder(mnt);
    unlinkSync(join(mnt, 'a'));
    await fs.cut();
    expect(readFileSync(join(mnt, 'a'), 'utf8')).toBe('one');
    unlinkSync(join(mnt, 'a'));
    syncFolder(mnt);
    await fs.cut();
    expect(readdirSync(mnt)).toEqual(['b']);
  });

  it('loses a folder whose creation was not synced, with what it holds', async () => {
    mkdirSync(join(mnt, 'gen-1'));
    syncFolder(mnt);
    mkdirSync(join(mnt, 'gen-2'));
    // The file is durable in its folder, but the folder's own creation is not.
    writeSynced(join(mnt, 'gen-2', 'data'), 'synced inside an unsynced folder');
    await fs.cut();
    expect(readdirSync(mnt)).toEqual(['gen-1']);
  });

  // A generation folder replaced by a new one of the same name (a snapshot install): once the old
  // folder's removal is durable, the removals inside it can no longer be undone, and a cut must not
  // bring the old files back into the new folder.
  it('forgets the removals inside a folder once its removal is durable', async () => {
    mkdirSync(join(mnt, 'gen'));
    writeSynced(join(mnt, 'gen', 'data'), 'old');
    syncFolder(join(mnt, 'gen'));
    syncFolder(mnt);
    rmSync(join(mnt, 'gen'), { recursive: true });
    mkdirSync(join(mnt, 'gen'));
    writeSynced(join(mnt, 'gen', 'data'), 'new');
    syncFolder(join(mnt, 'gen'));
    syncFolder(mnt);
    expect(await fs.stats()).toMatchObject({ pendingOperations: 0 });
    await fs.cut();
    expect(readFileSync(join(mnt, 'gen', 'data'), 'utf8')).toBe('new');
    expect(diagnostics).toEqual([]);
  });

  // The planted bug of the chaos tool's planted-bug test (a disk that lies about fsync).
  it('once told to lie, acknowledges fsyncs and loses what they were for at the next cut', async () => {
    writeSynced(join(mnt, 'before'), 'durable');
    syncFolder(mnt);
    await fs.lie();
    writeSynced(join(mnt, 'before'), 'acknowledged, lost');
    writeSynced(join(mnt, 'after'), 'acknowledged, lost');
    syncFolder(mnt);
    const cut = await fs.cut();
    expect(cut.operationsUndone).toBe(1);
    expect(readdirSync(mnt)).toEqual(['before']);
    expect(readFileSync(join(mnt, 'before'), 'utf8')).toBe('durable');
    expect(diagnostics.join('\n')).toMatch(/lying from now on/);
  });

  it('refuses every handle opened before the cut', async () => {
    writeSynced(join(mnt, 'f'), 'x');
    syncFolder(mnt);
    const fd = openSync(join(mnt, 'f'), 'r+');
    await fs.cut();
    expect(() => writeSync(fd, 'late')).toThrow(/EIO/);
    closeSync(fd);
    expect(readFileSync(join(mnt, 'f'), 'utf8')).toBe('x');
  });

  it('counts what a cut would drop, and unmounts when its owner lets go', async () => {
    writeSynced(join(mnt, 'f'), 'x');
    writeFileSync(join(mnt, 'g'), '12345');
    // f's fsync made its creation durable; g's creation and contents are pending.
    expect(await fs.stats()).toEqual({ dirtyFiles: 1, pendingOperations: 1, unsyncedBytes: 5, cuts: 0 });
    await fs.cut();
    expect(await fs.stats()).toEqual({ dirtyFiles: 0, pendingOperations: 0, unsyncedBytes: 0, cuts: 1 });
    expect(readdirSync(mnt)).toEqual(['f']);
    expect(await mounted(mnt)).toBe(true);
    await fs.unmount();
    expect(await mounted(mnt)).toBe(false);
  });
});
