import type { FileHandle } from './file-system.js';
import { fileSystemError } from './file-system-error.js';
import { MemoryFile } from './memory-file.js';
import type { MemoryEntry } from './memory-folder.js';
import { writeFully } from './write-fully.js';

/** What a handle needs of the memory file system that opened it. */
export interface MemoryHandleOwner {
  /** Power cuts so far: a handle opened before the last one answers EIO. */
  powerCuts(): number;
  /** Process crashes so far: a handle opened before the last one is closed (EBADF). */
  processCrashes(): number;
  /** An fsync of `entry` through a handle: contents, and names, durable. */
  sync(entry: MemoryEntry): void;
}

/** How a handle was opened: `r` reads, `r+` reads and writes, `w` and `wx` only write. */
export interface MemoryHandleAccess {
  readonly readable: boolean;
  readonly writable: boolean;
}

/**
 * An open file or folder of the memory file system. Every call completes at once (an async one
 * resolves in a microtask); the checks come in node's order: a closed handle (or one a crash
 * closed), then what node answers without a system call (no bytes to move), then a handle from
 * before a power cut, then what the handle was opened for, then the kind of entry.
 */
export class MemoryFileHandle implements FileHandle {
  private closed = false;
  private readonly powerCutsAtOpen: number;
  private readonly processCrashesAtOpen: number;

  constructor(
    private readonly entry: MemoryEntry,
    private readonly access: MemoryHandleAccess,
    private readonly owner: MemoryHandleOwner,
  ) {
    this.powerCutsAtOpen = owner.powerCuts();
    this.processCrashesAtOpen = owner.processCrashes();
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.checkOpen('write');
    // node answers a zero-length write without a system call, whatever the handle is open for.
    if (length === 0) return 0;
    return this.writeNow(buffer, offset, length, position);
  }

  writeNow(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.checkOpen('write');
    this.checkPower('write');
    if (!this.access.writable || !(this.entry instanceof MemoryFile)) throw fileSystemError('EBADF', 'write');
    // `writeSync` makes the system call even for no bytes: the checks above come first.
    if (length === 0) return 0;
    return this.entry.write(buffer, offset, length, position);
  }

  async writeFile(data: string | Uint8Array): Promise<void> {
    // The same steps as `nodeFileSystem`'s, so that the same errors come in the same order.
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await writeFully(this, bytes, 0);
    await this.truncate(bytes.byteLength);
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.checkOpen('read');
    // As for a write, node answers a zero-length read without a system call.
    if (length === 0) return 0;
    this.checkPower('read');
    if (!this.access.readable) throw fileSystemError('EBADF', 'read');
    if (!(this.entry instanceof MemoryFile)) throw fileSystemError('EISDIR', 'read');
    return this.entry.read(buffer, offset, length, position);
  }

  async size(): Promise<number> {
    this.check('fstat');
    // A folder's size means nothing portable (node answers what the disk keeps): 0 here.
    return this.entry instanceof MemoryFile ? this.entry.size : 0;
  }

  async truncate(length: number): Promise<void> {
    this.check('ftruncate');
    // Linux answers EINVAL, not EBADF, for a descriptor not open for writing.
    if (!this.access.writable || !(this.entry instanceof MemoryFile))
      throw fileSystemError('EINVAL', 'ftruncate');
    this.entry.truncate(length);
  }

  /** As powerfs, an fdatasync is an fsync: the size is the metadata that matters. */
  async datasync(): Promise<void> {
    this.check('fdatasync');
    this.owner.sync(this.entry);
  }

  async sync(): Promise<void> {
    this.check('fsync');
    this.owner.sync(this.entry);
  }

  async close(): Promise<void> {
    // Closing twice is no error for node, nor is closing a handle a power cut made stale.
    this.closed = true;
  }

  /** Before anything: node refuses a closed handle itself, and a crash closed every handle. */
  private checkOpen(syscall: string): void {
    if (this.closed || this.owner.processCrashes() !== this.processCrashesAtOpen) {
      throw fileSystemError('EBADF', syscall);
    }
  }

  /** Before the system call: a handle from before a power cut answers EIO, as powerfs's do. */
  private checkPower(syscall: string): void {
    if (this.owner.powerCuts() !== this.powerCutsAtOpen) throw fileSystemError('EIO', syscall);
  }

  private check(syscall: string): void {
    this.checkOpen(syscall);
    this.checkPower(syscall);
  }
}
