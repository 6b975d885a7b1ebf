/**
 * The payloads of a snapshot stream. A stream runs on a connection of its own (purpose `snapshot`):
 * the sender writes `snapshotChunk` frames with sequence numbers 0, 1, 2... and the last one
 * flagged, then waits for one `snapshotAck` frame from the receiver, sent once its handler has
 * taken the last chunk.
 *
 * snapshotChunk payload: string snapshot id · varint sequence · u8 flags (bit 0: last) · bytes to
 * the end of the payload.
 * snapshotAck payload: string snapshot id · varint chunk count · varint byte count.
 */
import { BufferReader, malformed } from './buffer-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import { beginFrame, finishFrame, frameHeaderBytes } from './frame.js';

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
