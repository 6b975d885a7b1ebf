/**
 * Recovery at open: replays every segment in order into the metadata state and the live log,
 * truncates a torn tail, and refuses a log damaged anywhere else.
 *
 * Rules:
 * - A damaged or incomplete record in the last segment, with no valid record anywhere after it,
 *   is a torn write (a crash before its fsync returned): the file is truncated before it.
 * - A damaged record followed by a valid one, a damaged or incomplete record in any other
 *   segment, a missing segment number, or a record whose content contradicts the records before
 *   it is corruption: `RAFT_LOG_CORRUPT`, naming the file and offset.
 * - A newest segment older than the one `NEWEST` names (or no segment at all while it names one)
 *   means segments were lost from the end: corruption too, not a shorter log.
 */
import type { FileSystem } from '@impulse/common';
import path from 'node:path';

import type { HardState, Logger, SnapshotMetadata } from '../raft/index.js';
import { readBatch } from './entry-codec.js';
import { corruptionError } from './errors.js';
import { LiveLog } from './live-log.js';
import { findValidRecord, readRecordAt, RecordType } from './record-codec.js';
import {
  listSegments,
  NEWEST_SEGMENT_FILE,
  readNewestSegment,
  syncDirectory,
  type SegmentInfo,
} from './segment.js';
import {
  readCheckpoint,
  readCompaction,
  readHardStateRecord,
  readSnapshotRecord,
  sameHardState,
  sameSnapshotMetadata,
} from './state-codec.js';

export interface RecoveredLog {
  readonly snapshot: SnapshotMetadata;
  readonly hardState: HardState;
  readonly log: LiveLog;
  /** The segments that remain, in order; the last one may be reopened for appending. */
  readonly segments: SegmentInfo[];
  /** Whether `hardState.commit` was raised; the store then writes the raised hard state. */
  readonly commitRaised: boolean;
}

/** The state that records are replayed into. */
class Replay {
  snapshot: SnapshotMetadata | undefined;
  hardState: HardState | undefined;
  log = new LiveLog(0, 0);
  /**
   * False while the live log starts after a gap whose base term is unknown. A gap is legal only
   * at the start of the oldest remaining segment, when compaction deleted the segments that held
   * the entries before it; a later compaction or snapshot record must then cover the gap.
   */
  baseTermKnown = true;

  apply(type: RecordType, payload: Buffer, segment: SegmentInfo): void {
    switch (type) {
      case RecordType.checkpoint:
        return this.applyCheckpoint(payload);
      case RecordType.entries:
        return this.applyEntries(payload, segment);
      case RecordType.hardState:
        this.hardState = readHardStateRecord(payload);
        return;
      case RecordType.snapshot: {
        const record = readSnapshotRecord(payload);
        this.snapshot = record.metadata;
        if (record.action === 'compact') {
          this.compactTo(record.metadata.index, record.metadata.term);
        } else if (record.action === 'reset') {
          this.log.reset(record.metadata.index, record.metadata.term);
          this.baseTermKnown = true;
        }
        return;
      }
      case RecordType.compaction: {
        const record = readCompaction(payload);
        this.compactTo(record.index, record.term);
        return;
      }
    }
  }

  private applyCheckpoint(payload: Buffer): void {
    const checkpoint = readCheckpoint(payload);
    if (this.snapshot === undefined || this.hardState === undefined) {
      this.snapshot = checkpoint.snapshot;
      this.hardState = checkpoint.hardState;
      this.log.reset(checkpoint.baseIndex, checkpoint.baseTerm);
      return;
    }
    // A later segment's checkpoint repeats the state the records before it built; a difference
    // means records are missing or out of order.
    if (
      !sameSnapshotMetadata(checkpoint.snapshot, this.snapshot) ||
      !sameHardState(checkpoint.hardState, this.hardState)
    ) {
      throw new Error('the checkpoint does not match the records before it');
    }
    this.compactTo(checkpoint.baseIndex, checkpoint.baseTerm);
  }

  private applyEntries(payload: Buffer, segment: SegmentInfo): void {
    const batch = readBatch(payload);
    if (batch.length === 0) {
      return;
    }
    const firstIndex = batch[0]!.index;
    if (firstIndex > this.log.lastIndex() + 1) {
      this.log.reset(firstIndex - 1, 0);
      this.baseTermKnown = false;
    }
    this.log.append(batch, this.log.checkAppend(batch));
    segment.maxEntryIndex = Math.max(segment.maxEntryIndex, batch[batch.length - 1]!.index);
  }

  private compactTo(index: number, term: number): void {
    if (index <= this.log.baseIndex) {
      if (index === this.log.baseIndex && !this.baseTermKnown) {
        this.log.setBaseTerm(term);
        this.baseTermKnown = true;
      }
      return;
    }
    if (index <= this.log.lastIndex()) {
      if (this.log.term(index) !== term) {
        throw new Error(
          `compaction to ${index} at term ${term}, but the log holds term ${this.log.term(index)}`,
        );
      }
      this.log.compactTo(index, term);
    } else {
      // The entries up to `index` were in segments that compaction deleted.
      this.log.reset(index, term);
    }
    this.baseTermKnown = true;
  }
}

/** Replays the log in `directory`; returns undefined when it holds no segment (a fresh log). */
export async function recover(
  directory: string,
  recordBytesMax: number,
  logger: Logger,
  fs: FileSystem,
): Promise<RecoveredLog | undefined> {
  const listed = await listSegments(directory, fs);
  let newest: number | undefined;
  try {
    newest = await readNewestSegment(directory, fs);
  } catch (error) {
    throw corruptionError(path.join(directory, NEWEST_SEGMENT_FILE), 0, (error as Error).message);
  }
  if (listed.length === 0) {
    if (newest !== undefined) throw missingNewest(directory, newest, undefined);
    return undefined;
  }
  for (let i = 1; i < listed.length; i++) {
    if (listed[i]!.sequence !== listed[i - 1]!.sequence + 1) {
      throw corruptionError(
        listed[i]!.file,
        0,
        `segment ${listed[i - 1]!.sequence + 1} is missing before it`,
      );
    }
  }
  const replay = new Replay();
  const segments: SegmentInfo[] = [];
  for (let i = 0; i < listed.length; i++) {
    const { sequence, firstIndex, file } = listed[i]!;
    const isLast = i === listed.length - 1;
    const buffer = await fs.readFile(file);
    const segment: SegmentInfo = { sequence, firstIndex, file, sizeBytes: 0, maxEntryIndex: 0 };
    let offset = 0;
    while (offset < buffer.length) {
      const read = readRecordAt(buffer, offset, recordBytesMax);
      if (read.kind === 'record') {
        if (offset === 0 && read.type !== RecordType.checkpoint) {
          throw corruptionError(file, 0, 'the segment does not start with a checkpoint');
        }
        try {
          replay.apply(read.type, read.payload, segment);
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
        const valid = findValidRecord(buffer, read.recordEnd ?? offset + 1, recordBytesMax);
        if (valid >= 0) {
          throw corruptionError(
            file,
            offset,
            `${read.reason}, and a valid record follows at offset ${valid}`,
          );
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
    segment.sizeBytes = offset;
    segments.push(segment);
  }

  // A last segment left empty (it was created, then its checkpoint was torn) holds nothing; it
  // goes so that every remaining segment starts with a checkpoint.
  const last = segments[segments.length - 1]!;
  if (last.sizeBytes === 0) {
    await fs.unlink(last.file);
    await syncDirectory(directory, fs);
    segments.pop();
  }
  // A segment is named in NEWEST only once its checkpoint is durable, so it cannot have been torn
  // away by a crash: a newest segment older than that one was lost.
  const newestFound = segments.at(-1)?.sequence;
  if (newest !== undefined && (newestFound === undefined || newestFound < newest))
    throw missingNewest(directory, newest, newestFound);
  if (replay.snapshot === undefined || replay.hardState === undefined) {
    return undefined;
  }
  if (!replay.baseTermKnown) {
    throw corruptionError(
      segments[0]!.file,
      0,
      `the entries before index ${replay.log.baseIndex + 1} are missing (a deleted or lost segment)`,
    );
  }
  let hardState = replay.hardState;
  // Everything up to the base is committed. A crash between a snapshot record and the hard state
  // record of the same save can leave an older commit behind, which the core would refuse.
  if (hardState.commit < replay.log.baseIndex) {
    logger.warn('raft-log: raised the recovered commit index to the compacted index', {
      commit: hardState.commit,
      baseIndex: replay.log.baseIndex,
    });
    hardState = { ...hardState, commit: replay.log.baseIndex };
  }
  return {
    snapshot: replay.snapshot,
    hardState,
    log: replay.log,
    segments,
    commitRaised: hardState !== replay.hardState,
  };
}

function missingNewest(directory: string, newest: number, found: number | undefined) {
  return corruptionError(
    path.join(directory, NEWEST_SEGMENT_FILE),
    0,
    `it names segment ${newest} as the newest made durable, but ${
      found === undefined ? 'no segment is left' : `the newest left is segment ${found}`
    }: the segments after it were lost (the log ends before entries this replica may have acknowledged)`,
  );
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
