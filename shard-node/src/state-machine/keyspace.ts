import { assertSlot, slotForKey } from '@impulse/common';

/**
 * How the replica lays out its engine. Every record kind lives under its own one-byte prefix, so
 * that kinds can never collide and each is one ordered range:
 *
 * | prefix | key                                          | value (payload)                                             |
 * | ------ | -------------------------------------------- | ----------------------------------------------------------- |
 * | `b`    | nothing: the chain base                      | the index up to which batches are flushed to tables (u64)   |
 * | `b`    | first index of an applied batch (u64)        | the batch's last index (u64)                                |
 * | `d`    | user key (UTF-8)                             | the value                                                   |
 * | `m`    | `applied`, `confstate`, `members`, `removed`, `format` | applied index and term; the ConfState; the member directory; the removed Raft ids; the format version (u32) |
 * | `q`    | request id                                   | the index that applied it (u64)                             |
 * | `i`    | index (u64, big-endian) + request id         | empty: the request ids in index order                       |
 * | `s`    | slot (u16, big-endian) + user key (UTF-8)    | empty: the slot index, one record per `d` record            |
 *
 * Every value is stored sealed with a checksum over its key and payload (`sealed-record.ts`).
 * User keys keep their byte order, so a range scan over user keys is a scan over the `d` range.
 * The `s` records make the keys of one slot one ordered range (`s` + slot), for slot migration:
 * each is written and deleted in the same atomic batch as its `d` record (decision 0011,
 * `slot-index.ts`). The `b` records prove on open that no applied batch is missing
 * (`state-machine.ts`); they are this replica's own bookkeeping, so a snapshot leaves them out. A
 * snapshot leaves the `s` records out too: the receiver derives them from the `d` records.
 */
const batchPrefix = 0x62; // 'b'
const dataPrefix = 0x64; // 'd'
const metaPrefix = 0x6d; // 'm'
const requestPrefix = 0x71; // 'q'
const requestOrderPrefix = 0x69; // 'i'
const slotIndexPrefix = 0x73; // 's'

export function dataKey(userKey: string): Buffer {
  const keyBytes = Buffer.byteLength(userKey, 'utf8');
  const key = Buffer.allocUnsafe(1 + keyBytes);
  key[0] = dataPrefix;
  key.write(userKey, 1, 'utf8');
  return key;
}

export function userKeyOf(engineKey: Uint8Array): string {
  if (engineKey[0] !== dataPrefix) throw new Error('not a data key');
  return Buffer.from(engineKey.buffer, engineKey.byteOffset + 1, engineKey.byteLength - 1).toString('utf8');
}

/** The bounds of the whole data keyspace, for scans. */
export const dataRange = { start: Buffer.from([dataPrefix]), end: Buffer.from([dataPrefix + 1]) } as const;

/** Slot indexes are two bytes, big-endian, so that the `s` records sort by slot first. */
const slotBytes = 2;

/** The slot index record of the user key whose UTF-8 bytes are `userKey`, in slot `slot`. */
export function slotIndexKey(slot: number, userKey: Uint8Array): Buffer {
  assertSlot(slot);
  const key = Buffer.allocUnsafe(1 + slotBytes + userKey.byteLength);
  key[0] = slotIndexPrefix;
  key.writeUInt16BE(slot, 1);
  key.set(userKey, 1 + slotBytes);
  return key;
}

/** The slot index record that goes with a data record (`d` + user key). */
export function slotIndexKeyOfDataKey(dataKey: Uint8Array): Buffer {
  if (dataKey[0] !== dataPrefix) throw new Error('not a data key');
  const userKey = dataKey.subarray(1);
  return slotIndexKey(slotForKey(userKey), userKey);
}

/** The user key's UTF-8 bytes inside a slot index record's key (a view, not a copy). */
export function userKeyOfSlotIndexKey(indexKey: Uint8Array): Buffer {
  if (indexKey[0] !== slotIndexPrefix || indexKey.byteLength < 1 + slotBytes)
    throw new Error('not a slot index key');
  return Buffer.from(
    indexKey.buffer,
    indexKey.byteOffset + 1 + slotBytes,
    indexKey.byteLength - 1 - slotBytes,
  );
}

/** The data record (`d` + user key) that a slot index record stands for. */
export function dataKeyOfSlotIndexKey(indexKey: Uint8Array): Buffer {
  const userKey = userKeyOfSlotIndexKey(indexKey);
  const key = Buffer.allocUnsafe(1 + userKey.byteLength);
  key[0] = dataPrefix;
  key.set(userKey, 1);
  return key;
}

/** The bounds of one slot's index records: its keys, in byte order. */
export function slotIndexRangeOf(slot: number): { readonly start: Buffer; readonly end: Buffer } {
  assertSlot(slot);
  const start = Buffer.from([slotIndexPrefix, 0, 0]);
  start.writeUInt16BE(slot, 1);
  // The slot after the last one (16384) still fits in two bytes: the bound stays within `s`.
  const end = Buffer.from([slotIndexPrefix, 0, 0]);
  end.writeUInt16BE(slot + 1, 1);
  return { start, end };
}

/** The bounds of the whole slot index, every slot's records. */
export const slotIndexRange = {
  start: Buffer.from([slotIndexPrefix]),
  end: Buffer.from([slotIndexPrefix + 1]),
} as const;

export const appliedKey = Buffer.from([metaPrefix, ...Buffer.from('applied')]);
export const confStateKey = Buffer.from([metaPrefix, ...Buffer.from('confstate')]);
/** The group's member directory (ids and addresses), written with each membership change. */
export const membersKey = Buffer.from([metaPrefix, ...Buffer.from('members')]);
/**
 * The Raft ids removed from the group, written with the member directory (decision 0014). A record
 * of its own rather than a field of `members`, so that a replica of the version before it, which
 * reads `members` as a plain list, takes a snapshot that carries it (and ignores it).
 */
export const removedMembersKey = Buffer.from([metaPrefix, ...Buffer.from('removed')]);

/**
 * The version of this layout, stored under `formatKey`: 1 was the layout without checksums, 2 the
 * layout without the slot index (`s`), which `open` converts to 3 by building the index.
 */
export const formatVersion = 3;
/** The format without the slot index, which this version converts (and receives in snapshots). */
export const formatVersionWithoutSlotIndex = 2;
export const formatKey = Buffer.from([metaPrefix, ...Buffer.from('format')]);

/** The chain base: batches up to this index are flushed to tables and their records pruned. */
export const chainBaseKey = Buffer.from([batchPrefix]);

/** The record of one applied batch, keyed by its first index so that records sort in index order. */
export function batchKey(firstIndex: number): Buffer {
  const key = Buffer.allocUnsafe(9);
  key[0] = batchPrefix;
  key.writeBigUInt64BE(BigInt(firstIndex), 1);
  return key;
}

/** The first index inside a batch key. */
export function firstIndexOfBatchKey(key: Uint8Array): number {
  if (key[0] !== batchPrefix || key.byteLength !== 9) throw new Error('not a batch key');
  return decodeUint64(key, 1);
}

/** The batch records, without the chain base (which sorts before them). */
export const batchRecordRange = {
  start: Buffer.from([batchPrefix, 0x00]),
  end: Buffer.from([batchPrefix + 1]),
} as const;

/** Every `b` record: the chain base and the batch records. */
export const batchRange = { start: chainBaseKey, end: Buffer.from([batchPrefix + 1]) } as const;

export function requestKey(requestId: Uint8Array): Buffer {
  const key = Buffer.allocUnsafe(1 + requestId.byteLength);
  key[0] = requestPrefix;
  key.set(requestId, 1);
  return key;
}

export function requestOrderKey(index: number, requestId: Uint8Array): Buffer {
  const key = Buffer.allocUnsafe(9 + requestId.byteLength);
  key[0] = requestOrderPrefix;
  key.writeBigUInt64BE(BigInt(index), 1);
  key.set(requestId, 9);
  return key;
}

/** The request id inside a request-order key. */
export function requestIdOfOrderKey(key: Uint8Array): Buffer {
  if (key[0] !== requestOrderPrefix || key.byteLength < 9) throw new Error('not a request-order key');
  return Buffer.from(key.buffer, key.byteOffset + 9, key.byteLength - 9);
}

export const requestOrderRange = {
  start: Buffer.from([requestOrderPrefix]),
  end: Buffer.from([requestOrderPrefix + 1]),
} as const;

export const requestRange = {
  start: Buffer.from([requestPrefix]),
  end: Buffer.from([requestPrefix + 1]),
} as const;

/** The smallest key after `key` in byte order: its one-byte extension. */
export function keyAfter(key: Uint8Array): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}

export function encodeUint64(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(8);
  bytes.writeBigUInt64BE(BigInt(value));
  return bytes;
}

export function decodeUint64(bytes: Uint8Array, offset = 0): number {
  const value = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readBigUInt64BE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('u64 beyond the safe integer range');
  return Number(value);
}
