import { posix } from 'node:path';
import { assert } from './assert.js';
import type { FileHandle, FileStat, FileSystem, OpenFlags } from './file-system.js';
import { fileSystemError } from './file-system-error.js';
import { MemoryFile, type DirtyFiles } from './memory-file.js';
import { MemoryFileHandle, type MemoryHandleAccess, type MemoryHandleOwner } from './memory-file-handle.js';
import { MemoryFolder, type MemoryEntry } from './memory-folder.js';
import { PendingOperations } from './pending-operations.js';

/** The longest name a folder takes, in UTF-8 bytes (Linux's NAME_MAX); longer is ENAMETOOLONG. */
export const memoryNameBytesMax = 255;

/** What the memory file system holds, and what a power cut would throw away now. */
export interface MemoryFileSystemStats {
  /** Files and folders reachable from `/` (the root not counted). */
  readonly files: number;
  readonly folders: number;
  /** The live size of every reachable file, summed. */
  readonly bytes: number;
  /** Bytes written since their file was last synced (as powerfs's `unsynced-bytes`). */
  readonly unsyncedBytes: number;
  /** Files changed since they were last synced: a cut reverts them. */
  readonly dirtyFiles: number;
  /** Creations, renames and removals a cut would undo. */
  readonly pendingOperations: number;
  readonly powerCuts: number;
  readonly processCrashes: number;
}

export interface PowerCutOptions {
  /**
   * A seeded generator of numbers in [0, 1). Without it, a cut keeps exactly what is durable. With
   * it, a cut tears writes as a disk may: each changed file keeps its synced contents plus a
   * prefix of the bytes it holds past its synced size, `floor(random() * (appended + 1))` bytes
   * long (from none to all). One number is drawn per changed file with bytes past its synced size,
   * in the order the files first changed since their last sync. Bytes overwritten below the synced
   * size always come back, and names follow the durable rules alone: a file whose creation was
   * not durable goes whatever its bytes.
   */
  readonly random?: () => number;
}

/** Where a path leads: the folder holding its last name, and the entry there, if any. */
interface Location {
  /** Undefined for `/` alone, which no folder holds. */
  readonly folder: MemoryFolder | undefined;
  readonly name: string;
  readonly entry: MemoryEntry | undefined;
}

const accessByFlags: Readonly<Record<OpenFlags, MemoryHandleAccess>> = {
  r: { readable: true, writable: false },
  'r+': { readable: true, writable: true },
  w: { readable: false, writable: true },
  wx: { readable: false, writable: true },
};

/**
 * A file system in memory for the deterministic simulator, with the durability model of the
 * project's power-cut file system (deploy/powerfs/README.md, `file-system.ts`): the live tree is
 * what every call sees, as a page cache; what was made durable is kept apart, so that
 * `powerCut()` puts every file and folder back as it was when last made durable, and
 * `processCrash()` closes every handle and loses nothing. No call does real I/O or waits on a
 * timer: an async call resolves in a microtask, so a simulated run replays exactly from its seed.
 *
 * Paths are POSIX paths, made absolute and normalised with `path.posix.resolve` (a relative path
 * against the process's working directory, as node's; `..` lexically). A file's `mode` is not
 * kept: the interface shows none.
 */
export class MemoryFileSystem implements FileSystem {
  private readonly root = new MemoryFolder();
  private readonly dirtyFiles: DirtyFiles = new Set();
  private readonly pending = new PendingOperations();
  private powerCutCount = 0;
  private processCrashCount = 0;
  private readonly owner: MemoryHandleOwner;

  constructor() {
    this.owner = {
      powerCuts: () => this.powerCutCount,
      processCrashes: () => this.processCrashCount,
      sync: (entry) => this.sync(entry),
    };
  }

  async open(path: string, flags: OpenFlags, _mode?: number): Promise<FileHandle> {
    const access = accessByFlags[flags];
    assert(access !== undefined, `open flags ${String(flags)}`);
    const { folder, name, entry } = this.locate(path, 'open');
    if (entry === undefined) {
      if (flags === 'r' || flags === 'r+') throw fileSystemError('ENOENT', 'open', path);
      // `locate` answers a folder for every path but `/`, which exists.
      assert(folder !== undefined, 'a missing entry with no folder');
      const file = new MemoryFile(this.dirtyFiles);
      folder.entries.set(name, file);
      this.pending.record({ kind: 'create', entry: file, folder, name });
      return new MemoryFileHandle(file, access, this.owner);
    }
    if (flags === 'wx') throw fileSystemError('EEXIST', 'open', path);
    if (entry instanceof MemoryFolder && flags !== 'r') throw fileSystemError('EISDIR', 'open', path);
    if (entry instanceof MemoryFile && flags === 'w') entry.truncate(0);
    return new MemoryFileHandle(entry, access, this.owner);
  }

  async readFile(path: string): Promise<Buffer> {
    const { entry } = this.locate(path, 'open');
    if (entry === undefined) throw fileSystemError('ENOENT', 'open', path);
    if (entry instanceof MemoryFolder) throw fileSystemError('EISDIR', 'read');
    return entry.contents();
  }

  async readdir(path: string): Promise<string[]> {
    const { entry } = this.locate(path, 'scandir');
    if (entry === undefined) throw fileSystemError('ENOENT', 'scandir', path);
    if (entry instanceof MemoryFile) throw fileSystemError('ENOTDIR', 'scandir', path);
    return entry.names();
  }

  async mkdir(path: string, options?: { recursive?: boolean }): Promise<string | undefined> {
    if (options?.recursive === true) return this.mkdirRecursive(path);
    const { folder, name, entry } = this.locate(path, 'mkdir');
    if (entry !== undefined) throw fileSystemError('EEXIST', 'mkdir', path);
    assert(folder !== undefined, 'a missing entry with no folder');
    this.createFolder(folder, name);
    return undefined;
  }

  async rm(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void> {
    let location: Location;
    try {
      location = this.locate(path, 'lstat');
    } catch (error) {
      // As node's: `force` forgives a missing path, not one through a file (ENOTDIR).
      if (options?.force === true && (error as { code?: unknown }).code === 'ENOENT') return;
      throw error;
    }
    const { folder, name, entry } = location;
    if (entry === undefined) {
      if (options?.force === true) return;
      throw fileSystemError('ENOENT', 'lstat', path);
    }
    if (folder === undefined) throw fileSystemError('EBUSY', 'rm', path);
    if (entry instanceof MemoryFolder) {
      if (options?.recursive !== true) throw fileSystemError('EISDIR', 'rm', path);
      this.removeTree(folder, name, entry);
    } else {
      this.remove(folder, name, entry);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.locate(from, 'rename', to);
    const target = this.locate(to, 'rename', from);
    const entry = source.entry;
    if (entry === undefined) throw fileSystemError('ENOENT', 'rename', from, to);
    if (source.folder === undefined || target.folder === undefined) {
      throw fileSystemError('EBUSY', 'rename', from, to);
    }
    if (target.entry === entry) return;
    const replaced = target.entry;
    // Linux checks the ancestry of the two before their kinds: a folder moved into itself is
    // EINVAL, and a target holding the source (a file renamed over its own folder) ENOTEMPTY.
    if (entry instanceof MemoryFolder && entry.holds(target.folder)) {
      throw fileSystemError('EINVAL', 'rename', from, to);
    }
    if (replaced instanceof MemoryFolder && replaced.holds(source.folder)) {
      throw fileSystemError('ENOTEMPTY', 'rename', from, to);
    }
    if (replaced instanceof MemoryFolder && entry instanceof MemoryFile) {
      throw fileSystemError('EISDIR', 'rename', from, to);
    }
    if (replaced instanceof MemoryFile && entry instanceof MemoryFolder) {
      throw fileSystemError('ENOTDIR', 'rename', from, to);
    }
    if (replaced instanceof MemoryFolder && replaced.entries.size > 0) {
      throw fileSystemError('ENOTEMPTY', 'rename', from, to);
    }
    source.folder.entries.delete(source.name);
    target.folder.entries.set(target.name, entry);
    this.pending.record({
      kind: 'rename',
      entry,
      folder: source.folder,
      name: source.name,
      toFolder: target.folder,
      toName: target.name,
      replaced,
    });
  }

  async unlink(path: string): Promise<void> {
    const { folder, name, entry } = this.locate(path, 'unlink');
    if (entry === undefined) throw fileSystemError('ENOENT', 'unlink', path);
    if (entry instanceof MemoryFolder || folder === undefined)
      throw fileSystemError('EISDIR', 'unlink', path);
    this.remove(folder, name, entry);
  }

  async stat(path: string): Promise<FileStat> {
    const { entry } = this.locate(path, 'stat');
    if (entry === undefined) throw fileSystemError('ENOENT', 'stat', path);
    // A folder's size means nothing portable (node answers what the disk keeps): 0 here.
    return entry instanceof MemoryFile
      ? { size: entry.size, isDirectory: false }
      : { size: 0, isDirectory: true };
  }

  /**
   * A power cut: every file goes back to its synced contents (see `PowerCutOptions.random` for
   * torn writes), then every creation, rename and removal not made durable is undone, newest
   * first. Every handle opened before the cut answers EIO from then on. The simulator stops the
   * replicas using this file system first: a power cut takes them down too.
   */
  powerCut(options: PowerCutOptions = {}): void {
    const { random } = options;
    for (const file of [...this.dirtyFiles]) {
      let keepAppendedBytes = 0;
      if (random !== undefined && file.appendedBytes > 0) {
        const draw = random();
        assert(draw >= 0 && draw < 1, `random() answered ${draw}, outside [0, 1)`);
        keepAppendedBytes = Math.floor(draw * (file.appendedBytes + 1));
      }
      file.revert(keepAppendedBytes);
    }
    assert(this.dirtyFiles.size === 0, 'a file still changed after a power cut');
    this.pending.undoAll();
    this.powerCutCount++;
  }

  /**
   * A `kill -9` of the process using this file system: the page cache survives, so nothing
   * written is lost, durable or not; every handle opened before it is closed (EBADF).
   */
  processCrash(): void {
    this.processCrashCount++;
  }

  stats(): MemoryFileSystemStats {
    let files = 0;
    let folders = 0;
    let bytes = 0;
    const visit = (folder: MemoryFolder): void => {
      for (const entry of folder.entries.values()) {
        if (entry instanceof MemoryFolder) {
          folders++;
          visit(entry);
        } else {
          files++;
          bytes += entry.size;
        }
      }
    };
    visit(this.root);
    let unsyncedBytes = 0;
    for (const file of this.dirtyFiles) unsyncedBytes += file.writtenBytes;
    return {
      files,
      folders,
      bytes,
      unsyncedBytes,
      dirtyFiles: this.dirtyFiles.size,
      pendingOperations: this.pending.count,
      powerCuts: this.powerCutCount,
      processCrashes: this.processCrashCount,
    };
  }

  /**
   * Flips every bit of the byte at `offset` of the file at `path`, in what reads see now and in
   * what a power cut brings back: damage on the disk, for tests of checksums and recovery. The
   * file must exist and hold that byte (a test that names another is wrong: an assertion).
   */
  corrupt(path: string, offset: number): void {
    const { entry } = this.locate(path, 'open');
    assert(entry instanceof MemoryFile, `corrupt(${path}): not a file`);
    entry.corrupt(offset);
  }

  /** An fsync through a handle: of a file, its contents and names; of a folder, its entries. */
  private sync(entry: MemoryEntry): void {
    if (entry instanceof MemoryFile) {
      entry.markSynced();
      this.pending.syncEntry(entry);
    } else {
      this.pending.syncFolder(entry);
    }
  }

  /**
   * Walks `path` to the folder holding its last name. A missing folder on the way is ENOENT, a
   * file on the way ENOTDIR, a name over `memoryNameBytesMax` ENAMETOOLONG; `dest` is the other
   * path of a rename, for the error's message.
   */
  private locate(path: string, syscall: string, dest?: string): Location {
    assert(typeof path === 'string', `path ${String(path)}`);
    // node refuses an empty path (the kernel does); `resolve('')` would be the working directory.
    if (path === '') throw fileSystemError('ENOENT', syscall, path, dest);
    const absolute = posix.resolve(path);
    if (absolute === '/') return { folder: undefined, name: '', entry: this.root };
    const names = absolute.slice(1).split('/');
    let folder = this.root;
    for (const [index, name] of names.entries()) {
      if (Buffer.byteLength(name, 'utf8') > memoryNameBytesMax) {
        throw fileSystemError('ENAMETOOLONG', syscall, path, dest);
      }
      const entry = folder.entries.get(name);
      if (index === names.length - 1) return { folder, name, entry };
      if (entry === undefined) throw fileSystemError('ENOENT', syscall, path, dest);
      if (entry instanceof MemoryFile) throw fileSystemError('ENOTDIR', syscall, path, dest);
      folder = entry;
    }
    assert(false, `path ${path} has no last name`);
  }

  private mkdirRecursive(path: string): string | undefined {
    const entry = this.checkMkdirRecursive(path);
    if (entry instanceof MemoryFolder) return undefined;
    if (entry instanceof MemoryFile) throw fileSystemError('EEXIST', 'mkdir', path);
    // Create the missing levels outermost first, answering the first one made, as node does.
    const names = posix.resolve(path).slice(1).split('/');
    let folder = this.root;
    let first: string | undefined;
    for (const [index, name] of names.entries()) {
      const next = folder.entries.get(name);
      if (next instanceof MemoryFolder) {
        folder = next;
        continue;
      }
      assert(next === undefined, 'a file on the way of a checked mkdir');
      first ??= `/${names.slice(0, index + 1).join('/')}`;
      folder = this.createFolder(folder, name);
    }
    return first;
  }

  /**
   * The checks of a recursive mkdir, made before it creates anything, so that a file on the way
   * (ENOTDIR) or a name too long leaves the tree as it was. Answers the entry at `path`, if any.
   */
  private checkMkdirRecursive(path: string): MemoryEntry | undefined {
    if (path === '') throw fileSystemError('ENOENT', 'mkdir', path);
    const absolute = posix.resolve(path);
    let entry: MemoryEntry | undefined = this.root;
    if (absolute === '/') return entry;
    for (const name of absolute.slice(1).split('/')) {
      if (Buffer.byteLength(name, 'utf8') > memoryNameBytesMax)
        throw fileSystemError('ENAMETOOLONG', 'mkdir', path);
      if (entry instanceof MemoryFile) throw fileSystemError('ENOTDIR', 'mkdir', path);
      entry = entry?.entries.get(name);
    }
    return entry;
  }

  private createFolder(folder: MemoryFolder, name: string): MemoryFolder {
    const created = new MemoryFolder();
    folder.entries.set(name, created);
    this.pending.record({ kind: 'create', entry: created, folder, name });
    return created;
  }

  private remove(folder: MemoryFolder, name: string, entry: MemoryEntry): void {
    assert(folder.entries.get(name) === entry, `removing ${name}, which is not there`);
    assert(
      !(entry instanceof MemoryFolder) || entry.entries.size === 0,
      `removing ${name}, a folder not empty`,
    );
    folder.entries.delete(name);
    this.pending.record({ kind: 'remove', entry, folder, name });
  }

  /** Removes a folder tree one entry at a time, innermost first, as node's `rm` does (rmdir, unlink). */
  private removeTree(folder: MemoryFolder, name: string, tree: MemoryFolder): void {
    for (const childName of tree.names()) {
      const child = tree.entries.get(childName);
      assert(child !== undefined, `a listed name ${childName} is missing`);
      if (child instanceof MemoryFolder) this.removeTree(tree, childName, child);
      else this.remove(tree, childName, child);
    }
    this.remove(folder, name, tree);
  }
}
