/**
 * The payloads of a snapshot stream. A stream runs on a connection of its own (purpose `snapshot`):
 * the sender writes `snapshotChunk` frames with sequence numbers 0, 1, 2... and the last one
 * flagged, then waits for one `snapshotAck` frame from the receiver, sent once its handler has
 * taken the last chunk.
 *
 * snapshotChunk payload: string snapshot id · varint sequence · u8 flags (bit 0: last) · bytes to
 * the end of the payload.
 * snapshotAck payload: string snapshot id · varint chunk count · varint byte count.
 *
 * A node transport's stream (whose hello names nodes, not replicas) opens with one more frame,
 * after the handshake and before the first chunk, so that the receiver hands the chunks to the
 * right replica:
 * snapshotHeader payload: string group id (`group-id.ts`) · varint sender Raft id · varint receiver
 * Raft id.
 */
import type { NodeId } from '../raft/index.js';
import { BufferReader, malformed } from './buffer-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import { beginFrame, finishFrame, frameHeaderBytes } from './frame.js';
import { readGroupId, writeGroupId } from './group-id.js';

/** The longest snapshot id. */
export const snapshotIdBytesMax = 256;

/** The bytes a chunk frame takes besides its data, at most (header, id, sequence, flags). */
export const snapshotChunkOverheadBytesMax = frameHeaderBytes + 2 + snapshotIdBytesMax + 8 + 1;

const flagLast = 0b1;

export interface SnapshotChunkHeader {
  readonly snapshotId: string;
  readonly sequence: number;
  readonly last: boolean;
}

export interface DecodedSnapshotChunk extends SnapshotChunkHeader {
  /** A view into the received frame. */
  readonly bytes: Uint8Array;
}

export interface SnapshotAck {
  readonly snapshotId: string;
  readonly chunkCount: number;
  readonly byteCount: number;
}

export function encodeSnapshotChunkFrame(
  writer: BufferWriter,
  header: SnapshotChunkHeader,
  bytes: Uint8Array,
): void {
  const start = beginFrame(writer, 'snapshotChunk');
  writer.writeString(header.snapshotId);
  writer.writeVarint(header.sequence);
  writer.writeUint8(header.last ? flagLast : 0);
  writer.writeBytes(bytes);
  finishFrame(writer, start);
}

export function decodeSnapshotChunk(payload: Uint8Array): DecodedSnapshotChunk {
  const reader = new BufferReader(payload);
  const snapshotId = reader.readString(snapshotIdBytesMax, 'snapshot id');
  const sequence = reader.readVarint();
  const flags = reader.readUint8();
  if ((flags & ~flagLast) !== 0) {
    throw malformed(`unknown snapshot chunk flags ${flags}`);
  }
  return { snapshotId, sequence, last: (flags & flagLast) !== 0, bytes: reader.readRestView() };
}

export function encodeSnapshotAckFrame(writer: BufferWriter, ack: SnapshotAck): void {
  const start = beginFrame(writer, 'snapshotAck');
  writer.writeString(ack.snapshotId);
  writer.writeVarint(ack.chunkCount);
  writer.writeVarint(ack.byteCount);
  finishFrame(writer, start);
}

export function decodeSnapshotAck(payload: Uint8Array): SnapshotAck {
  const reader = new BufferReader(payload);
  const snapshotId = reader.readString(snapshotIdBytesMax, 'snapshot id');
  const chunkCount = reader.readVarint();
  const byteCount = reader.readVarint();
  reader.expectEnd('snapshot ack');
  return { snapshotId, chunkCount, byteCount };
}

/** Which group and replicas a node transport's snapshot stream is for. */
export interface SnapshotHeader {
  readonly groupId: string;
  readonly from: NodeId;
  readonly to: NodeId;
}

export function encodeSnapshotHeaderFrame(writer: BufferWriter, header: SnapshotHeader): void {
  const start = beginFrame(writer, 'snapshotHeader');
  writeGroupId(writer, header.groupId);
  writer.writeVarint(header.from);
  writer.writeVarint(header.to);
  finishFrame(writer, start);
}

/** Decodes a snapshot header; throws `PeerFrameMalformedError` on any invalid byte. */
export function decodeSnapshotHeader(payload: Uint8Array): SnapshotHeader {
  const reader = new BufferReader(payload);
  const groupId = readGroupId(reader);
  const from = reader.readVarint();
  const to = reader.readVarint();
  reader.expectEnd('snapshot header');
  if (from === 0 || to === 0 || from === to) throw malformed(`a snapshot stream from ${from} to ${to}`);
  return { groupId, from, to };
}
