/**
 * The binary encoding of a batch of log entries (the payload of an `entries` record).
 *
 *   u64 firstIndex, u32 count, then per entry: u64 term, u8 type, u32 dataBytes, data.
 *
 * Indexes are implicit (firstIndex + position): a batch is contiguous by construction, which both
 * saves 8 bytes per entry and makes a gap inside a batch impossible to encode.
 */
import type { Entry, EntryType } from '../raft/index.js';
import { ByteReader, DecodeError, type ByteWriter } from './byte-cursor.js';

const BATCH_HEADER_BYTES = 12;
/** The encoded bytes of an entry besides its data: term, type and data length. */
export const ENTRY_OVERHEAD_BYTES = 13;

const TYPE_CODES: Readonly<Record<EntryType, number>> = { normal: 0, confChange: 1, confChangeV2: 2 };
const TYPES_BY_CODE: readonly EntryType[] = ['normal', 'confChange', 'confChangeV2'];

/** The encoded bytes of one entry inside a batch. */
export function encodedEntryBytes(entry: Entry): number {
  return ENTRY_OVERHEAD_BYTES + entry.data.byteLength;
}

/** The encoded bytes of the batch `entries[from, to)`. */
export function encodedBatchBytes(entries: readonly Entry[], from: number, to: number): number {
  let total = BATCH_HEADER_BYTES;
  for (let i = from; i < to; i++) {
    total += encodedEntryBytes(entries[i]!);
  }
  return total;
}

/** The encoded bytes of an empty batch, the floor of `encodedBatchBytes`. */
export const EMPTY_BATCH_BYTES = BATCH_HEADER_BYTES;

/** Writes `entries[from, to)`, which the caller checked are contiguous and non-empty. */
export function writeBatch(writer: ByteWriter, entries: readonly Entry[], from: number, to: number): void {
  writer.u64(entries[from]!.index);
  writer.u32(to - from);
  for (let i = from; i < to; i++) {
    const entry = entries[i]!;
    writer.u64(entry.term);
    writer.u8(TYPE_CODES[entry.type]);
    writer.u32(entry.data.byteLength);
    writer.bytes(entry.data);
  }
}

/** Decodes a batch; throws `DecodeError` on a malformed payload. */
export function readBatch(payload: Buffer): Entry[] {
  const reader = new ByteReader(payload);
  const firstIndex = reader.u64();
  const count = reader.u32();
  if (firstIndex < 1) {
    throw new DecodeError('entry batch starts at index 0');
  }
  // Each entry takes at least its overhead, so a count that cannot fit is refused before looping.
  if (count * ENTRY_OVERHEAD_BYTES > reader.remainingBytes) {
    throw new DecodeError(`entry count ${count} does not fit in ${payload.length} bytes`);
  }
  const entries: Entry[] = new Array<Entry>(count);
  for (let i = 0; i < count; i++) {
    const term = reader.u64();
    const type = TYPES_BY_CODE[reader.u8()];
    if (type === undefined) {
      throw new DecodeError(`unknown entry type at entry ${firstIndex + i}`);
    }
    const data = reader.bytesCopy(reader.u32());
    entries[i] = { term, index: firstIndex + i, type, data };
  }
  reader.end();
  return entries;
}
