/**
 * The binary encoding of the small records: hard state, snapshot metadata (with its ConfState),
 * compaction and checkpoint. Every field is a little-endian u64 (see `byte-cursor.ts`) except
 * counts (u32) and flags (u8).
 */
import type { ConfState, HardState, NodeId, SnapshotMetadata } from '../raft/index.js';
import { ByteReader, DecodeError, U64_BYTES, type ByteWriter } from './byte-cursor.js';

/**
 * What a `snapshot` record does to the log besides recording the snapshot metadata. The decision
 * (whether the log matched the snapshot) is taken when writing and stored, so that replay never
 * has to re-derive it from a log prefix that compaction may have deleted.
 */
export type SnapshotLogAction =
  /** A snapshot the local state machine took: the log is unchanged. */
  | 'none'
  /** A snapshot installed from the leader that matched the log: entries up to its index go. */
  | 'compact'
  /** A snapshot installed from the leader that did not match: every entry goes. */
  | 'reset';

const ACTION_CODES: Readonly<Record<SnapshotLogAction, number>> = { none: 0, compact: 1, reset: 2 };
const ACTIONS_BY_CODE: readonly SnapshotLogAction[] = ['none', 'compact', 'reset'];

export interface SnapshotRecord {
  readonly metadata: SnapshotMetadata;
  readonly action: SnapshotLogAction;
}

/** Entries up to and including `index` (whose term is `term`) were dropped. */
export interface CompactionRecord {
  readonly index: number;
  readonly term: number;
}

/**
 * The whole metadata state of the log, written as the first record of every segment so that any
 * segment can start a replay once the segments before it are deleted by compaction.
 */
export interface Checkpoint {
  readonly snapshot: SnapshotMetadata;
  readonly hardState: HardState;
  /** The entry just before the first live entry (firstIndex - 1) and its term. */
  readonly baseIndex: number;
  readonly baseTerm: number;
  /** The last index when the checkpoint was written; informational (the next segment's name). */
  readonly lastIndex: number;
}

export const HARD_STATE_BYTES = 3 * U64_BYTES;
export const COMPACTION_BYTES = 2 * U64_BYTES;

export function writeHardState(writer: ByteWriter, hardState: HardState): void {
  writer.u64(hardState.term);
  writer.u64(hardState.vote);
  writer.u64(hardState.commit);
}

export function readHardState(reader: ByteReader): HardState {
  return { term: reader.u64(), vote: reader.u64(), commit: reader.u64() };
}

function idsBytes(ids: readonly NodeId[]): number {
  return 4 + ids.length * U64_BYTES;
}

function writeIds(writer: ByteWriter, ids: readonly NodeId[]): void {
  writer.u32(ids.length);
  for (const id of ids) {
    writer.u64(id);
  }
}

function readIds(reader: ByteReader): NodeId[] {
  const count = reader.u32();
  if (count * U64_BYTES > reader.remainingBytes) {
    throw new DecodeError(`node id count ${count} does not fit`);
  }
  const ids: NodeId[] = [];
  for (let i = 0; i < count; i++) {
    ids.push(reader.u64());
  }
  return ids;
}

export function confStateBytes(confState: ConfState): number {
  return (
    idsBytes(confState.voters) +
    idsBytes(confState.learners) +
    idsBytes(confState.votersOutgoing) +
    idsBytes(confState.learnersNext) +
    1
  );
}

function writeConfState(writer: ByteWriter, confState: ConfState): void {
  writeIds(writer, confState.voters);
  writeIds(writer, confState.learners);
  writeIds(writer, confState.votersOutgoing);
  writeIds(writer, confState.learnersNext);
  writer.u8(confState.autoLeave ? 1 : 0);
}

function readConfState(reader: ByteReader): ConfState {
  const voters = readIds(reader);
  const learners = readIds(reader);
  const votersOutgoing = readIds(reader);
  const learnersNext = readIds(reader);
  const autoLeave = reader.u8();
  if (autoLeave > 1) {
    throw new DecodeError('autoLeave flag is not 0 or 1');
  }
  return { voters, learners, votersOutgoing, learnersNext, autoLeave: autoLeave === 1 };
}

function snapshotMetadataBytes(metadata: SnapshotMetadata): number {
  return 2 * U64_BYTES + confStateBytes(metadata.confState);
}

function writeSnapshotMetadata(writer: ByteWriter, metadata: SnapshotMetadata): void {
  writer.u64(metadata.index);
  writer.u64(metadata.term);
  writeConfState(writer, metadata.confState);
}

function readSnapshotMetadata(reader: ByteReader): SnapshotMetadata {
  const index = reader.u64();
  const term = reader.u64();
  return { index, term, confState: readConfState(reader) };
}

export function snapshotRecordBytes(record: SnapshotRecord): number {
  return 1 + snapshotMetadataBytes(record.metadata);
}

export function writeSnapshotRecord(writer: ByteWriter, record: SnapshotRecord): void {
  writer.u8(ACTION_CODES[record.action]);
  writeSnapshotMetadata(writer, record.metadata);
}

export function readSnapshotRecord(payload: Buffer): SnapshotRecord {
  const reader = new ByteReader(payload);
  const action = ACTIONS_BY_CODE[reader.u8()];
  if (action === undefined) {
    throw new DecodeError('unknown snapshot log action');
  }
  const metadata = readSnapshotMetadata(reader);
  reader.end();
  return { metadata, action };
}

export function writeCompaction(writer: ByteWriter, record: CompactionRecord): void {
  writer.u64(record.index);
  writer.u64(record.term);
}

export function readCompaction(payload: Buffer): CompactionRecord {
  const reader = new ByteReader(payload);
  const record = { index: reader.u64(), term: reader.u64() };
  reader.end();
  return record;
}

export function readHardStateRecord(payload: Buffer): HardState {
  const reader = new ByteReader(payload);
  const hardState = readHardState(reader);
  reader.end();
  return hardState;
}

export function checkpointBytes(checkpoint: Checkpoint): number {
  return snapshotMetadataBytes(checkpoint.snapshot) + HARD_STATE_BYTES + 3 * U64_BYTES;
}

export function writeCheckpoint(writer: ByteWriter, checkpoint: Checkpoint): void {
  writeSnapshotMetadata(writer, checkpoint.snapshot);
  writeHardState(writer, checkpoint.hardState);
  writer.u64(checkpoint.baseIndex);
  writer.u64(checkpoint.baseTerm);
  writer.u64(checkpoint.lastIndex);
}

export function readCheckpoint(payload: Buffer): Checkpoint {
  const reader = new ByteReader(payload);
  const checkpoint = readCheckpointFields(reader);
  reader.end();
  return checkpoint;
}

/** Reads a checkpoint's fields, for payloads that hold several (the node log's checkpoint). */
export function readCheckpointFields(reader: ByteReader): Checkpoint {
  const snapshot = readSnapshotMetadata(reader);
  const hardState = readHardState(reader);
  const baseIndex = reader.u64();
  const baseTerm = reader.u64();
  const lastIndex = reader.u64();
  return { snapshot, hardState, baseIndex, baseTerm, lastIndex };
}

/** Whether two snapshot metadata are equal field by field (used to cross-check checkpoints). */
export function sameSnapshotMetadata(a: SnapshotMetadata, b: SnapshotMetadata): boolean {
  const sameIds = (x: readonly NodeId[], y: readonly NodeId[]): boolean =>
    x.length === y.length && x.every((id, i) => id === y[i]);
  return (
    a.index === b.index &&
    a.term === b.term &&
    sameIds(a.confState.voters, b.confState.voters) &&
    sameIds(a.confState.learners, b.confState.learners) &&
    sameIds(a.confState.votersOutgoing, b.confState.votersOutgoing) &&
    sameIds(a.confState.learnersNext, b.confState.learnersNext) &&
    a.confState.autoLeave === b.confState.autoLeave
  );
}

export function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
