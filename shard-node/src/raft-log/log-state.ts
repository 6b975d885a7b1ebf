/**
 * The in-memory state of one replica's log (snapshot metadata, hard state and live entries) and
 * the staging of each write: the state changes at once and the write's records go into a
 * `RecordSink`, to be written later. Shared by `RaftLogStore` and the node log's `GroupLog`, which
 * differ only in where the records go.
 */
import {
  CompactedError,
  EMPTY_BYTES,
  SnapshotOutOfDateError,
  type ConfState,
  type Entry,
  type HardState,
  type InitialState,
  type Snapshot,
  type SnapshotMetadata,
  type Storage,
} from '../raft/index.js';
import { assert } from './errors.js';
import type { LiveLog } from './live-log.js';
import type { RaftLogUpdate } from './replica-log.js';
import type { Checkpoint, CompactionRecord, SnapshotRecord } from './state-codec.js';

/** Where a staged write puts its records (a `RecordBatch`, or a group's batch in the node log). */
export interface RecordSink {
  /** Asserts, before anything changes, that every entry fits in a record of its own. */
  checkEntrySizes(entries: readonly Entry[]): void;
  addEntries(entries: readonly Entry[], from: number): void;
  addHardState(hardState: HardState): void;
  addSnapshot(record: SnapshotRecord): void;
  addCompaction(record: CompactionRecord): void;
}

export class ReplicaLogState implements Storage {
  private readonly log: LiveLog;
  private snapshotValue: Snapshot;
  private hardStateValue: HardState;

  constructor(state: { snapshot: SnapshotMetadata; hardState: HardState; log: LiveLog }) {
    this.log = state.log;
    this.snapshotValue = { metadata: state.snapshot, data: EMPTY_BYTES };
    this.hardStateValue = state.hardState;
  }

  // ---------------------------------------------------------------------------------------------
  // Storage: synchronous reads of the live log.

  initialState(): InitialState {
    return { hardState: this.hardStateValue, confState: this.snapshotValue.metadata.confState };
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    return this.log.entries(lo, hi, maxBytes);
  }

  term(index: number): number {
    return this.log.term(index);
  }

  firstIndex(): number {
    return this.log.firstIndex();
  }

  lastIndex(): number {
    return this.log.lastIndex();
  }

  snapshot(): Snapshot {
    return this.snapshotValue;
  }

  hardState(): HardState {
    return this.hardStateValue;
  }

  /** The bytes the in-memory entries count for (only those after the last compaction). */
  memoryBytes(): number {
    return this.log.memoryBytes;
  }

  /** The whole metadata state, as a segment's checkpoint records it. */
  checkpoint(): Checkpoint {
    return {
      snapshot: this.snapshotValue.metadata,
      hardState: this.hardStateValue,
      baseIndex: this.log.baseIndex,
      baseTerm: this.log.baseTerm,
      lastIndex: this.log.lastIndex(),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Staging. Each method throws a RaftError before changing anything, or an assertion (a
  // programmer error) that may leave the state half changed.

  /** Stages one Ready: snapshot metadata, entries, hard state (entries at or below the base are skipped). */
  stageSave(update: RaftLogUpdate, sink: RecordSink): void {
    if (update.entries !== undefined) {
      sink.checkEntrySizes(update.entries);
    }
    if (update.snapshot !== undefined) {
      this.stageInstalledSnapshot(update.snapshot, sink);
    }
    if (update.entries !== undefined) {
      const from = this.log.checkAppend(update.entries);
      this.log.append(update.entries, from);
      sink.addEntries(update.entries, from);
    }
    if (update.hardState !== undefined) {
      this.hardStateValue = update.hardState;
      sink.addHardState(update.hardState);
    }
  }

  /** Stages a snapshot the state machine took at `index`; see `ReplicaLog.createSnapshot`. */
  stageCreateSnapshot(index: number, confState: ConfState | undefined, sink: RecordSink): SnapshotMetadata {
    if (index <= this.snapshotValue.metadata.index) {
      throw new SnapshotOutOfDateError();
    }
    assert(
      index >= this.log.baseIndex && index <= this.log.lastIndex(),
      `snapshot ${index} is out of the live log [${this.log.baseIndex}, ${this.log.lastIndex()}]`,
    );
    const created: SnapshotMetadata = {
      index,
      term: this.log.term(index),
      confState: confState ?? this.snapshotValue.metadata.confState,
    };
    this.snapshotValue = { metadata: created, data: EMPTY_BYTES };
    sink.addSnapshot({ metadata: created, action: 'none' });
    return created;
  }

  /** Stages the compaction of the entries up to `index`; see `ReplicaLog.compact`. */
  stageCompaction(index: number, sink: RecordSink): void {
    if (index <= this.log.baseIndex) {
      throw new CompactedError();
    }
    assert(
      index <= this.log.lastIndex(),
      `compact ${index} is out of bound lastIndex(${this.log.lastIndex()})`,
    );
    assert(
      index <= this.snapshotValue.metadata.index,
      `compact ${index} is past the snapshot (${this.snapshotValue.metadata.index})`,
    );
    const term = this.log.term(index);
    this.log.compactTo(index, term);
    sink.addCompaction({ index, term });
  }

  private stageInstalledSnapshot(metadata: SnapshotMetadata, sink: RecordSink): void {
    if (metadata.index <= this.snapshotValue.metadata.index) {
      throw new SnapshotOutOfDateError();
    }
    const matches = this.log.maybeTerm(metadata.index) === metadata.term;
    if (matches) {
      this.log.compactTo(metadata.index, metadata.term);
    } else {
      this.log.reset(metadata.index, metadata.term);
    }
    this.snapshotValue = { metadata, data: EMPTY_BYTES };
    sink.addSnapshot({ metadata, action: matches ? 'compact' : 'reset' });
  }
}
