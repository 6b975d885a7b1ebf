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
 * resolves in a microtask); the checks come in the order node, the kernel and powerfs make them:
 * a closed handle (or one a crash closed), then what node answers without a system call (no bytes
 * to move), then what the handle was opened for and the kind of entry, then a handle from before
 * a power cut.
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
    if (!this.access.writable || !(this.entry instanceof MemoryFile)) throw fileSystemError('EBADF', 'write');
    // `writeSync` makes the system call even for no bytes, but the kernel answers it at once.
    if (length === 0) return 0;
    this.checkPower('write');
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
    if (!this.access.readable) throw fileSystemError('EBADF', 'read');
    if (!(this.entry instanceof MemoryFile)) throw fileSystemError('EISDIR', 'read');
    this.checkPower('read');
    return this.entry.read(buffer, offset, length, position);
  }

  async size(): Promise<number> {
    this.check('fstat');
    // A folder's size means nothing portable (node answers what the disk keeps): 0 here.
    return this.entry instanceof MemoryFile ? this.entry.size : 0;
  }

  async truncate(length: number): Promise<void> {
    this.checkOpen('ftruncate');
    // Linux answers EINVAL, not EBADF, for a descriptor not open for writing.
    if (!this.access.writable || !(this.entry instanceof MemoryFile)) {
      throw fileSystemError('EINVAL', 'ftruncate');
    }
    this.checkPower('ftruncate');
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

  /**
   * Last: a handle from before a power cut answers EIO, as powerfs's do; but what the kernel
   * refuses itself (a handle not open for the call, a folder read) never reaches powerfs.
   */
  private checkPower(syscall: string): void {
    if (this.owner.powerCuts() !== this.powerCutsAtOpen) throw fileSystemError('EIO', syscall);
  }

  private check(syscall: string): void {
    this.checkOpen(syscall);
    this.checkPower(syscall);
  }
}
