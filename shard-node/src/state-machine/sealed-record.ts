import { crc32 } from 'node:zlib';
import type { BatchOperation, Engine, EngineSnapshot, Entry, RangeOptions } from '../storage/index.js';
import { StorageFault, describeEngineKey, readFaultOf } from './storage-fault.js';

/**
 * Every value the state machine stores is sealed: `u32 checksum (big-endian), payload`, where the
 * checksum is CRC-32 over the engine key and then the payload. Covering the key means a value found
 * under another key (a damaged index block, a misdirected write) fails as surely as altered bytes.
 * CRC-32 (node:zlib, in native code) finds every burst of errors up to 32 bits and all but one in
 * 2^32 of the rest, which is what a flipped bit, a torn sector or a stale block give; it is not a
 * defence against someone who means to forge a value, and need not be.
 */

export const recordChecksumBytes = 4;

/** The checksum of a record: CRC-32 over the key, continued over the payload. */
function checksumOf(key: Uint8Array, payload: Uint8Array): number {
  return crc32(payload, crc32(key));
}

/** The stored form of `payload` under `key`. */
export function sealRecord(key: Uint8Array, payload: Uint8Array): Buffer {
  const stored = Buffer.allocUnsafe(recordChecksumBytes + payload.byteLength);
  stored.writeUInt32BE(checksumOf(key, payload), 0);
  stored.set(payload, recordChecksumBytes);
  return stored;
}

/** Whether `stored` is a sealed record of `key` whose checksum matches. */
export function isSealedRecordOf(key: Uint8Array, stored: Uint8Array): boolean {
  if (stored.byteLength < recordChecksumBytes) return false;
  const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  return bytes.readUInt32BE(0) === checksumOf(key, bytes.subarray(recordChecksumBytes));
}

/**
 * The payload of a sealed record, a view into `stored`, once its checksum is verified. A record too
 * short to hold a checksum, or whose checksum does not match, is a storage fault, never a value.
 */
export function openRecord(key: Uint8Array, stored: Buffer, file: string | undefined): Buffer {
  if (stored.byteLength < recordChecksumBytes) {
    throw new StorageFault(
      `record ${describeEngineKey(key)} is ${stored.byteLength} bytes, too short to be sealed`,
      {
        kind: 'undecodable',
        key: describeEngineKey(key),
        ...(file === undefined ? {} : { file }),
      },
    );
  }
  const payload = stored.subarray(recordChecksumBytes);
  if (stored.readUInt32BE(0) !== checksumOf(key, payload)) {
    throw new StorageFault(`record ${describeEngineKey(key)} does not match its checksum`, {
      kind: 'checksum-mismatch',
      key: describeEngineKey(key),
      ...(file === undefined ? {} : { file }),
    });
  }
  return payload;
}

/** A batch operation that stores `payload` sealed under `key`. */
export function sealedPut(key: Buffer, payload: Uint8Array): BatchOperation {
  return { type: 'put', key, value: sealRecord(key, payload) };
}

/**
 * The records of a range of `source`, each verified, with their payloads as values. A failed read
 * and a record that fails its checksum are storage faults (`file` names the engine's folder).
 */
export async function* openRecords(
  source: Engine | EngineSnapshot,
  range: RangeOptions,
  file: string | undefined,
): AsyncGenerator<Entry, void, undefined> {
  const iteration = source.iterate(range);
  try {
    for (;;) {
      let next: IteratorResult<Entry>;
      try {
        next = await iteration.next();
      } catch (error) {
        throw readFaultOf(error, { range }, file);
      }
      if (next.done === true) return;
      const { key, value } = next.value;
      yield { key, value: openRecord(key, value, file) };
    }
  } finally {
    // A caller that stops early releases the engine's view at once, not when the engine closes.
    await iteration.return?.();
  }
}
