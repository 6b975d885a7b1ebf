/**
 * One group's share of the node log (`node-log.ts`): the same `ReplicaLog` a `RaftLogStore` is, so
 * that a replica's host takes either. Its state lives in memory as a replica log's does; its
 * records go to the node log, tagged with the group's id, and are flushed with those of every
 * other group written in the same event-loop round.
 */
import {
  RaftError,
  type ConfState,
  type Entry,
  type HardState,
  type InitialState,
  type Snapshot,
  type SnapshotMetadata,
} from '../raft/index.js';
import { RaftLogError } from './errors.js';
import type { GroupFootprint } from './group-footprint.js';
import type { ReplicaLogState } from './log-state.js';
import type { RaftLogObserver } from './options.js';
import { RecordBatch, type RecordTag } from './record-batch.js';
import type { RaftLogUpdate, ReplicaLog, WriteOptions } from './replica-log.js';

const SYNC: WriteOptions = { sync: true };

/** A group the node log holds: its state in memory and on disk. Owned by the node log. */
export interface GroupMember {
  readonly groupId: string;
  readonly tag: RecordTag;
  readonly state: ReplicaLogState;
  readonly footprint: GroupFootprint;
  /** The hooks of the handle open on the group (no-ops while none is). */
  observer: RaftLogObserver;
  /** A broken assertion while staging a write: the state may be half changed, so no write follows. */
  failure: unknown;
  /** Whether the group's latest queued write was not synced (closing its handle syncs it). */
  unsynced: boolean;
  /** Settles when the group's latest queued write does (never rejects). */
  lastWrite: Promise<void>;
  /** The open handle, if any: at most one, as a replica log has at most one writer. */
  handle: GroupLog | undefined;
}

/** What a write asks of the node log besides its records. */
export interface GroupWriteEffect {
  readonly sync: boolean;
  /** Whether the write may let segments go (a compaction, an installed snapshot). */
  readonly mayUnpin: boolean;
}

/** What a group log needs of the node log that holds it. */
export interface GroupLogHost {
  readonly recordBytesMax: number;
  /** Throws `RAFT_LOG_CLOSED` or `RAFT_LOG_FAILED` when the node log takes no more writes. */
  checkWritable(): void;
  /** Queues the group's staged records; settles when they are written (and fsynced if asked). */
  write(member: GroupMember, records: RecordBatch, effect: GroupWriteEffect): Promise<void>;
}

export class GroupLog implements ReplicaLog {
  private closed = false;
  /** Set by `NodeLog.removeGroup`: the group is gone, and so is every write through this handle. */
  private removed = false;

  constructor(
    private readonly host: GroupLogHost,
    private readonly member: GroupMember,
    /** Whether `NodeLog.group` found no such group and created it (see `ReplicaLog.created`). */
    readonly created: boolean,
  ) {}

  get groupId(): string {
    return this.member.groupId;
  }

  // ---------------------------------------------------------------------------------------------
  // Storage: synchronous reads of the live log.

  initialState(): InitialState {
    return this.member.state.initialState();
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    return this.member.state.entries(lo, hi, maxBytes);
  }

  term(index: number): number {
    return this.member.state.term(index);
  }

  firstIndex(): number {
    return this.member.state.firstIndex();
  }

  lastIndex(): number {
    return this.member.state.lastIndex();
  }

  /** The latest snapshot's metadata; its `data` is empty (the content lives in the state machine). */
  snapshot(): Snapshot {
    return this.member.state.snapshot();
  }

  hardState(): HardState {
    return this.member.state.hardState();
  }

  // ---------------------------------------------------------------------------------------------
  // Writes (see `ReplicaLog` for what each does).

  async save(update: RaftLogUpdate, options: WriteOptions): Promise<void> {
    this.checkWritable();
    const batch = this.newBatch();
    this.guard(() => this.member.state.stageSave(update, batch));
    await this.host.write(this.member, batch, {
      sync: options.sync,
      mayUnpin: update.snapshot !== undefined,
    });
  }

  append(entries: readonly Entry[], options: WriteOptions = SYNC): Promise<void> {
    return this.save({ entries }, options);
  }

  setHardState(hardState: HardState, options: WriteOptions = SYNC): Promise<void> {
    return this.save({ hardState }, options);
  }

  applySnapshotMetadata(metadata: SnapshotMetadata, options: WriteOptions = SYNC): Promise<void> {
    return this.save({ snapshot: metadata }, options);
  }

  async createSnapshot(index: number, confState?: ConfState): Promise<SnapshotMetadata> {
    this.checkWritable();
    const batch = this.newBatch();
    const metadata = this.guard(() => this.member.state.stageCreateSnapshot(index, confState, batch));
    await this.host.write(this.member, batch, { sync: true, mayUnpin: false });
    return metadata;
  }

  /**
   * Drops the entries up to and including `index` and writes a compaction record for this group
   * only. The segments that held the entries go once no other group needs them either (see
   * `NodeLog.pinningGroups`); no other group's entries are rewritten.
   */
  async compact(index: number): Promise<void> {
    this.checkWritable();
    const batch = this.newBatch();
    this.guard(() => this.member.state.stageCompaction(index, batch));
    // Synced, so that segments may go once it is written: replay needs it to know where the
    // group's log starts.
    await this.host.write(this.member, batch, { sync: true, mayUnpin: true });
  }

  /**
   * Waits for the group's queued writes and fsyncs them if the last one was not; the node log
   * stays open, and `NodeLog.group` may open the group again. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) {
      return;
    }
    this.closed = true;
    const member = this.member;
    try {
      if (!this.removed && member.unsynced && member.failure === undefined) {
        this.host.checkWritable();
        await this.host.write(member, this.newBatch(), { sync: true, mayUnpin: false });
      }
      await member.lastWrite;
    } catch (error) {
      // A closed or failed node log already settled (or failed) every write; nothing is left to sync.
      if (!(error instanceof RaftLogError)) throw error;
    } finally {
      if (member.handle === this) member.handle = undefined;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Observability.

  /** The bytes of this group's records in the node's segments (the checkpoints aside). */
  logBytes(): number {
    return this.member.footprint.bytes;
  }

  /** The bytes the in-memory entries count for (only those after the last compaction). */
  memoryBytes(): number {
    return this.member.state.memoryBytes();
  }

  // ---------------------------------------------------------------------------------------------
  // Internals.

  /** Called by the node log when it removes the group: this handle takes no more writes. */
  markRemoved(): void {
    this.removed = true;
  }

  private newBatch(): RecordBatch {
    return new RecordBatch(this.host.recordBytesMax, this.member.tag);
  }

  private checkWritable(): void {
    if (this.closed || this.removed) {
      throw new RaftLogError('RAFT_LOG_CLOSED');
    }
    if (this.member.failure !== undefined) {
      throw new RaftLogError('RAFT_LOG_FAILED', undefined, { cause: this.member.failure });
    }
    this.host.checkWritable();
  }

  /**
   * Runs the synchronous part of a write. A broken assertion may leave the group's memory half
   * changed, so it refuses every later write of the group (the other groups go on); an operating
   * error (a RaftError) is thrown before any change.
   */
  private guard<T>(stage: () => T): T {
    try {
      return stage();
    } catch (error) {
      if (!(error instanceof RaftError)) {
        this.member.failure = error;
      }
      throw error;
    }
  }
}
