/**
 * Recovery of the node log at open: replays every segment in order, each group's records into its
 * own `Replay` (as a replica log's records are), and refuses or truncates damage by the rules of
 * `segment-scan.ts`. Besides those, it is corruption when a record names a group that does not
 * exist at that point (never created, or removed), when a group is created twice, and when a
 * checkpoint after the first does not list exactly the groups the records before it left, each in
 * the state they left it in.
 */
import type { FileSystem } from '@impulse/common';

import type { Logger } from '../raft/index.js';
import { ByteReader } from './byte-cursor.js';
import { assert } from './errors.js';
import { GroupFootprint } from './group-footprint.js';
import { splitGroupPayload } from './group-id.js';
import {
  isNodeRecordType,
  NodeRecordType,
  readGroupCreated,
  readGroupRemoved,
  readNodeCheckpoint,
  wrappedRecordType,
  type GroupCheckpoint,
} from './node-record-codec.js';
import { addGroupBytes, listNodeSegments, type NodeSegmentInfo } from './node-segment.js';
import { RecordType } from './record-codec.js';
import { Replay, type ReplayedState } from './replay.js';
import { checkConsecutive, checkNewest, readNewestOrRefuse, scanSegment } from './segment-scan.js';
import { syncDirectory } from './segment.js';
import type { Checkpoint } from './state-codec.js';

export interface RecoveredGroup extends ReplayedState {
  /** Which segments the group pins, as of the records replayed (the commit as written, not raised). */
  readonly footprint: GroupFootprint;
}

export interface RecoveredNodeLog {
  readonly groups: Map<string, RecoveredGroup>;
  /** The segments that remain, in order; the last one is reopened for appending. */
  readonly segments: NodeSegmentInfo[];
}

interface ReplayedGroup {
  readonly replay: Replay;
  readonly footprint: GroupFootprint;
}

/** The groups' replays, fed with the node log's records in order. */
class NodeReplay {
  /** Whether a checkpoint was replayed: the first one defines the groups. */
  started = false;
  readonly live = new Map<string, ReplayedGroup>();
  /** Unused: a replica log's segments track their highest entry; the node log uses footprints. */
  private readonly ignored = { maxEntryIndex: 0 };

  apply(type: number, payload: Buffer, segment: NodeSegmentInfo, recordBytes: number): void {
    switch (type) {
      case NodeRecordType.checkpoint:
        return this.applyCheckpoint(readNodeCheckpoint(payload));
      case NodeRecordType.groupCreated: {
        const created = readGroupCreated(payload);
        if (this.live.has(created.groupId)) {
          throw new Error(`group ${created.groupId} is created while it exists`);
        }
        const group = this.startGroup(created);
        addGroupBytes(segment, group.footprint, recordBytes);
        return;
      }
      case NodeRecordType.groupRemoved: {
        const groupId = readGroupRemoved(payload);
        if (!this.live.delete(groupId)) {
          throw new Error(`group ${groupId} is removed while it does not exist`);
        }
        return;
      }
    }
    const inner = wrappedRecordType(type);
    assert(inner !== undefined, `record type ${type} passed the type test`);
    const { groupId, inner: innerPayload } = splitGroupPayload(payload);
    const group = this.live.get(groupId);
    if (group === undefined) {
      throw new Error(`a record of group ${groupId}, which does not exist here`);
    }
    group.replay.apply(inner, innerPayload, this.ignored);
    addGroupBytes(segment, group.footprint, recordBytes);
    if (inner === RecordType.entries) {
      const batch = new ByteReader(innerPayload);
      const firstIndex = batch.u64();
      const count = batch.u32();
      if (count > 0) group.footprint.wroteEntries(segment.sequence, firstIndex + count - 1);
    }
    group.footprint.wroteState(checkpointOf(group.replay));
  }

  private applyCheckpoint(groups: readonly GroupCheckpoint[]): void {
    if (!this.started) {
      this.started = true;
      for (const group of groups) this.startGroup(group);
      return;
    }
    const listed = new Set(groups.map((group) => group.groupId));
    for (const groupId of this.live.keys()) {
      if (!listed.has(groupId)) {
        throw new Error(`the checkpoint does not list group ${groupId}, which the records before it left`);
      }
    }
    for (const { groupId, checkpoint } of groups) {
      const group = this.live.get(groupId);
      if (group === undefined) {
        throw new Error(`the checkpoint lists group ${groupId}, which the records before it did not create`);
      }
      group.replay.applyCheckpoint(checkpoint);
      group.footprint.wroteState(checkpointOf(group.replay));
    }
  }

  private startGroup({ groupId, checkpoint }: GroupCheckpoint): ReplayedGroup {
    const replay = new Replay();
    replay.applyCheckpoint(checkpoint);
    const group = { replay, footprint: new GroupFootprint(groupId, checkpoint) };
    this.live.set(groupId, group);
    return group;
  }
}

function checkpointOf(replay: Replay): Checkpoint {
  assert(
    replay.snapshot !== undefined && replay.hardState !== undefined,
    'a group replays from a checkpoint',
  );
  return {
    snapshot: replay.snapshot,
    hardState: replay.hardState,
    baseIndex: replay.log.baseIndex,
    baseTerm: replay.log.baseTerm,
    lastIndex: replay.log.lastIndex(),
  };
}

/** Replays the node log in `directory`; returns undefined when it holds no segment (a fresh log). */
export async function recoverNodeLog(
  directory: string,
  recordBytesMax: number,
  logger: Logger,
  fs: FileSystem,
): Promise<RecoveredNodeLog | undefined> {
  const listed = await listNodeSegments(directory, fs);
  const newest = await readNewestOrRefuse(directory, fs);
  if (listed.length === 0) {
    checkNewest(directory, newest, undefined);
    return undefined;
  }
  checkConsecutive(listed);
  const format = { recordBytesMax, isType: isNodeRecordType, checkpointType: NodeRecordType.checkpoint };
  const replay = new NodeReplay();
  const segments: NodeSegmentInfo[] = [];
  for (let i = 0; i < listed.length; i++) {
    const { sequence, file } = listed[i]!;
    const segment: NodeSegmentInfo = { sequence, file, sizeBytes: 0, groupBytes: new Map() };
    segment.sizeBytes = await scanSegment(
      file,
      i === listed.length - 1,
      format,
      logger,
      fs,
      (type, payload, _offsetBytes, recordBytes) => replay.apply(type, payload, segment, recordBytes),
    );
    segments.push(segment);
  }
  // A last segment left empty (it was created, then its checkpoint was torn) holds nothing; it
  // goes so that every remaining segment starts with a checkpoint.
  if (segments[segments.length - 1]!.sizeBytes === 0) {
    await fs.unlink(segments.pop()!.file);
    await syncDirectory(directory, fs);
  }
  checkNewest(directory, newest, segments.at(-1)?.sequence);
  if (!replay.started) {
    return undefined;
  }
  const groups = new Map<string, RecoveredGroup>();
  for (const [groupId, group] of replay.live) {
    const state = group.replay.finish(segments[0]!.file, logger, { groupId });
    assert(state !== undefined, `group ${groupId} replayed without a checkpoint`);
    groups.set(groupId, { ...state, footprint: group.footprint });
  }
  return { groups, segments };
}
