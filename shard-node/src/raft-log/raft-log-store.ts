/**
 * The durable Raft log of one replica: segmented append-only files on disk, with the live part of
 * the log kept in memory to answer the core's synchronous `Storage` reads (as etcd keeps a
 * MemoryStorage in front of its WAL).
 *
 * Every write method changes the in-memory state at once (synchronously, when called) and queues
 * its records; the returned promise settles when the records are written and, if asked, fsynced.
 * The queue keeps the file in call order, so a host may call `compact` from a snapshot task while
 * its loop calls `save`.
 */
import { replaceFileDurably } from '@impulse/common';
import path from 'node:path';

import {
  EMPTY_HARD_STATE,
  RaftError,
  type ConfState,
  type Entry,
  type HardState,
  type InitialState,
  type Snapshot,
  type SnapshotMetadata,
} from '../raft/index.js';
import { RaftLogError } from './errors.js';
import { LiveLog } from './live-log.js';
import { ReplicaLogState } from './log-state.js';
import { resolveRaftLogOptions, type RaftLogOptions, type ResolvedRaftLogOptions } from './options.js';
import { RecordBatch } from './record-batch.js';
import { recover } from './recovery.js';
import type { RaftLogUpdate, ReplicaLog, WriteOptions } from './replica-log.js';
import {
  encodeNewestSegment,
  NEWEST_SEGMENT_FILE,
  readNewestSegment,
  segmentFileName,
  SegmentWriter,
  syncDirectory,
  type SegmentInfo,
} from './segment.js';
import type { Checkpoint } from './state-codec.js';

export type { RaftLogUpdate, WriteOptions } from './replica-log.js';

const SYNC: WriteOptions = { sync: true };

/** One queued write. */
interface WriteJob {
  readonly records: Buffer;
  readonly maxEntryIndex: number;
  /** The metadata state before this write, written as the checkpoint if the write starts a segment. */
  readonly before: Checkpoint;
  readonly sync: boolean;
  /** Set by `compact`: delete the segments whose entries are all at or below this index. */
  readonly compactIndex?: number;
}

export class RaftLogStore implements ReplicaLog {
  private readonly options: ResolvedRaftLogOptions;
  private readonly state: ReplicaLogState;
  private readonly segments: SegmentInfo[];
  private tail: SegmentWriter;
  /** Whether the tail holds anything after its checkpoint; an empty tail is never rotated. */
  private tailHasRecords: boolean;
  private queue: Promise<void> = Promise.resolve();
  /** The first failed write or broken assertion; every later write is refused with it as cause. */
  private failure: unknown;
  private closed = false;
  /** Whether `open` found no log and created an empty one (see `created`). */
  private createdByOpen = false;

  private constructor(
    options: ResolvedRaftLogOptions,
    state: { snapshot: SnapshotMetadata; hardState: HardState; log: LiveLog; segments: SegmentInfo[] },
    tail: SegmentWriter,
    tailHasRecords: boolean,
  ) {
    this.options = options;
    this.state = new ReplicaLogState(state);
    this.segments = state.segments;
    this.tail = tail;
    this.tailHasRecords = tailHasRecords;
  }

  /**
   * Opens the log in `options.directory`, replaying it (see `recovery.ts`), or creates a fresh
   * one. Rejects with `RAFT_LOG_CORRUPT` when the log is damaged other than at its tail.
   */
  static async open(input: RaftLogOptions): Promise<RaftLogStore> {
    const options = resolveRaftLogOptions(input);
    const { directory } = options;
    const created = await options.fs.mkdir(directory, { recursive: true });
    if (created !== undefined) {
      await syncDirectory(path.dirname(created), options.fs);
    }
    const recovered = await recover(directory, options.recordBytesMax, options.logger, options.fs);
    if (recovered !== undefined && recovered.segments.length > 0) {
      const last = recovered.segments[recovered.segments.length - 1]!;
      const tail = await SegmentWriter.reopen(last, options.fs);
      const store = new RaftLogStore(options, recovered, tail, true);
      // A log written before NEWEST existed gets it now (every later rotation keeps it current).
      if ((await readNewestSegment(directory, options.fs)) === undefined)
        await store.recordNewestSegment(last.sequence);
      if (recovered.commitRaised) {
        // The disk must agree with memory: a later checkpoint repeats the raised hard state, and
        // replay checks that checkpoints match the records before them.
        await store.setHardState(recovered.hardState);
      }
      store.options.logger.info('raft-log: opened', store.describe());
      store.reportSegments();
      return store;
    }
    const state = recovered ?? {
      snapshot: { index: 0, term: 0, confState: options.confState },
      hardState: EMPTY_HARD_STATE,
      log: new LiveLog(0, 0),
      segments: [],
    };
    const info: SegmentInfo = {
      sequence: 1,
      firstIndex: state.log.lastIndex() + 1,
      file: path.join(directory, segmentFileName(1, state.log.lastIndex() + 1)),
      sizeBytes: 0,
      maxEntryIndex: 0,
    };
    const tail = await SegmentWriter.create(info, options.fs);
    const store = new RaftLogStore(options, { ...state, segments: [info] }, tail, false);
    store.createdByOpen = true;
    await store.writeCheckpoint(store.state.checkpoint());
    await store.datasyncTail();
    await store.syncDirectory();
    await store.recordNewestSegment(info.sequence);
    store.options.logger.info('raft-log: created', store.describe());
    store.reportSegments();
    return store;
  }

  /**
   * Whether `open` found no log in its directory (no segment, or only one whose first checkpoint
   * was torn) and created an empty one. The replica tells a brand-new data directory from one
   * whose log was lost by it: a state machine with applied entries over a log created just now
   * means the log, with the replica's votes and the entries it acknowledged, is gone.
   */
  get created(): boolean {
    return this.createdByOpen;
  }

  // ---------------------------------------------------------------------------------------------
  // Storage: synchronous reads of the live log.

  initialState(): InitialState {
    return this.state.initialState();
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    return this.state.entries(lo, hi, maxBytes);
  }

  term(index: number): number {
    return this.state.term(index);
  }

  firstIndex(): number {
    return this.state.firstIndex();
  }

  lastIndex(): number {
    return this.state.lastIndex();
  }

  /**
   * The latest snapshot's metadata. Its `data` is empty: the snapshot's content lives in the state
   * machine, and the host streams it from there when it sends a MsgSnap.
   */
  snapshot(): Snapshot {
    return this.state.snapshot();
  }

  hardState(): HardState {
    return this.state.hardState();
  }

  // ---------------------------------------------------------------------------------------------
  // Writes.

  /**
   * Persists one Ready: the snapshot metadata, the entries and the hard state, written in that
   * order as one write, followed by one fdatasync when `sync` is set (group commit).
   */
  async save(update: RaftLogUpdate, options: WriteOptions): Promise<void> {
    this.checkWritable();
    const before = this.state.checkpoint();
    const batch = new RecordBatch(this.options.recordBytesMax);
    this.guard(() => this.state.stageSave(update, batch));
    await this.enqueue({
      records: batch.encode(),
      maxEntryIndex: batch.maxEntryIndex,
      before,
      sync: options.sync,
    });
  }

  /**
   * Appends entries, which must be contiguous and start at most one past the last index; entries
   * from an index already present replace the log from there (a conflicting suffix).
   */
  append(entries: readonly Entry[], options: WriteOptions = SYNC): Promise<void> {
    return this.save({ entries }, options);
  }

  setHardState(hardState: HardState, options: WriteOptions = SYNC): Promise<void> {
    return this.save({ hardState }, options);
  }

  /**
   * Installs the metadata of a snapshot received from the leader. When the log holds the
   * snapshot's last entry (same index and term) only the entries up to it go; otherwise the whole
   * log goes. Rejects with `SnapshotOutOfDateError` when it is not newer than the current one.
   */
  applySnapshotMetadata(metadata: SnapshotMetadata, options: WriteOptions = SYNC): Promise<void> {
    return this.save({ snapshot: metadata }, options);
  }

  /**
   * Records that the state machine took a snapshot at `index` (which must be in the log), with
   * the configuration as of `index` (default: the current snapshot's). Follow with `compact`.
   */
  async createSnapshot(index: number, confState?: ConfState): Promise<SnapshotMetadata> {
    this.checkWritable();
    const before = this.state.checkpoint();
    const batch = new RecordBatch(this.options.recordBytesMax);
    const metadata = this.guard(() => this.state.stageCreateSnapshot(index, confState, batch));
    await this.enqueue({ records: batch.encode(), maxEntryIndex: 0, before, sync: true });
    return metadata;
  }

  /**
   * Drops the entries up to and including `index` from memory, and deletes the segments that hold
   * only such entries. `index` must be covered by the snapshot, so that a follower that needs the
   * dropped entries can be sent the snapshot instead. Rejects with `CompactedError` when `index`
   * is already compacted.
   */
  async compact(index: number): Promise<void> {
    this.checkWritable();
    const before = this.state.checkpoint();
    const batch = new RecordBatch(this.options.recordBytesMax);
    this.guard(() => this.state.stageCompaction(index, batch));
    // The compaction record must be durable before any segment goes: replay from the segments
    // that remain needs it to know where the log starts.
    await this.enqueue({
      records: batch.encode(),
      maxEntryIndex: 0,
      before,
      sync: true,
      compactIndex: index,
    });
  }

  /** Waits for queued writes, fsyncs anything unsynced and closes the tail. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) {
      return;
    }
    this.closed = true;
    await this.queue;
    try {
      if (this.failure === undefined && this.tail.unsynced) {
        await this.datasyncTail();
      }
    } finally {
      await this.tail.close();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Observability.

  /** The bytes of all segment files. */
  logBytes(): number {
    let total = 0;
    for (const segment of this.segments) {
      total += segment.sizeBytes;
    }
    return total;
  }

  segmentCount(): number {
    return this.segments.length;
  }

  /** The bytes the in-memory entries count for (only those after the last compaction). */
  memoryBytes(): number {
    return this.state.memoryBytes();
  }

  // ---------------------------------------------------------------------------------------------
  // Internals.

  private describe(): Record<string, number | string> {
    return {
      directory: this.options.directory,
      firstIndex: this.state.firstIndex(),
      lastIndex: this.state.lastIndex(),
      snapshotIndex: this.state.snapshot().metadata.index,
      term: this.state.hardState().term,
      commit: this.state.hardState().commit,
      segments: this.segments.length,
      logBytes: this.logBytes(),
    };
  }

  private checkWritable(): void {
    if (this.closed) {
      throw new RaftLogError('RAFT_LOG_CLOSED');
    }
    if (this.failure !== undefined) {
      throw new RaftLogError('RAFT_LOG_FAILED', undefined, { cause: this.failure });
    }
  }

  /**
   * Runs the synchronous part of a write. A broken assertion may leave memory half changed, so it
   * also refuses every later write; an operating error (a RaftError) is thrown before any change.
   */
  private guard<T>(stage: () => T): T {
    try {
      return stage();
    } catch (error) {
      if (!(error instanceof RaftError)) {
        this.failure = error;
      }
      throw error;
    }
  }

  private enqueue(job: WriteJob): Promise<void> {
    const run = this.queue.then(() => this.runJob(job));
    // The chain itself never rejects; each caller sees its own write's outcome.
    this.queue = run.catch(() => {});
    return run;
  }

  private async runJob(job: WriteJob): Promise<void> {
    if (this.failure !== undefined) {
      throw new RaftLogError('RAFT_LOG_FAILED', undefined, { cause: this.failure });
    }
    try {
      if (job.records.length > 0) {
        if (
          this.tailHasRecords &&
          this.tail.info.sizeBytes + job.records.length > this.options.segmentBytesMax
        ) {
          await this.rotate(job.before);
        }
        await this.writeTail(job.records);
        this.tailHasRecords = true;
        this.tail.info.maxEntryIndex = Math.max(this.tail.info.maxEntryIndex, job.maxEntryIndex);
      }
      if (job.sync && this.tail.unsynced) {
        await this.datasyncTail();
      }
      if (job.compactIndex !== undefined) {
        await this.deleteSegmentsUpTo(job.compactIndex);
      }
      this.reportSegments();
    } catch (error) {
      this.failure = error;
      throw error;
    }
  }

  /** Starts a new segment, which begins with a checkpoint of the state before the pending write. */
  private async rotate(checkpoint: Checkpoint): Promise<void> {
    // The old segment is complete before a newer one exists: recovery treats damage in any
    // segment but the last as corruption, never as a torn tail.
    if (this.tail.unsynced) {
      await this.datasyncTail();
    }
    await this.tail.close();
    const sequence = this.tail.info.sequence + 1;
    const info: SegmentInfo = {
      sequence,
      firstIndex: checkpoint.lastIndex + 1,
      file: path.join(this.options.directory, segmentFileName(sequence, checkpoint.lastIndex + 1)),
      sizeBytes: 0,
      maxEntryIndex: 0,
    };
    this.tail = await SegmentWriter.create(info, this.options.fs);
    this.segments.push(info);
    this.tailHasRecords = false;
    await this.syncDirectory();
    await this.writeCheckpoint(checkpoint);
    // Durable before NEWEST names it (see `recordNewestSegment`).
    await this.datasyncTail();
    await this.recordNewestSegment(sequence);
    this.options.logger.info('raft-log: started a segment', { file: info.file, firstIndex: info.firstIndex });
  }

  /**
   * Names `sequence` in NEWEST, atomically and durably, once that segment and its checkpoint are on
   * disk. Recovery then refuses a log whose newest segments went missing, instead of opening it
   * shorter, with its hard state and the entries it acknowledged gone.
   */
  private async recordNewestSegment(sequence: number): Promise<void> {
    const startSeconds = this.options.clockSeconds();
    await replaceFileDurably(
      path.join(this.options.directory, NEWEST_SEGMENT_FILE),
      encodeNewestSegment(sequence),
      undefined,
      this.options.fs,
    );
    this.options.observer.onFsync(this.options.clockSeconds() - startSeconds, 'directory');
  }

  private async writeCheckpoint(checkpoint: Checkpoint): Promise<void> {
    const batch = new RecordBatch(this.options.recordBytesMax);
    batch.addCheckpoint(checkpoint);
    await this.writeTail(batch.encode());
  }

  /** Deletes, oldest first, the segments before the tail whose entries are all <= `index`. */
  private async deleteSegmentsUpTo(index: number): Promise<void> {
    let deleted = 0;
    while (this.segments.length > 1 && this.segments[0]!.maxEntryIndex <= index) {
      const segment = this.segments[0]!;
      await this.options.fs.unlink(segment.file);
      // One directory fsync per deletion: without it a crash could keep an older segment while
      // forgetting a newer one's deletion, and the gap in sequence numbers would read as a lost
      // segment. Deleting oldest first leaves a suffix of the segments, which replays.
      await this.syncDirectory();
      this.segments.shift();
      deleted++;
    }
    if (deleted > 0) {
      this.options.logger.debug('raft-log: deleted compacted segments', { deleted, compactIndex: index });
    }
  }

  private async writeTail(records: Buffer): Promise<void> {
    const startSeconds = this.options.clockSeconds();
    await this.tail.write(records);
    this.options.observer.onAppend(records.length, this.options.clockSeconds() - startSeconds);
  }

  private async datasyncTail(): Promise<void> {
    const startSeconds = this.options.clockSeconds();
    await this.tail.datasync();
    this.options.observer.onFsync(this.options.clockSeconds() - startSeconds, 'segment');
  }

  private async syncDirectory(): Promise<void> {
    const startSeconds = this.options.clockSeconds();
    await syncDirectory(this.options.directory, this.options.fs);
    this.options.observer.onFsync(this.options.clockSeconds() - startSeconds, 'directory');
  }

  private reportSegments(): void {
    this.options.observer.onSegmentsChanged(this.logBytes(), this.segments.length);
  }
}
