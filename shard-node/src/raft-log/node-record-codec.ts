/**
 * The records of the node log (`node-log.ts`). They use the replica log's framing
 * (`record-codec.ts`: header, two CRCs) with their own type codes, which never overlap the replica
 * log's 1-5, so that a record of one format is never read as a record of the other:
 *
 * - 17 checkpoint: the first record of every segment. u32 group count, then per live group its id
 *   and its `Checkpoint` (snapshot metadata, hard state, base index and term, last index).
 * - 18 group created: the group's id and its first `Checkpoint` (the bootstrap configuration).
 * - 19 group removed: the group's id. Its records before this one no longer count.
 * - 34-37 group records: a replica log record of type 2-5 (entries, hard state, snapshot,
 *   compaction) with the group's id in front of its payload; the type code is the replica type
 *   plus 32.
 *
 * A group id is a u16 byte length then the id's UTF-8 bytes (`group-id.ts`).
 */
import { ByteReader, DecodeError, U64_BYTES } from './byte-cursor.js';
import { groupIdBytes, readGroupId, writeGroupId } from './group-id.js';
import type { RecordBatch } from './record-batch.js';
import { isRecordType, RecordType } from './record-codec.js';
import { checkpointBytes, readCheckpointFields, writeCheckpoint, type Checkpoint } from './state-codec.js';

/** What is added to a replica record's type code to make it a group record. */
export const GROUP_RECORD_TYPE_SHIFT = 32;

/** The node log's record types. Codes are stored on disk: never reuse or renumber one. */
export const NodeRecordType = {
  checkpoint: 17,
  groupCreated: 18,
  groupRemoved: 19,
  groupEntries: RecordType.entries + GROUP_RECORD_TYPE_SHIFT,
  groupHardState: RecordType.hardState + GROUP_RECORD_TYPE_SHIFT,
  groupSnapshot: RecordType.snapshot + GROUP_RECORD_TYPE_SHIFT,
  groupCompaction: RecordType.compaction + GROUP_RECORD_TYPE_SHIFT,
} as const;

export function isNodeRecordType(value: number): boolean {
  return (
    value === NodeRecordType.checkpoint ||
    value === NodeRecordType.groupCreated ||
    value === NodeRecordType.groupRemoved ||
    wrappedRecordType(value) !== undefined
  );
}

/** The replica record type a group record wraps (never a replica checkpoint), or undefined. */
export function wrappedRecordType(type: number): RecordType | undefined {
  const inner = type - GROUP_RECORD_TYPE_SHIFT;
  return isRecordType(inner) && inner !== RecordType.checkpoint ? inner : undefined;
}

/** One group's part of a node checkpoint, or a group's first state. */
export interface GroupCheckpoint {
  readonly groupId: string;
  readonly checkpoint: Checkpoint;
}

/** The fewest bytes a group takes in a node checkpoint (a one-byte id, an empty configuration). */
const GROUP_CHECKPOINT_BYTES_MIN = 3 + 2 * U64_BYTES + 4 * 4 + 1 + 3 * U64_BYTES + 3 * U64_BYTES;

function groupCheckpointBytes(group: GroupCheckpoint): number {
  return groupIdBytes(group.groupId) + checkpointBytes(group.checkpoint);
}

export function nodeCheckpointBytes(groups: readonly GroupCheckpoint[]): number {
  let total = 4;
  for (const group of groups) total += groupCheckpointBytes(group);
  return total;
}

export function addNodeCheckpoint(batch: RecordBatch, groups: readonly GroupCheckpoint[]): void {
  batch.addRecord(NodeRecordType.checkpoint, nodeCheckpointBytes(groups), (writer) => {
    writer.u32(groups.length);
    for (const group of groups) {
      writeGroupId(writer, Buffer.from(group.groupId, 'utf8'));
      writeCheckpoint(writer, group.checkpoint);
    }
  });
}

export function readNodeCheckpoint(payload: Buffer): GroupCheckpoint[] {
  const reader = new ByteReader(payload);
  const count = reader.u32();
  if (count * GROUP_CHECKPOINT_BYTES_MIN > reader.remainingBytes) {
    throw new DecodeError(`group count ${count} does not fit in ${payload.length} bytes`);
  }
  const groups: GroupCheckpoint[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const groupId = readGroupId(reader);
    if (seen.has(groupId)) {
      throw new DecodeError(`group ${groupId} appears twice in the checkpoint`);
    }
    seen.add(groupId);
    groups.push({ groupId, checkpoint: readCheckpointFields(reader) });
  }
  reader.end();
  return groups;
}

export function addGroupCreated(batch: RecordBatch, group: GroupCheckpoint): void {
  batch.addRecord(NodeRecordType.groupCreated, groupCheckpointBytes(group), (writer) => {
    writeGroupId(writer, Buffer.from(group.groupId, 'utf8'));
    writeCheckpoint(writer, group.checkpoint);
  });
}

export function readGroupCreated(payload: Buffer): GroupCheckpoint {
  const reader = new ByteReader(payload);
  const groupId = readGroupId(reader);
  const checkpoint = readCheckpointFields(reader);
  reader.end();
  return { groupId, checkpoint };
}

export function addGroupRemoved(batch: RecordBatch, groupId: string): void {
  batch.addRecord(NodeRecordType.groupRemoved, groupIdBytes(groupId), (writer) =>
    writeGroupId(writer, Buffer.from(groupId, 'utf8')),
  );
}

export function readGroupRemoved(payload: Buffer): string {
  const reader = new ByteReader(payload);
  const groupId = readGroupId(reader);
  reader.end();
  return groupId;
}
