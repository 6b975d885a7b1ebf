/**
 * What a replica's host needs of its durable Raft log, whichever log keeps it: a log of its own
 * (`RaftLogStore`, one directory per replica) or its group's share of the node log (`GroupLog`,
 * one directory for every group of the node, see `node-log.ts`).
 */
import type { ConfState, Entry, HardState, SnapshotMetadata, Storage } from '../raft/index.js';

/** What one Ready asks to persist, in the order it is written: snapshot, entries, hard state. */
export interface RaftLogUpdate {
  readonly hardState?: HardState;
  readonly entries?: readonly Entry[];
  /** The metadata of a snapshot installed from the leader (its data lives in the state machine). */
  readonly snapshot?: SnapshotMetadata;
}

export interface WriteOptions {
  /** Whether to fdatasync before the promise settles (a Ready's `mustSync`). */
  readonly sync: boolean;
}

/**
 * The durable log of one replica. Every write method changes the in-memory state at once (when
 * called) and settles when its records are written and, if asked, fsynced; writes reach the disk in
 * call order. Reads (the core's `Storage`) never touch the disk.
 */
export interface ReplicaLog extends Storage {
  /**
   * Whether opening found no log for this replica and created an empty one. The replica tells a
   * brand-new data directory from one whose log was lost by it.
   */
  readonly created: boolean;
  hardState(): HardState;
  /**
   * Persists one Ready: the snapshot metadata, the entries and the hard state, written in that
   * order as one write, followed by one fdatasync when `sync` is set.
   */
  save(update: RaftLogUpdate, options: WriteOptions): Promise<void>;
  /**
   * Appends entries, which must be contiguous and start at most one past the last index; entries
   * from an index already present replace the log from there (a conflicting suffix).
   */
  append(entries: readonly Entry[], options?: WriteOptions): Promise<void>;
  setHardState(hardState: HardState, options?: WriteOptions): Promise<void>;
  /**
   * Installs the metadata of a snapshot received from the leader. When the log holds the
   * snapshot's last entry (same index and term) only the entries up to it go; otherwise the whole
   * log goes. Rejects with `SnapshotOutOfDateError` when it is not newer than the current one.
   */
  applySnapshotMetadata(metadata: SnapshotMetadata, options?: WriteOptions): Promise<void>;
  /**
   * Records that the state machine took a snapshot at `index` (which must be in the log), with
   * the configuration as of `index` (default: the current snapshot's). Follow with `compact`.
   */
  createSnapshot(index: number, confState?: ConfState): Promise<SnapshotMetadata>;
  /**
   * Drops the entries up to and including `index`, which must be covered by the snapshot, and
   * lets the files that held only such entries go. Rejects with `CompactedError` when `index` is
   * already compacted.
   */
  compact(index: number): Promise<void>;
  /** The bytes on disk this replica's log accounts for. */
  logBytes(): number;
  /** Waits for queued writes and fsyncs anything unsynced. Idempotent. */
  close(): Promise<void>;
}
