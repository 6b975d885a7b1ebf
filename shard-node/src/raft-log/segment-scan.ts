/**
 * The reading of segment files at open, shared by a replica's log (`recovery.ts`) and the node log
 * (`node-recovery.ts`): the order and completeness of the files, the scan of one file's records
 * that tells a torn tail from corruption in the middle, and the check against `NEWEST`.
 *
 * Rules:
 * - A damaged or incomplete record in the last segment, with no valid record anywhere after it,
 *   is a torn write (a crash before its fsync returned): the file is truncated before it.
 * - A damaged record followed by a valid one, a damaged or incomplete record in any other
 *   segment, a missing segment number, or a segment that does not start with a checkpoint is
 *   corruption: `RAFT_LOG_CORRUPT`, naming the file and offset.
 * - A newest segment older than the one `NEWEST` names (or no segment at all while it names one)
 *   means segments were lost from the end: corruption too, not a shorter log.
 */
import type { FileSystem } from '@impulse/common';
import path from 'node:path';

import type { Logger } from '../raft/index.js';
import { corruptionError } from './errors.js';
import { findValidRecord, readRecordAt, type RecordTypeTest } from './record-codec.js';
import { NEWEST_SEGMENT_FILE, readNewestSegment } from './segment.js';

/** What the scan of a file needs to know of its format. */
export interface SegmentFormat {
  readonly recordBytesMax: number;
  readonly isType: RecordTypeTest;
  /** The type every segment must start with. */
  readonly checkpointType: number;
}

/** Refuses a listing (in sequence order) with a missing sequence number. */
export function checkConsecutive(listed: readonly { sequence: number; file: string }[]): void {
  for (let i = 1; i < listed.length; i++) {
    if (listed[i]!.sequence !== listed[i - 1]!.sequence + 1) {
      throw corruptionError(
        listed[i]!.file,
        0,
        `segment ${listed[i - 1]!.sequence + 1} is missing before it`,
      );
    }
  }
}

/** The sequence `NEWEST` names, or undefined; a `NEWEST` that does not parse is corruption. */
export async function readNewestOrRefuse(directory: string, fs: FileSystem): Promise<number | undefined> {
  try {
    return await readNewestSegment(directory, fs);
  } catch (error) {
    throw corruptionError(path.join(directory, NEWEST_SEGMENT_FILE), 0, (error as Error).message);
  }
}

/**
 * Refuses a log whose newest segment (`found`, undefined when none is left) is older than the one
 * `NEWEST` names. A segment is named there only once its checkpoint is durable, so it cannot have
 * been torn away by a crash: a newest segment older than that one was lost.
 */
export function checkNewest(directory: string, newest: number | undefined, found: number | undefined): void {
  if (newest === undefined || (found !== undefined && found >= newest)) return;
  throw corruptionError(
    path.join(directory, NEWEST_SEGMENT_FILE),
    0,
    `it names segment ${newest} as the newest made durable, but ${
      found === undefined ? 'no segment is left' : `the newest left is segment ${found}`
    }: the segments after it were lost (the log ends before entries this replica may have acknowledged)`,
  );
}

/**
 * Reads the records of one segment in order, handing each to `onRecord` (with its offset and its
 * bytes, header included); an `Error` thrown by `onRecord` is reported as corruption at that
 * offset. Returns the bytes of valid records: a torn tail of the last segment is truncated there
 * (and logged); any other damage throws `RAFT_LOG_CORRUPT`.
 */
export async function scanSegment(
  file: string,
  isLast: boolean,
  format: SegmentFormat,
  logger: Logger,
  fs: FileSystem,
  onRecord: (type: number, payload: Buffer, offsetBytes: number, recordBytes: number) => void,
): Promise<number> {
  const buffer = await fs.readFile(file);
  let offset = 0;
  while (offset < buffer.length) {
    const read = readRecordAt(buffer, offset, format.recordBytesMax, format.isType);
    if (read.kind === 'record') {
      if (offset === 0 && read.type !== format.checkpointType) {
        throw corruptionError(file, 0, 'the segment does not start with a checkpoint');
      }
      try {
        onRecord(read.type, read.payload, offset, read.nextOffset - offset);
      } catch (error) {
        throw corruptionError(file, offset, error instanceof Error ? error.message : String(error));
      }
      offset = read.nextOffset;
      continue;
    }
    if (!isLast) {
      throw corruptionError(file, offset, read.reason);
    }
    // A record whose intact header says where it ends is followed by whatever was written after
    // it; a record with a damaged header could be followed by a valid one anywhere.
    if (read.kind === 'corrupt') {
      const valid = findValidRecord(
        buffer,
        read.recordEnd ?? offset + 1,
        format.recordBytesMax,
        format.isType,
      );
      if (valid >= 0) {
        throw corruptionError(file, offset, `${read.reason}, and a valid record follows at offset ${valid}`);
      }
    }
    logger.warn('raft-log: truncated a torn tail', {
      file,
      offsetBytes: offset,
      droppedBytes: buffer.length - offset,
      reason: read.reason,
    });
    await truncateFile(file, offset, fs);
    break;
  }
  if (buffer.length === 0 && !isLast) {
    throw corruptionError(file, 0, 'an empty segment before the last one');
  }
  return offset;
}

async function truncateFile(file: string, sizeBytes: number, fs: FileSystem): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.truncate(sizeBytes);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
