/**
 * Encodes the records of one write (a save, a compaction, a checkpoint) into a single buffer, so
 * that each write is one system call and each record's bytes are copied exactly once.
 *
 * The node log writes a group's records with the same payloads behind a tag (the group id) and
 * with shifted type codes (`RecordTag`, see `node-record-codec.ts`); a replica's own log has none.
 */
import type { Entry, HardState } from '../raft/index.js';
import { ByteWriter } from './byte-cursor.js';
import { EMPTY_BATCH_BYTES, encodedBatchBytes, encodedEntryBytes, writeBatch } from './entry-codec.js';
import { assert } from './errors.js';
import type { RecordSink } from './log-state.js';
import { RECORD_HEADER_BYTES, RecordType, writeRecordHeader } from './record-codec.js';
import {
  checkpointBytes,
  COMPACTION_BYTES,
  HARD_STATE_BYTES,
  snapshotRecordBytes,
  writeCheckpoint,
  writeCompaction,
  writeHardState,
  writeSnapshotRecord,
  type Checkpoint,
  type CompactionRecord,
  type SnapshotRecord,
} from './state-codec.js';

/** One record still to encode: its type, payload size and how to write the payload. */
interface PendingRecord {
  readonly type: number;
  readonly payloadBytes: number;
  readonly write: (writer: ByteWriter) => void;
}

/**
 * What goes before the payload of every replica record of a batch, and what is added to its type
 * code. The records a `RecordSink` adds carry it; those added with `addRecord` do not.
 */
export interface RecordTag {
  readonly typeShift: number;
  readonly bytes: number;
  write(writer: ByteWriter): void;
}

export class RecordBatch implements RecordSink {
  private readonly records: PendingRecord[] = [];
  private totalBytes = 0;
  /** The highest entry index in the batch, or 0. */
  maxEntryIndex = 0;
  /** The Raft entries in the batch (the node log reports how many each fsync made durable). */
  entryCount = 0;

  constructor(
    private readonly recordBytesMax: number,
    private readonly tag?: RecordTag,
  ) {}

  get isEmpty(): boolean {
    return this.records.length === 0;
  }

  /** The bytes `encode` returns: every record, headers included. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** The bytes a tag adds to each record's payload. */
  private get tagBytes(): number {
    return this.tag?.bytes ?? 0;
  }

  /** Adds a record of any type, untagged; the node log adds its own records with it. */
  addRecord(type: number, payloadBytes: number, write: (writer: ByteWriter) => void): void {
    assert(
      RECORD_HEADER_BYTES + payloadBytes <= this.recordBytesMax,
      `a record of ${RECORD_HEADER_BYTES + payloadBytes} bytes is over recordBytesMax (${this.recordBytesMax})`,
    );
    this.records.push({ type, payloadBytes, write });
    this.totalBytes += RECORD_HEADER_BYTES + payloadBytes;
  }

  private add(type: RecordType, payloadBytes: number, write: (writer: ByteWriter) => void): void {
    const tag = this.tag;
    if (tag === undefined) {
      this.addRecord(type, payloadBytes, write);
      return;
    }
    this.addRecord(type + tag.typeShift, tag.bytes + payloadBytes, (writer) => {
      tag.write(writer);
      write(writer);
    });
  }

  /**
   * Checks that every entry fits in a record on its own, before anything is changed: an entry
   * over the limit is a programmer error (the proposal size limit is smaller).
   */
  checkEntrySizes(entries: readonly Entry[]): void {
    for (const entry of entries) {
      const recordBytes = RECORD_HEADER_BYTES + this.tagBytes + EMPTY_BATCH_BYTES + encodedEntryBytes(entry);
      assert(
        recordBytes <= this.recordBytesMax,
        `entry ${entry.index} needs a record of ${recordBytes} bytes, over recordBytesMax (${this.recordBytesMax})`,
      );
    }
  }

  /** Adds `entries[from..]` as one record, or as several when they exceed `recordBytesMax`. */
  addEntries(entries: readonly Entry[], from: number): void {
    const overheadBytes = RECORD_HEADER_BYTES + this.tagBytes;
    let start = from;
    while (start < entries.length) {
      let end = start;
      let payloadBytes = EMPTY_BATCH_BYTES;
      while (end < entries.length) {
        const entryBytes = encodedEntryBytes(entries[end]!);
        if (end > start && overheadBytes + payloadBytes + entryBytes > this.recordBytesMax) {
          break;
        }
        payloadBytes += entryBytes;
        end++;
      }
      const chunkStart = start;
      const chunkEnd = end;
      this.add(RecordType.entries, encodedBatchBytes(entries, chunkStart, chunkEnd), (writer) =>
        writeBatch(writer, entries, chunkStart, chunkEnd),
      );
      start = end;
    }
    if (from < entries.length) {
      this.maxEntryIndex = Math.max(this.maxEntryIndex, entries[entries.length - 1]!.index);
      this.entryCount += entries.length - from;
    }
  }

  addHardState(hardState: HardState): void {
    this.add(RecordType.hardState, HARD_STATE_BYTES, (w) => writeHardState(w, hardState));
  }

  addSnapshot(record: SnapshotRecord): void {
    this.add(RecordType.snapshot, snapshotRecordBytes(record), (w) => writeSnapshotRecord(w, record));
  }

  addCompaction(record: CompactionRecord): void {
    this.add(RecordType.compaction, COMPACTION_BYTES, (w) => writeCompaction(w, record));
  }

  addCheckpoint(checkpoint: Checkpoint): void {
    this.add(RecordType.checkpoint, checkpointBytes(checkpoint), (w) => writeCheckpoint(w, checkpoint));
  }

  /** The records, framed and checksummed, in the order they were added. */
  encode(): Buffer {
    const buffer = Buffer.allocUnsafe(this.totalBytes);
    this.encodeInto(buffer, 0);
    return buffer;
  }

  /**
   * Writes the records at `offset` of `buffer`, which has room for `bytes` more, so that the node
   * log encodes every write of a round straight into one buffer. Returns the offset after them.
   */
  encodeInto(buffer: Buffer, offset: number): number {
    assert(offset + this.totalBytes <= buffer.length, 'records do not fit in their buffer');
    const writer = new ByteWriter(buffer, offset);
    for (const record of this.records) {
      const headerOffset = writer.offset;
      writer.offset += RECORD_HEADER_BYTES;
      record.write(writer);
      assert(
        writer.offset === headerOffset + RECORD_HEADER_BYTES + record.payloadBytes,
        `record type ${record.type} wrote ${writer.offset - headerOffset - RECORD_HEADER_BYTES} bytes, announced ${record.payloadBytes}`,
      );
      writeRecordHeader(buffer, headerOffset, record.type, record.payloadBytes);
    }
    assert(writer.offset === offset + this.totalBytes, 'records do not fill their buffer');
    return writer.offset;
  }
}
