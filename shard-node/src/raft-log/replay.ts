/**
 * The replay of one replica's records into its metadata state and live log, shared by the recovery
 * of a replica's own log (`recovery.ts`) and by that of the node log (`node-recovery.ts`), where
 * each group has one `Replay` fed with the payloads of its records.
 */
import type { HardState, Logger, SnapshotMetadata } from '../raft/index.js';
import { readBatch } from './entry-codec.js';
import { corruptionError } from './errors.js';
import { LiveLog } from './live-log.js';
import { RecordType } from './record-codec.js';
import {
  readCheckpoint,
  readCompaction,
  readHardStateRecord,
  readSnapshotRecord,
  sameHardState,
  sameSnapshotMetadata,
  type Checkpoint,
} from './state-codec.js';

/** Where replay notes the highest entry index a segment holds (for the compaction of a replica log). */
export interface EntryIndexTracker {
  maxEntryIndex: number;
}

/** The state a replay ends with, once checked by `Replay.finish`. */
export interface ReplayedState {
  readonly snapshot: SnapshotMetadata;
  readonly hardState: HardState;
  readonly log: LiveLog;
  /** Whether `hardState.commit` was raised; the store then writes the raised hard state. */
  readonly commitRaised: boolean;
}

/** The state that records are replayed into. */
export class Replay {
  snapshot: SnapshotMetadata | undefined;
  hardState: HardState | undefined;
  log = new LiveLog(0, 0);
  /**
   * False while the live log starts after a gap whose base term is unknown. A gap is legal only
   * at the start of the oldest remaining segment, when compaction deleted the segments that held
   * the entries before it; a later compaction or snapshot record must then cover the gap.
   */
  baseTermKnown = true;

  /** Applies one record; throws an `Error` (which the caller reports as corruption) on a contradiction. */
  apply(type: RecordType, payload: Buffer, segment: EntryIndexTracker): void {
    switch (type) {
      case RecordType.checkpoint:
        return this.applyCheckpoint(readCheckpoint(payload));
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

  /** The first checkpoint starts the replay; a later one must repeat what the records before it built. */
  applyCheckpoint(checkpoint: Checkpoint): void {
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

  private applyEntries(payload: Buffer, segment: EntryIndexTracker): void {
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

  /**
   * Checks the end state and returns it, or undefined when no checkpoint was replayed. `oldestFile`
   * names the oldest segment in the corruption error of a gap no record covered; `fields` go in the
   * warning of a raised commit.
   */
  finish(oldestFile: string, logger: Logger, fields: Record<string, string> = {}): ReplayedState | undefined {
    if (this.snapshot === undefined || this.hardState === undefined) {
      return undefined;
    }
    if (!this.baseTermKnown) {
      throw corruptionError(
        oldestFile,
        0,
        `the entries before index ${this.log.baseIndex + 1} are missing (a deleted or lost segment)`,
      );
    }
    let hardState = this.hardState;
    // Everything up to the base is committed. A crash between a snapshot record and the hard state
    // record of the same save can leave an older commit behind, which the core would refuse.
    if (hardState.commit < this.log.baseIndex) {
      logger.warn('raft-log: raised the recovered commit index to the compacted index', {
        ...fields,
        commit: hardState.commit,
        baseIndex: this.log.baseIndex,
      });
      hardState = { ...hardState, commit: this.log.baseIndex };
    }
    return {
      snapshot: this.snapshot,
      hardState,
      log: this.log,
      commitRaised: hardState !== this.hardState,
    };
  }
}
