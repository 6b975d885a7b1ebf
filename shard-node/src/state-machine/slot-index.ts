import { crc32 } from 'node:zlib';
import type { BatchOperation, Engine } from '../storage/index.js';
import { dataRange, keyAfter, slotIndexKeyOfDataKey, slotIndexRange } from './keyspace.js';
import { openRecords, sealedPut } from './sealed-record.js';
import { StorageFault, describeEngineKey, readFaultOf, writeFaultOf } from './storage-fault.js';

/**
 * The slot index: one `s` + slot + user key record, with an empty payload, for every `d` record
 * (`keyspace.ts`), so that the keys of one slot are one ordered range that slot migration can
 * read, copy and delete (decision 0011). The index is derived state: it holds nothing that the
 * `d` records do not, and every way a state machine gets its records maintains or derives it.
 *
 * - An applied put or delete writes or deletes the index record in the same atomic batch as the
 *   data record (`slotIndexOperationOf`), so that no crash can separate them.
 * - A received snapshot and a loaded memory image do not carry the index: each `d` record
 *   received brings its index record into the same engine batch (`receivedRecordOperations`).
 * - A state of format 2, written before the index existed, gets it built on open
 *   (`rebuildSlotIndex`).
 */

/**
 * Data records read, and index records written, per batch when the index is rebuilt: bounded so
 * that rebuilding a large state holds a bounded amount of memory and never makes one huge engine
 * batch (LevelDB would write it to its log and memtable in one piece).
 */
export const slotIndexRebuildBatchKeysMax = 1000;

const emptyPayload = Buffer.alloc(0);

/** The index operation that goes, in the same batch, with a put or a delete of `dataKey`. */
export function slotIndexOperationOf(dataKey: Buffer, put: boolean): BatchOperation {
  const indexKey = slotIndexKeyOfDataKey(dataKey);
  return put ? sealedPut(indexKey, emptyPayload) : { type: 'delete', key: indexKey };
}

/**
 * The engine operations that store records received as they were sent (a snapshot chunk, a memory
 * image frame): each record as it is, and for each data record its index record. Index records
 * received are left out: the receiver's index is derived from the data it receives, so it is
 * right whatever the sender's was (a sender of format 2 may hold index records left by an upgrade
 * that was interrupted and then run back to the previous version, which did not maintain them).
 */
export function receivedRecordOperations(
  records: readonly { readonly key: Buffer; readonly value: Buffer }[],
): BatchOperation[] {
  const operations: BatchOperation[] = [];
  for (const { key, value } of records) {
    if (isInRange(key, slotIndexRange)) continue;
    operations.push({ type: 'put', key, value });
    if (isInRange(key, dataRange)) operations.push(slotIndexOperationOf(key, true));
  }
  return operations;
}

function isInRange(key: Buffer, range: { readonly start: Buffer; readonly end: Buffer }): boolean {
  return Buffer.compare(key, range.start) >= 0 && Buffer.compare(key, range.end) < 0;
}

/**
 * An order-independent fingerprint of a set of index records: their number and the sum of their
 * keys' CRC-32s (modulo 2^32). Fed once from the data records (the index they call for) and once
 * from the index records (the index there is), it tells whether the two sets are equal without
 * sorting either: the `d` records are in key order, the `s` records in slot order. A missing,
 * extra or misplaced index record changes it but for a chance of one in 2^32; it defends against
 * lost writes and bugs, not against forgery, like the record checksums.
 */
export class SlotIndexFingerprint {
  #count = 0;
  #sum = 0;

  get count(): number {
    return this.#count;
  }

  /** Adds the index record that the data record `dataKey` calls for. */
  addDataKey(dataKey: Buffer): void {
    this.addIndexKey(slotIndexKeyOfDataKey(dataKey));
  }

  addIndexKey(indexKey: Uint8Array): void {
    this.#count++;
    this.#sum = (this.#sum + crc32(indexKey)) % 2 ** 32;
  }

  equals(other: SlotIndexFingerprint): boolean {
    return this.#count === other.#count && this.#sum === other.#sum;
  }
}

/**
 * Builds the slot index of `engine` from its data records, for a state of format 2: first deletes
 * every index record there is (a previous attempt's, or stale ones: see
 * `receivedRecordOperations`), then writes one for each data record, each step in batches of at
 * most `slotIndexRebuildBatchKeysMax` records, and last proves that the index found equals the
 * one the data calls for. Answers the number of index records.
 *
 * It writes no format record: the caller does, once the index is durable, so that a crash at any
 * point before leaves format 2, which the next open rebuilds from the start. Nothing else may
 * write to the engine meanwhile. A lost batch (the proof fails) is a storage fault of kind
 * `index-mismatch`.
 */
export async function rebuildSlotIndex(engine: Engine, folder: string): Promise<number> {
  const write = async (operations: BatchOperation[]): Promise<void> => {
    try {
      await engine.batch(operations);
    } catch (error) {
      throw writeFaultOf(error, folder);
    }
  };
  // Each step goes on after the last key of the one before, rather than from the start of the
  // range again, which would step over every record deleted so far (LevelDB keeps a tombstone of
  // each until compaction): quadratic in the records of an index that was nearly complete.
  let deleteFrom: Buffer = slotIndexRange.start;
  for (;;) {
    // Index records are deleted unread: their payloads are empty, and a damaged one goes too.
    const deletes: BatchOperation[] = [];
    const range = { start: deleteFrom, end: slotIndexRange.end, limit: slotIndexRebuildBatchKeysMax };
    let last: Buffer | undefined;
    try {
      for await (const { key } of engine.iterate(range)) {
        deletes.push({ type: 'delete', key });
        last = key;
      }
    } catch (error) {
      throw readFaultOf(error, { range }, folder);
    }
    if (last === undefined) break;
    await write(deletes);
    deleteFrom = keyAfter(last);
  }
  const expected = new SlotIndexFingerprint();
  let start: Buffer = dataRange.start;
  for (;;) {
    const puts: BatchOperation[] = [];
    let last: Buffer | undefined;
    // Each data record is verified as it is read: a damaged one is a fault now, not later.
    const range = { start, end: dataRange.end, limit: slotIndexRebuildBatchKeysMax };
    for await (const { key } of openRecords(engine, range, folder)) {
      puts.push(slotIndexOperationOf(key, true));
      expected.addDataKey(key);
      last = key;
    }
    if (last === undefined) break;
    await write(puts);
    start = keyAfter(last);
  }
  const found = new SlotIndexFingerprint();
  for await (const { key } of openRecords(engine, slotIndexRange, folder)) found.addIndexKey(key);
  if (!found.equals(expected)) {
    throw new StorageFault(
      `the slot index built holds ${found.count} records where the data calls for ${expected.count} (or other ones): a write was lost`,
      {
        kind: 'index-mismatch',
        keyRange: {
          start: describeEngineKey(slotIndexRange.start),
          end: describeEngineKey(slotIndexRange.end),
        },
        file: folder,
      },
    );
  }
  return expected.count;
}
