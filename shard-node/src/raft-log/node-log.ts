/**
 * The node log: one directory of segment files for every Raft group a node hosts, so that the log
 * writes of all the replicas that became ready in one event-loop round reach the disk with one
 * write and one fdatasync (as TiKV's raft-engine and dragonboat's shared log do). Each group's
 * share is a `GroupLog`, which answers reads from memory as a `RaftLogStore` does.
 *
 * - Records: a replica log's records, each tagged with its group's id, plus a checkpoint that
 *   starts every segment with every group's state, and records that create and remove a group
 *   (`node-record-codec.ts`).
 * - Group commit: writes queue in a `GroupCommitQueue`; each flush encodes the batch into one
 *   buffer, writes it and fdatasyncs once if any write of it asked to sync.
 * - Compaction: a group's compaction writes one record for that group. A segment goes, oldest
 *   first, once no group pins it: no group has an entry above its compacted index in it
 *   (`GroupFootprint`); every other record in it is repeated by the checkpoints of later segments.
 *   A group that lags pins the segments holding its entries without forcing any rewrite;
 *   `pinningGroups` names it, so that the host can ask it to snapshot and compact.
 * - Recovery: `node-recovery.ts`.
 */
import path from 'node:path';

import { replaceFileDurably } from '@impulse/common';

import { EMPTY_CONF_STATE, EMPTY_HARD_STATE, type HardState, type SnapshotMetadata } from '../raft/index.js';
import { assert, RaftLogError } from './errors.js';
import { GroupCommitQueue } from './group-commit.js';
import { GroupFootprint } from './group-footprint.js';
import { assertGroupId, groupRecordTag } from './group-id.js';
import { GroupLog, type GroupLogHost, type GroupMember, type GroupWriteEffect } from './group-log.js';
import { LiveLog } from './live-log.js';
import { ReplicaLogState } from './log-state.js';
import {
  resolveGroupObserver,
  resolveNodeLogOptions,
  type GroupLogOptions,
  type NodeLogOptions,
  type ResolvedNodeLogOptions,
} from './node-log-options.js';
import {
  addGroupCreated,
  addGroupRemoved,
  addNodeCheckpoint,
  GROUP_RECORD_TYPE_SHIFT,
  type GroupCheckpoint,
} from './node-record-codec.js';
import { recoverNodeLog, type RecoveredGroup } from './node-recovery.js';
import { addGroupBytes, newNodeSegment, type NodeSegmentInfo } from './node-segment.js';
import { RecordBatch } from './record-batch.js';
import {
  encodeNewestSegment,
  NEWEST_SEGMENT_FILE,
  readNewestSegment,
  SegmentWriter,
  syncDirectory,
} from './segment.js';
import type { Checkpoint } from './state-codec.js';

/** One queued write: a group's records (or its creation or removal) and what they change on disk. */
interface NodeWrite {
  readonly kind: 'group' | 'create' | 'remove';
  readonly member: GroupMember;
  readonly records: RecordBatch;
  readonly bytes: number;
  /** The group's state after this write, which a later segment's checkpoint repeats. */
  readonly after: Checkpoint;
  readonly sync: boolean;
  readonly mayUnpin: boolean;
}

/** A group that holds entries above its compacted index in old segments, and so keeps them. */
export interface PinningGroup {
  readonly groupId: string;
  /** The group's first live index, as written. */
  readonly firstIndex: number;
  /** The index the group must compact through to release the segments asked about. */
  readonly compactThroughIndex: number;
}

export class NodeLog implements GroupLogHost {
  private readonly options: ResolvedNodeLogOptions;
  private readonly queue: GroupCommitQueue<NodeWrite>;
  /** The groups as the callers see them (a removal or creation counts at once). */
  private readonly members = new Map<string, GroupMember>();
  /** The groups as the records written so far leave them: what a new segment's checkpoint lists. */
  private readonly writtenGroups = new Map<string, GroupFootprint>();
  private readonly segments: NodeSegmentInfo[];
  private tail: SegmentWriter<NodeSegmentInfo>;
  /** Whether the tail holds anything after its checkpoint; an empty tail is never rotated. */
  private tailHasRecords: boolean;
  /** Whether segments may have become free since the last look (a compaction, a removal, a rotation). */
  private mayDeleteSegments = false;
  /** The first failed write or fsync; every later write is refused with it as cause. */
  private failure: unknown;
  private closed = false;

  private constructor(
    options: ResolvedNodeLogOptions,
    segments: NodeSegmentInfo[],
    tail: SegmentWriter<NodeSegmentInfo>,
    tailHasRecords: boolean,
  ) {
    this.options = options;
    this.segments = segments;
    this.tail = tail;
    this.tailHasRecords = tailHasRecords;
    this.queue = new GroupCommitQueue<NodeWrite>({
      pendingBytesMax: options.pendingBytesMax,
      schedule: options.schedule,
      flush: (writes) => this.flush(writes),
      onBackpressure: (pendingBytes) => this.options.observer.onBackpressure(pendingBytes),
    });
  }

  /**
   * Opens the node log in `options.directory`, replaying it (see `node-recovery.ts`), or creates a
   * fresh one. Rejects with `RAFT_LOG_CORRUPT` when the log is damaged other than at its tail.
   */
  static async open(input: NodeLogOptions): Promise<NodeLog> {
    const options = resolveNodeLogOptions(input);
    const { directory } = options;
    const created = await options.fs.mkdir(directory, { recursive: true });
    if (created !== undefined) {
      await syncDirectory(path.dirname(created), options.fs);
    }
    const recovered = await recoverNodeLog(directory, options.recordBytesMax, options.logger, options.fs);
    if (recovered !== undefined) {
      const last = recovered.segments[recovered.segments.length - 1]!;
      const log = new NodeLog(
        options,
        recovered.segments,
        await SegmentWriter.reopen(last, options.fs),
        true,
      );
      for (const [groupId, group] of recovered.groups) {
        log.members.set(groupId, log.newMember(groupId, group, group.footprint));
        log.writtenGroups.set(groupId, group.footprint);
      }
      if ((await readNewestSegment(directory, options.fs)) === undefined)
        await log.recordNewestSegment(last.sequence);
      await log.writeRaisedCommits(recovered.groups);
      options.logger.info('raft-log: opened the node log', log.describe());
      log.reportSegments();
      return log;
    }
    const log = new NodeLog(
      options,
      [],
      await SegmentWriter.create(newNodeSegment(directory, 1), options.fs),
      false,
    );
    log.segments.push(log.tail.info);
    await log.writeCheckpoint();
    await log.datasyncTail();
    await log.syncDirectory();
    await log.recordNewestSegment(1);
    options.logger.info('raft-log: created the node log', log.describe());
    log.reportSegments();
    return log;
  }

  get recordBytesMax(): number {
    return this.options.recordBytesMax;
  }

  /** The ids of the groups the log holds, open or not (e.g. to remove those the node no longer hosts). */
  groupIds(): string[] {
    return [...this.members.keys()];
  }

  /**
   * The log of group `groupId`, created (durably, with `options.confState` as its bootstrap
   * configuration) when the node log holds no such group. At most one handle per group is open at
   * a time; closing it leaves the node log open.
   */
  async group(groupId: string, options: GroupLogOptions = {}): Promise<GroupLog> {
    assertGroupId(groupId);
    this.checkWritable();
    const existing = this.members.get(groupId);
    if (existing !== undefined) {
      assert(existing.handle === undefined, `group ${groupId} is already open`);
      if (existing.failure !== undefined) {
        throw new RaftLogError('RAFT_LOG_FAILED', undefined, { cause: existing.failure });
      }
      existing.observer = resolveGroupObserver(options.observer);
      existing.handle = new GroupLog(this, existing, false);
      return existing.handle;
    }
    assert(
      this.members.size < this.options.groupsMax,
      `the node log holds ${this.members.size} groups, its groupsMax`,
    );
    const checkpoint: Checkpoint = {
      snapshot: { index: 0, term: 0, confState: options.confState ?? EMPTY_CONF_STATE },
      hardState: EMPTY_HARD_STATE,
      baseIndex: 0,
      baseTerm: 0,
      lastIndex: 0,
    };
    const member = this.newMember(
      groupId,
      { snapshot: checkpoint.snapshot, hardState: checkpoint.hardState, log: new LiveLog(0, 0) },
      new GroupFootprint(groupId, checkpoint),
    );
    member.observer = resolveGroupObserver(options.observer);
    const handle = new GroupLog(this, member, true);
    member.handle = handle;
    this.members.set(groupId, member);
    const records = new RecordBatch(this.options.recordBytesMax);
    addGroupCreated(records, { groupId, checkpoint });
    await this.enqueue({ kind: 'create', member, records, after: checkpoint, sync: true, mayUnpin: false });
    this.options.logger.info('raft-log: created a group in the node log', { groupId });
    return handle;
  }

  /**
   * Removes a group for good: its open handle takes no more writes, a durable record says it is
   * gone (so a reopen does not bring it back), and its records no longer keep any segment. Its
   * writes queued before are written first. Removing a group the log does not hold does nothing.
   */
  async removeGroup(groupId: string): Promise<void> {
    assertGroupId(groupId);
    this.checkWritable();
    const member = this.members.get(groupId);
    if (member === undefined) {
      return;
    }
    this.members.delete(groupId);
    member.handle?.markRemoved();
    member.handle = undefined;
    const records = new RecordBatch(this.options.recordBytesMax);
    addGroupRemoved(records, groupId);
    await this.enqueue({
      kind: 'remove',
      member,
      records,
      after: member.state.checkpoint(),
      sync: true,
      mayUnpin: true,
    });
    this.options.logger.info('raft-log: removed a group from the node log', { groupId });
  }

  /**
   * The groups that keep any of the oldest `segmentCount` segments (default 1: the oldest alone):
   * each holds entries above its compacted index in one of them. With each, the index it must
   * compact through to release all of them. The tail is never counted (it is never released);
   * empty when only the tail is left. This is the hook of the host's compaction policy
   * (`node/log-purge.ts`): when the node log grows, it asks these groups to snapshot and compact,
   * rather than the node log rewriting their entries forward.
   */
  pinningGroups(segmentCount = 1): PinningGroup[] {
    assert(Number.isSafeInteger(segmentCount) && segmentCount >= 1, `segmentCount ${segmentCount}`);
    const released = Math.min(segmentCount, this.segments.length - 1);
    if (released <= 0) return [];
    // The first segment that would stay.
    const kept = this.segments[released]!.sequence;
    const pinning: PinningGroup[] = [];
    for (const footprint of this.writtenGroups.values()) {
      const compactThroughIndex = footprint.pinIndexBefore(kept);
      if (compactThroughIndex !== undefined) {
        pinning.push({ groupId: footprint.groupId, firstIndex: footprint.firstIndex(), compactThroughIndex });
      }
    }
    return pinning;
  }

  /** The bytes of all segment files. */
  logBytes(): number {
    let total = 0;
    for (const segment of this.segments) total += segment.sizeBytes;
    return total;
  }

  segmentCount(): number {
    return this.segments.length;
  }

  /**
   * Waits for queued writes, fsyncs anything unsynced and closes the tail. Open group handles take
   * no more writes. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) {
      return;
    }
    this.closed = true;
    await this.queue.idle();
    try {
      if (this.failure === undefined && this.tail.unsynced) {
        await this.datasyncTail();
      }
    } finally {
      await this.tail.close();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // GroupLogHost: what the group handles call (the host uses their methods, not these).

  checkWritable(): void {
    if (this.closed) {
      throw new RaftLogError('RAFT_LOG_CLOSED');
    }
    if (this.failure !== undefined) {
      throw new RaftLogError('RAFT_LOG_FAILED', undefined, { cause: this.failure });
    }
  }

  write(member: GroupMember, records: RecordBatch, effect: GroupWriteEffect): Promise<void> {
    return this.enqueue({
      kind: 'group',
      member,
      records,
      // Called right after the write was staged: this is the group's state once it is written.
      after: member.state.checkpoint(),
      sync: effect.sync,
      mayUnpin: effect.mayUnpin,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Internals.

  private newMember(
    groupId: string,
    state: { snapshot: SnapshotMetadata; hardState: HardState; log: LiveLog },
    footprint: GroupFootprint,
  ): GroupMember {
    return {
      groupId,
      tag: groupRecordTag(groupId, GROUP_RECORD_TYPE_SHIFT),
      state: new ReplicaLogState(state),
      footprint,
      observer: resolveGroupObserver(),
      failure: undefined,
      unsynced: false,
      lastWrite: Promise.resolve(),
      handle: undefined,
    };
  }

  private enqueue(write: Omit<NodeWrite, 'bytes'>): Promise<void> {
    const { member } = write;
    member.unsynced = !write.sync;
    const promise = this.queue.enqueue({ ...write, bytes: write.records.bytes });
    member.lastWrite = promise.catch(() => {});
    return promise;
  }

  /** The groups whose commit recovery raised to their compacted index: the disk must agree. */
  private async writeRaisedCommits(groups: Map<string, RecoveredGroup>): Promise<void> {
    const writes: Promise<void>[] = [];
    for (const [groupId, group] of groups) {
      if (!group.commitRaised) continue;
      const member = this.members.get(groupId)!;
      const records = new RecordBatch(this.options.recordBytesMax, member.tag);
      member.state.stageSave({ hardState: group.hardState }, records);
      writes.push(this.write(member, records, { sync: true, mayUnpin: false }));
    }
    await Promise.all(writes);
  }

  /** Writes one batch: one buffer, at most one fdatasync (plus those of a rotation). */
  private async flush(writes: readonly NodeWrite[]): Promise<void> {
    if (this.failure !== undefined) {
      throw new RaftLogError('RAFT_LOG_FAILED', undefined, { cause: this.failure });
    }
    try {
      let bytes = 0;
      let entries = 0;
      for (const write of writes) {
        bytes += write.bytes;
        entries += write.records.entryCount;
      }
      if (bytes > 0) {
        if (this.tailHasRecords && this.tail.info.sizeBytes + bytes > this.options.segmentBytesMax) {
          await this.rotate();
        }
        const buffer = Buffer.allocUnsafe(bytes);
        let offset = 0;
        for (const write of writes) offset = write.records.encodeInto(buffer, offset);
        const appendSeconds = await this.writeTail(buffer);
        this.tailHasRecords = true;
        for (const write of writes) this.noteWritten(write, appendSeconds);
      }
      let fsyncSeconds: number | undefined;
      if (this.tail.unsynced && writes.some((write) => write.sync)) {
        fsyncSeconds = await this.datasyncTail();
        const members = new Set<GroupMember>();
        for (const write of writes) if (write.sync) members.add(write.member);
        for (const member of members) member.observer.onFsync(fsyncSeconds, 'segment');
      }
      this.options.observer.onFlush({ writes: writes.length, entries, bytes, fsyncSeconds });
      if (writes.some((write) => write.mayUnpin)) this.mayDeleteSegments = true;
      // A segment goes only once what freed it is durable, or a crash could leave a log that
      // needs the deleted segment.
      if (this.mayDeleteSegments && !this.tail.unsynced) {
        this.mayDeleteSegments = false;
        await this.deleteFreeSegments();
      }
      this.reportSegments(writes);
    } catch (error) {
      this.failure ??= error;
      throw error;
    }
  }

  /** Updates the disk view of a write's group once its records are in the tail. */
  private noteWritten(write: NodeWrite, appendSeconds: number): void {
    const { member } = write;
    const footprint = member.footprint;
    if (write.kind === 'create') {
      this.writtenGroups.set(member.groupId, footprint);
    } else if (write.kind === 'remove') {
      assert(this.writtenGroups.get(member.groupId) === footprint, `group ${member.groupId} removed twice`);
      this.writtenGroups.delete(member.groupId);
    }
    addGroupBytes(this.tail.info, footprint, write.bytes);
    if (write.records.maxEntryIndex > 0) {
      footprint.wroteEntries(this.tail.info.sequence, write.records.maxEntryIndex);
    }
    footprint.wroteState(write.after);
    if (write.bytes > 0) member.observer.onAppend(write.bytes, appendSeconds);
  }

  /** Starts a new segment, which begins with a checkpoint of every group as written so far. */
  private async rotate(): Promise<void> {
    // The old segment is complete before a newer one exists: recovery treats damage in any
    // segment but the last as corruption, never as a torn tail.
    if (this.tail.unsynced) {
      await this.datasyncTail();
    }
    await this.tail.close();
    const info = newNodeSegment(this.options.directory, this.tail.info.sequence + 1);
    this.tail = await SegmentWriter.create(info, this.options.fs);
    this.segments.push(info);
    this.tailHasRecords = false;
    await this.syncDirectory();
    await this.writeCheckpoint();
    // Durable before NEWEST names it (see `recordNewestSegment`).
    await this.datasyncTail();
    await this.recordNewestSegment(info.sequence);
    // The segment before may hold nothing any group needs now that it is no longer the tail.
    this.mayDeleteSegments = true;
    this.options.logger.info('raft-log: started a node log segment', {
      file: info.file,
      groups: this.writtenGroups.size,
    });
  }

  private async writeCheckpoint(): Promise<void> {
    const groups: GroupCheckpoint[] = [];
    for (const [groupId, footprint] of this.writtenGroups) {
      groups.push({ groupId, checkpoint: footprint.written });
    }
    const records = new RecordBatch(this.options.recordBytesMax);
    addNodeCheckpoint(records, groups);
    await this.writeTail(records.encode());
  }

  /**
   * Deletes, oldest first, the segments before the tail that no group pins (see `GroupFootprint`).
   * Every other record in them is repeated by the checkpoint of the segment after them.
   */
  private async deleteFreeSegments(): Promise<void> {
    let pinnedSequence = Infinity;
    for (const footprint of this.writtenGroups.values()) {
      pinnedSequence = Math.min(pinnedSequence, footprint.oldestSequence() ?? Infinity);
    }
    let deleted = 0;
    while (this.segments.length > 1 && this.segments[0]!.sequence < pinnedSequence) {
      const segment = this.segments[0]!;
      await this.options.fs.unlink(segment.file);
      // One directory fsync per deletion: without it a crash could keep an older segment while
      // forgetting a newer one's deletion, and the gap in sequence numbers would read as a lost
      // segment. Deleting oldest first leaves a suffix of the segments, which replays.
      await this.syncDirectory();
      this.segments.shift();
      for (const [footprint, bytes] of segment.groupBytes) footprint.bytes -= bytes;
      deleted++;
    }
    if (deleted > 0) {
      this.options.logger.debug('raft-log: deleted node log segments no group needs', {
        deleted,
        segments: this.segments.length,
      });
      for (const member of this.members.values()) {
        member.observer.onSegmentsChanged(member.footprint.bytes, this.segments.length);
      }
    }
  }

  /**
   * Names `sequence` in NEWEST, atomically and durably, once that segment and its checkpoint are on
   * disk, so that recovery refuses a log whose newest segments went missing.
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

  /** Writes to the tail; returns the seconds it took. */
  private async writeTail(records: Buffer): Promise<number> {
    const startSeconds = this.options.clockSeconds();
    await this.tail.write(records);
    const seconds = this.options.clockSeconds() - startSeconds;
    this.options.observer.onAppend(records.length, seconds);
    return seconds;
  }

  /** fdatasyncs the tail; returns the seconds it took. */
  private async datasyncTail(): Promise<number> {
    const startSeconds = this.options.clockSeconds();
    await this.tail.datasync();
    const seconds = this.options.clockSeconds() - startSeconds;
    this.options.observer.onFsync(seconds, 'segment');
    return seconds;
  }

  private async syncDirectory(): Promise<void> {
    const startSeconds = this.options.clockSeconds();
    await syncDirectory(this.options.directory, this.options.fs);
    this.options.observer.onFsync(this.options.clockSeconds() - startSeconds, 'directory');
  }

  private reportSegments(writes: readonly NodeWrite[] = []): void {
    this.options.observer.onSegmentsChanged(this.logBytes(), this.segments.length);
    const members = new Set<GroupMember>();
    for (const write of writes) members.add(write.member);
    for (const member of members) {
      member.observer.onSegmentsChanged(member.footprint.bytes, this.segments.length);
    }
  }

  private describe(): Record<string, number | string> {
    return {
      directory: this.options.directory,
      groups: this.members.size,
      segments: this.segments.length,
      logBytes: this.logBytes(),
    };
  }
}
