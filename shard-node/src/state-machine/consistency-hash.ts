import { createHash } from 'node:crypto';
import type { Entry } from '../storage/index.js';
import { dataRange } from './keyspace.js';

/**
 * The hash a replica computes of its state when it applies a consistency-check entry, so that the
 * leader can compare replicas (TiKV's and CockroachDB's consistency checks). Per-record checksums
 * (`sealed-record.ts`) cannot see a record that is missing, nor a record written wrong together
 * with its checksum; comparing a hash of the whole state across replicas, taken at the same log
 * index, does.
 */
export interface ConsistencyHash {
  /** The log index of the consistency-check entry: the state hashed is exactly the state at it. */
  readonly index: number;
  /**
   * SHA-256, hex, over the records hashed (see `hashRecords`); or, when the replica's slot index
   * does not match its data, `slotIndexMismatchHash` of it.
   */
  readonly hash: string;
  /** How many user keys the state holds at `index`. */
  readonly keys: number;
}

/**
 * Hashes records given in engine-key order: for each, `u32 key length, key, u32 payload length,
 * payload` (big-endian lengths, so that no two different sequences of records hash the same
 * bytes). Records under the data prefix are counted as user keys. The caller chooses the ranges:
 * the user data and the request ids, which every replica holds identically at a given index, and
 * not this replica's own bookkeeping (batch records, the chain base).
 *
 * Nor the slot index (`s`): it is derived from the data, and leaving it out keeps the hash what
 * format 2 computed, so that the replicas of a group agree while some of them still run the
 * version before the index (a rolling upgrade). The index is compared with the data by each
 * replica instead, and a replica whose index does not match reports `slotIndexMismatchHash`.
 */
export async function hashRecords(
  records: AsyncIterable<Entry>,
): Promise<{ readonly hash: string; readonly keys: number }> {
  const hash = createHash('sha256');
  const lengths = Buffer.allocUnsafe(4);
  let keys = 0;
  for await (const { key, value } of records) {
    lengths.writeUInt32BE(key.byteLength);
    hash.update(lengths);
    hash.update(key);
    lengths.writeUInt32BE(value.byteLength);
    hash.update(lengths);
    hash.update(value);
    if (key[0] === dataRange.start[0]) keys++;
  }
  return { hash: hash.digest('hex'), keys };
}

/**
 * The hash a replica reports at a consistency check when its slot index does not match its own
 * data (`slot-index.ts`, `SlotIndexFingerprint`): a hash that no sound replica reports, so that
 * the group's comparison finds the replica divergent, and it is rebuilt from its leader's snapshot
 * (which derives the index again), by the same path as a replica whose data diverged.
 */
export function slotIndexMismatchHash(hash: string): string {
  return createHash('sha256').update('slot index mismatch\n').update(hash).digest('hex');
}
