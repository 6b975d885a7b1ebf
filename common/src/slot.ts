import { crc32 } from 'node:zlib';

/**
 * The slot of a key: CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and PNG) of the key's UTF-8
 * bytes, modulo 16384. It is stable forever: changing it would move every key.
 *
 * Reference values (a test pins them): slotForKey('') is 0, slotForKey('a') is 15939 and
 * slotForKey('hello') is 9862.
 */
export const slotCount = 16384;

export function slotForKey(key: string | Uint8Array): number {
  return crc32(key) % slotCount;
}

export function assertSlot(slot: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= slotCount) {
    throw new Error(`slot out of range: ${slot}`);
  }
}
