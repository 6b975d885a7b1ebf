/**
 * Encodes the records of one write (a save, a compaction, a checkpoint) into a single buffer, so
 * that each write is one system call and each record's bytes are copied exactly once.
 */
import type { Entry, HardState } from '../raft/index.js';
import { ByteWriter } from './byte-cursor.js';
import { EMPTY_BATCH_BYTES, encodedBatchBytes, encodedEntryBytes, writeBatch } from './entry-codec.js';
import { assert } from './errors.js';
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
  readonly type: RecordType;
  readonly payloadBytes: number;
  readonly write: (writer: ByteWriter) => void;
}

export class RecordBatch {
  private readonly records: PendingRecord[] = [];
  private totalBytes = 0;
  /** The highest entry index in the batch, or 0. */
  maxEntryIndex = 0;

  constructor(private readonly recordBytesMax: number) {}

  get isEmpty(): boolean {
    return this.records.length === 0;
  }

  private add(record: PendingRecord): void {
    assert(
      RECORD_HEADER_BYTES + record.payloadBytes <= this.recordBytesMax,
      `a record of ${RECORD_HEADER_BYTES + record.payloadBytes} bytes is over recordBytesMax (${this.recordBytesMax})`,
    );
    this.records.push(record);
    this.totalBytes += RECORD_HEADER_BYTES + record.payloadBytes;
  }

  /**
   * Checks that every entry fits in a record on its own, before anything is changed: an entry
   * over the limit is a programmer error (the proposal size limit is smaller).
   */
  static checkEntrySizes(entries: readonly Entry[], recordBytesMax: number): void {
    for (const entry of entries) {
      const recordBytes = RECORD_HEADER_BYTES + EMPTY_BATCH_BYTES + encodedEntryBytes(entry);
      assert(
        recordBytes <= recordBytesMax,
        `entry ${entry.index} needs a record of ${recordBytes} bytes, over recordBytesMax (${recordBytesMax})`,
      );
    }
  }

  /** Adds `entries[from..]` as one record, or as several when they exceed `recordBytesMax`. */
  addEntries(entries: readonly Entry[], from: number): void {
    let start = from;
    while (start < entries.length) {
      let end = start;
      let payloadBytes = EMPTY_BATCH_BYTES;
      while (end < entries.length) {
        const entryBytes = encodedEntryBytes(entries[end]!);
        if (end > start && RECORD_HEADER_BYTES + payloadBytes + entryBytes > this.recordBytesMax) {
          break;
        }
        payloadBytes += entryBytes;
        end++;
      }
      const chunkStart = start;
      const chunkEnd = end;
      this.add({
        type: RecordType.entries,
        payloadBytes: encodedBatchBytes(entries, chunkStart, chunkEnd),
        write: (writer) => writeBatch(writer, entries, chunkStart, chunkEnd),
      });
      start = end;
    }
    if (from < entries.length) {
      this.maxEntryIndex = Math.max(this.maxEntryIndex, entries[entries.length - 1]!.index);
    }
  }

  addHardState(hardState: HardState): void {
    this.add({
      type: RecordType.hardState,
      payloadBytes: HARD_STATE_BYTES,
      write: (w) => writeHardState(w, hardState),
    });
  }

  addSnapshot(record: SnapshotRecord): void {
    this.add({
      type: RecordType.snapshot,
      payloadBytes: snapshotRecordBytes(record),
      write: (w) => writeSnapshotRecord(w, record),
    });
  }

  addCompaction(record: CompactionRecord): void {
    this.add({
      type: RecordType.compaction,
      payloadBytes: COMPACTION_BYTES,
      write: (w) => writeCompaction(w, record),
    });
  }

  addCheckpoint(checkpoint: Checkpoint): void {
    this.add({
      type: RecordType.checkpoint,
      payloadBytes: checkpointBytes(checkpoint),
      write: (w) => writeCheckpoint(w, checkpoint),
    });
  }

  /** The records, framed and checksummed, in the order they were added. */
  encode(): Buffer {
    const buffer = Buffer.allocUnsafe(this.totalBytes);
    const writer = new ByteWriter(buffer, 0);
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
    assert(writer.offset === buffer.length, 'records do not fill their buffer');
    return buffer;
  }
}
