import { writeSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import type { FileHandle, FileStat, FileSystem, OpenFlags } from './file-system.js';
import { fileSystemError } from './file-system-error.js';
import { writeFully } from './write-fully.js';

/**
 * The production file system: `node:fs`, each operation passed through as it is, but for the few
 * places where node answers differently from the interface (see each). The calls go through the
 * `node:fs/promises` namespace at call time, so that a test mocking that module sees them.
 */
export const nodeFileSystem: FileSystem = Object.freeze({
  async open(path: string, flags: OpenFlags, mode?: number): Promise<FileHandle> {
    return new NodeFileHandle(await fs.open(path, flags, mode));
  },

  readFile(path: string): Promise<Buffer> {
    return fs.readFile(path);
  },

  async readdir(path: string): Promise<string[]> {
    // node answers in the order the disk keeps; sorted, a listing is the same on every disk and
    // in the simulator.
    return (await fs.readdir(path)).sort();
  },

  mkdir(path: string, options?: { recursive?: boolean }): Promise<string | undefined> {
    return fs.mkdir(path, options);
  },

  async rm(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void> {
    try {
      await fs.rm(path, options);
    } catch (error) {
      // node answers its own ERR_FS_EISDIR for a folder removed without `recursive`; callers
      // match on the POSIX code, the same the memory file system answers.
      if ((error as { code?: unknown }).code === 'ERR_FS_EISDIR') throw fileSystemError('EISDIR', 'rm', path);
      throw error;
    }
  },

  rename(from: string, to: string): Promise<void> {
    return fs.rename(from, to);
  },

  unlink(path: string): Promise<void> {
    return fs.unlink(path);
  },

  async stat(path: string): Promise<FileStat> {
    const stats = await fs.stat(path);
    return { size: stats.size, isDirectory: stats.isDirectory() };
  },
});

/** A `node:fs/promises` handle seen through the interface. */
class NodeFileHandle implements FileHandle {
  constructor(private readonly handle: fs.FileHandle) {}

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return (await this.handle.write(buffer, offset, length, position)).bytesWritten;
  }

  writeNow(buffer: Uint8Array, offset: number, length: number, position: number): number {
    // A closed handle's descriptor is -1, which `writeSync` refuses with a RangeError: answer
    // what the asynchronous calls answer on a closed handle instead.
    if (this.handle.fd === -1) throw fileSystemError('EBADF', 'write');
    return writeSync(this.handle.fd, buffer, offset, length, position);
  }

  async writeFile(data: string | Uint8Array): Promise<void> {
    // node's own `writeFile` on a handle writes from the handle's current position and does not
    // truncate: not "the whole contents". Write from 0, then cut whatever was longer.
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await writeFully(this, bytes, 0);
    await this.handle.truncate(bytes.byteLength);
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return (await this.handle.read(buffer, offset, length, position)).bytesRead;
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  sync(): Promise<void> {
    return this.handle.sync();
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}
