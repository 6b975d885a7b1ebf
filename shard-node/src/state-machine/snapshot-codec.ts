/**
 * The stream a state-machine snapshot travels as: chunks of whole records, each
 * `u32 key length, key, u32 value length, value` (big-endian). A record never spans two chunks,
 * so a receiver can apply each chunk as it arrives. A chunk holds at most `chunkBytesTarget`
 * bytes, or one record alone when that record is larger: so a chunk fits in one frame of the peer
 * transport whenever each record does (the transport splits a larger chunk across frames, and a
 * receiver cannot decode a part of a record; see `value-limit.ts`).
 */
import type { Entry } from '../storage/index.js';

export const snapshotChunkBytesTarget = 1024 * 1024;

/** The bytes one record takes in a chunk. */
export function snapshotRecordBytes(keyBytes: number, valueBytes: number): number {
  return 8 + keyBytes + valueBytes;
}

export async function* encodeSnapshotChunks(
  entries: AsyncIterable<Entry>,
  chunkBytesTarget: number = snapshotChunkBytesTarget,
): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let partsBytes = 0;
  for await (const { key, value } of entries) {
    const recordBytes = snapshotRecordBytes(key.length, value.length);
    // A record that would take the chunk past the target starts the next one.
    if (partsBytes > 0 && partsBytes + recordBytes > chunkBytesTarget) {
      yield Buffer.concat(parts, partsBytes);
      parts = [];
      partsBytes = 0;
    }
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(key.length);
    const valueHeader = Buffer.allocUnsafe(4);
    valueHeader.writeUInt32BE(value.length);
    parts.push(header, key, valueHeader, value);
    partsBytes += recordBytes;
  }
  if (partsBytes > 0) yield Buffer.concat(parts, partsBytes);
}

/** Thrown for a chunk that is not a sequence of whole records. */
export class SnapshotChunkError extends Error {
  readonly code = 'SNAPSHOT_CHUNK_MALFORMED';
}

export function decodeSnapshotChunk(chunk: Uint8Array): { key: Buffer; value: Buffer }[] {
  const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const records: { key: Buffer; value: Buffer }[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    if (offset + 4 > buffer.length) throw new SnapshotChunkError('truncated key length');
    const keyBytes = buffer.readUInt32BE(offset);
    offset += 4;
    if (keyBytes === 0 || offset + keyBytes + 4 > buffer.length)
      throw new SnapshotChunkError('truncated key');
    const key = buffer.subarray(offset, offset + keyBytes);
    offset += keyBytes;
    const valueBytes = buffer.readUInt32BE(offset);
    offset += 4;
    if (offset + valueBytes > buffer.length) throw new SnapshotChunkError('truncated value');
    records.push({ key, value: buffer.subarray(offset, offset + valueBytes) });
    offset += valueBytes;
  }
  return records;
}
