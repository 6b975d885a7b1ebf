/**
 * The framing of one record in a segment file, and the scan that tells a torn tail from
 * corruption in the middle.
 *
 *   offset 0  u32 payloadBytes
 *          4  u8  type
 *          5  u8[3] reserved, zero
 *          8  u32 payloadCrc: CRC-32 over the type byte then the payload
 *         12  u32 headerCrc:  CRC-32 over bytes 0..11
 *         16  payload
 *
 * The header has its own checksum so that a damaged length is recognised as such (instead of
 * sending the reader to a wrong offset), and so that the scan for valid records after a damaged
 * one can reject almost every offset without reading a payload.
 */
import { crc32 } from 'node:zlib';

import { assert } from './errors.js';

export const RECORD_HEADER_BYTES = 16;

/** The record types. Codes are stored on disk: never reuse or renumber one. */
export const RecordType = {
  /** The first record of every segment: the whole metadata state (`Checkpoint`). */
  checkpoint: 1,
  /** A contiguous batch of entries; it replaces any entries from its first index on. */
  entries: 2,
  /** The hard state (term, vote, commit). */
  hardState: 3,
  /** Snapshot metadata, with what it did to the log (`SnapshotRecord`). */
  snapshot: 4,
  /** Entries up to an index were dropped after a snapshot (`CompactionRecord`). */
  compaction: 5,
} as const;

export type RecordType = (typeof RecordType)[keyof typeof RecordType];

const RECORD_TYPE_MAX = 5;

/** Whether `value` is a type code of the replica log's records (the default of the readers below). */
export function isRecordType(value: number): value is RecordType {
  return value >= 1 && value <= RECORD_TYPE_MAX;
}

/**
 * Which type codes a reader accepts. The framing is shared by two file formats (a replica's log and
 * the node log, `node-record-codec.ts`) whose codes do not overlap, so that a record of one is never
 * taken for a record of the other.
 */
export type RecordTypeTest = (value: number) => boolean;

/**
 * Writes the header of a record whose payload the caller already wrote at
 * `headerOffset + RECORD_HEADER_BYTES`, computing both checksums. Writing the payload first lets
 * encoders write entry data straight into the final buffer, with no intermediate copy.
 */
export function writeRecordHeader(
  buffer: Buffer,
  headerOffset: number,
  type: number,
  payloadBytes: number,
): void {
  const payloadStart = headerOffset + RECORD_HEADER_BYTES;
  assert(payloadStart + payloadBytes <= buffer.length, 'record payload past the end of its buffer');
  buffer.writeUInt32LE(payloadBytes, headerOffset);
  buffer[headerOffset + 4] = type;
  buffer[headerOffset + 5] = 0;
  buffer[headerOffset + 6] = 0;
  buffer[headerOffset + 7] = 0;
  buffer.writeUInt32LE(payloadCrc(buffer, headerOffset, payloadStart, payloadBytes), headerOffset + 8);
  buffer.writeUInt32LE(crc32(buffer.subarray(headerOffset, headerOffset + 12)), headerOffset + 12);
}

function payloadCrc(
  buffer: Buffer,
  headerOffset: number,
  payloadStart: number,
  payloadBytes: number,
): number {
  const typeCrc = crc32(buffer.subarray(headerOffset + 4, headerOffset + 5));
  return crc32(buffer.subarray(payloadStart, payloadStart + payloadBytes), typeCrc);
}

/** What lies at an offset of a segment file. */
export type RecordRead =
  | {
      readonly kind: 'record';
      /** One of the codes the reader's `RecordTypeTest` accepts. */
      readonly type: number;
      readonly payload: Buffer;
      readonly nextOffset: number;
    }
  /** The file ends inside the record: the header is cut, or the header is valid but the payload is cut. */
  | { readonly kind: 'incomplete'; readonly headerValid: boolean; readonly reason: string }
  /** The bytes are damaged. `recordEnd` is where the record would end when its header is intact. */
  | { readonly kind: 'corrupt'; readonly recordEnd: number | undefined; readonly reason: string };

/** Reads the record at `offset`, checking both checksums, the type code and the size limit. */
export function readRecordAt(
  buffer: Buffer,
  offset: number,
  recordBytesMax: number,
  isType: RecordTypeTest = isRecordType,
): RecordRead {
  if (buffer.length - offset < RECORD_HEADER_BYTES) {
    return { kind: 'incomplete', headerValid: false, reason: 'the file ends inside a record header' };
  }
  if (buffer.readUInt32LE(offset + 12) !== crc32(buffer.subarray(offset, offset + 12))) {
    return { kind: 'corrupt', recordEnd: undefined, reason: 'record header checksum mismatch' };
  }
  const payloadBytes = buffer.readUInt32LE(offset);
  const type = buffer[offset + 4]!;
  if (!isType(type) || buffer[offset + 5] !== 0 || buffer[offset + 6] !== 0 || buffer[offset + 7] !== 0) {
    return { kind: 'corrupt', recordEnd: undefined, reason: `unknown record type ${type}` };
  }
  if (RECORD_HEADER_BYTES + payloadBytes > recordBytesMax) {
    return {
      kind: 'corrupt',
      recordEnd: undefined,
      reason: `record of ${payloadBytes} bytes is over the limit`,
    };
  }
  const payloadStart = offset + RECORD_HEADER_BYTES;
  const recordEnd = payloadStart + payloadBytes;
  if (recordEnd > buffer.length) {
    return { kind: 'incomplete', headerValid: true, reason: 'the file ends inside a record payload' };
  }
  if (buffer.readUInt32LE(offset + 8) !== payloadCrc(buffer, offset, payloadStart, payloadBytes)) {
    return { kind: 'corrupt', recordEnd, reason: 'record payload checksum mismatch' };
  }
  return { kind: 'record', type, payload: buffer.subarray(payloadStart, recordEnd), nextOffset: recordEnd };
}

/**
 * Returns the offset of the first valid record at or after `from`, or -1. Used after a damaged
 * record in the last segment: a torn write leaves nothing valid behind it, so a valid record after
 * the damage means the damage is in the middle of the log. The cheap tests (type byte, reserved
 * zeros) run before any checksum, which keeps the scan of a large segment fast.
 */
export function findValidRecord(
  buffer: Buffer,
  from: number,
  recordBytesMax: number,
  isType: RecordTypeTest = isRecordType,
): number {
  const lastHeaderOffset = buffer.length - RECORD_HEADER_BYTES;
  for (let offset = from; offset <= lastHeaderOffset; offset++) {
    if (buffer[offset + 5] !== 0 || buffer[offset + 6] !== 0 || !isType(buffer[offset + 4]!)) {
      continue;
    }
    if (buffer[offset + 7] !== 0) {
      continue;
    }
    if (readRecordAt(buffer, offset, recordBytesMax, isType).kind === 'record') {
      return offset;
    }
  }
  return -1;
}
