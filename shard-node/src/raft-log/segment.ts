/**
 * Segment files: their names, the listing of a log directory, and the append handle of the tail
 * segment. A segment is named `<sequence>-<firstIndex>.log`, both as 16 hex digits, so that names
 * sort in log order; `firstIndex` is the index the next entry had when the segment was created.
 */
import path from 'node:path';
import type { FileHandle, FileSystem } from '@impulse/common';

import { assert } from './errors.js';

/** Writes up to this size are copied synchronously (see `SegmentWriter.write`). */
const synchronousWriteBytesMax = 64 * 1024;

const SEGMENT_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.log$/;

/** What a writer needs of a segment file: its path and its valid bytes, which it keeps current. */
export interface SegmentFile {
  readonly sequence: number;
  readonly file: string;
  sizeBytes: number;
}

/** What the store knows of each segment file. */
export interface SegmentInfo extends SegmentFile {
  readonly firstIndex: number;
  /**
   * The highest entry index written in this segment, or 0 if it holds no entries. A segment whose
   * entries are all at or below a compaction index can be deleted.
   */
  maxEntryIndex: number;
}

export function segmentFileName(sequence: number, firstIndex: number): string {
  return `${sequence.toString(16).padStart(16, '0')}-${firstIndex.toString(16).padStart(16, '0')}.log`;
}

/**
 * The file that names the newest segment ever made durable in the directory (its sequence, as in
 * segment names, then a newline). A new segment is recorded here once it holds its checkpoint and
 * is fsynced, so a newest segment that disappears later (deleted, lost with its directory entry) is
 * found at open as missing, rather than read as a shorter log. It is rewritten atomically.
 */
export const NEWEST_SEGMENT_FILE = 'NEWEST';

export function encodeNewestSegment(sequence: number): string {
  return `${sequence.toString(16).padStart(16, '0')}\n`;
}

/** The sequence that `NEWEST` names; undefined when the file does not exist; throws on garbage. */
export async function readNewestSegment(directory: string, fs: FileSystem): Promise<number | undefined> {
  let text: string;
  try {
    text = (await fs.readFile(path.join(directory, NEWEST_SEGMENT_FILE))).toString('latin1');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const match = /^([0-9a-f]{16})\n$/.exec(text);
  if (match === null)
    throw new Error(`${NEWEST_SEGMENT_FILE} does not name a segment: ${JSON.stringify(text.slice(0, 40))}`);
  return Number.parseInt(match[1]!, 16);
}

/** The segments of `directory`, in sequence order. Other files are ignored. */
export async function listSegments(
  directory: string,
  fs: FileSystem,
): Promise<{ sequence: number; firstIndex: number; file: string }[]> {
  const names = await fs.readdir(directory);
  const segments = [];
  for (const name of names) {
    const match = SEGMENT_NAME.exec(name);
    if (match === null) {
      continue;
    }
    segments.push({
      sequence: Number.parseInt(match[1]!, 16),
      firstIndex: Number.parseInt(match[2]!, 16),
      file: path.join(directory, name),
    });
  }
  segments.sort((a, b) => a.sequence - b.sequence);
  return segments;
}

/**
 * Makes the directory's entries (a created, truncated or deleted file) durable. Without it, a
 * crash can forget a new segment whose records were fsynced, or resurrect a deleted one.
 */
export async function syncDirectory(directory: string, fs: FileSystem): Promise<void> {
  const handle = await fs.open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The open tail segment, written at the end only. */
export class SegmentWriter<Info extends SegmentFile = SegmentInfo> {
  /** Whether bytes were written since the last datasync. */
  unsynced = false;

  private constructor(
    private readonly handle: FileHandle,
    readonly info: Info,
  ) {}

  /** Creates a new segment file; fails if it exists, which would mean two writers. */
  static async create<Info extends SegmentFile>(info: Info, fs: FileSystem): Promise<SegmentWriter<Info>> {
    assert(info.sizeBytes === 0, 'a new segment starts empty');
    return new SegmentWriter(await fs.open(info.file, 'wx'), info);
  }

  /**
   * Opens an existing segment to append after its `info.sizeBytes` valid bytes, and fdatasyncs it
   * first. What the process before wrote may be only in the page cache (a kill keeps it there
   * unsynced), yet it was replayed as part of the log: this process may acknowledge its entries,
   * and a later segment's checkpoint repeats its state, so a later power cut must not lose it.
   */
  static async reopen<Info extends SegmentFile>(info: Info, fs: FileSystem): Promise<SegmentWriter<Info>> {
    const handle = await fs.open(info.file, 'r+');
    try {
      await handle.datasync();
    } catch (error) {
      await handle.close();
      throw error;
    }
    return new SegmentWriter(handle, info);
  }

  /**
   * Copies `bytes` to the end of the segment, in the page cache. A small write (the common Ready
   * of a loaded leader or follower: a few kilobytes) is copied synchronously: the kernel copies it
   * in microseconds, while a trip through libuv's thread pool costs two thread wake-ups, which on a
   * busy machine cost more CPU than the copy (docs/benchmarks.md). A large one (a follower catching
   * up receives Readys of megabytes) goes through the thread pool, so that it never stalls the
   * event loop's heartbeats. Durability still comes only from `datasync`, which stays asynchronous.
   */
  async write(bytes: Buffer): Promise<void> {
    let written = 0;
    // A file write may in principle be partial; loop until everything is in the page cache.
    while (written < bytes.length) {
      const length = bytes.length - written;
      const position = this.info.sizeBytes + written;
      written +=
        length <= synchronousWriteBytesMax
          ? this.handle.writeNow(bytes, written, length, position)
          : await this.handle.write(bytes, written, length, position);
    }
    this.info.sizeBytes += bytes.length;
    this.unsynced = true;
  }

  /**
   * fdatasync: the data and the file size, without unrelated metadata such as timestamps, which
   * is all a later read needs.
   */
  async datasync(): Promise<void> {
    await this.handle.datasync();
    this.unsynced = false;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
