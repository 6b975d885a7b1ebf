/**
 * The file system as the storage code sees it: the few operations the Raft log, the state
 * machine's generations and the durable-file helpers use, and nothing else. Production passes
 * `nodeFileSystem` (node:fs); the simulator passes a `MemoryFileSystem`, which keeps what was
 * made durable apart from what was only written, so that a simulated power cut loses exactly
 * what a real one may lose, and a simulated run replays from its seed.
 *
 * Durability follows POSIX as the project reads it (deploy/powerfs/README.md):
 * - a file's contents and size are durable once `sync()` or `datasync()` of a handle returns;
 * - a file's creation, or a rename into a folder, is durable once the file or its folder is
 *   fsynced (`syncDirectory` of the folder);
 * - a removal is durable once its folder is fsynced.
 */
export interface FileSystem {
  /**
   * Opens a file. Flags: `r` read; `r+` read and write an existing file; `w` create or truncate;
   * `wx` create, failing with EEXIST when it exists. A folder opens with `r` (to fsync it).
   */
  open(path: string, flags: OpenFlags, mode?: number): Promise<FileHandle>;
  readFile(path: string): Promise<Buffer>;
  /** The names in a folder, sorted. */
  readdir(path: string): Promise<string[]>;
  /** Creates a folder; with `recursive`, its missing parents too, answering the first one made. */
  mkdir(path: string, options?: { recursive?: boolean }): Promise<string | undefined>;
  /** Removes a file or (with `recursive`) a folder tree; with `force`, a missing path is no error. */
  rm(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void>;
  /** Moves a file or folder, replacing a file at `to`. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** The size of a file, and whether the path is a folder; ENOENT when it is missing. */
  stat(path: string): Promise<FileStat>;
}

export type OpenFlags = 'r' | 'r+' | 'w' | 'wx';

export interface FileStat {
  readonly size: number;
  readonly isDirectory: boolean;
}

export interface FileHandle {
  /** Writes `length` bytes of `buffer` from `offset` at `position` of the file; answers bytes written. */
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /**
   * The same, synchronously (a small write costs less than a trip through the thread pool: see
   * `SegmentWriter.write`).
   */
  writeNow(buffer: Uint8Array, offset: number, length: number, position: number): number;
  /** Replaces the whole contents of a file opened for writing. */
  writeFile(data: string | Uint8Array): Promise<void>;
  /** Reads up to `length` bytes at `position` into `buffer` from `offset`; answers bytes read. */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  size(): Promise<number>;
  truncate(length: number): Promise<void>;
  /** fdatasync: contents and size durable. */
  datasync(): Promise<void>;
  /** fsync: contents, size and metadata durable; on a folder, its entries. */
  sync(): Promise<void>;
  close(): Promise<void>;
}
