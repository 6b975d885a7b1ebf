import { slotForKey } from '@impulse/common';
import type { Entry } from '../../src/raft/index.js';
import { encodeCommand } from '../../src/state-machine/index.js';

/**
 * Helpers for the slot layout tests: keys that share slots (random keys almost never do, with
 * 16384 slots), byte order, and entries.
 */

/**
 * `slots` slots with `keysPerSlot` keys each, found by trying keys in order (the same keys every
 * run). Three shapes of key make byte order differ from JavaScript's string order: `ｋ` (U+FF4B,
 * UTF-8 EF BD 8B) sorts after `😀` (U+1F600, a surrogate pair D83D DE00) as UTF-16 code units,
 * and before it as UTF-8 bytes (F0 9F 98 80), which is the order the engine keeps.
 */
export function keysSharingSlots(slots: number, keysPerSlot: number): Map<number, string[]> {
  const bySlot = new Map<number, string[]>();
  const full: number[] = [];
  for (let n = 0; full.length < slots; n++) {
    for (const key of [`k${n}`, `ｋ${n}`, `😀${n}`]) {
      const slot = slotForKey(key);
      const keys = bySlot.get(slot) ?? [];
      if (keys.length === keysPerSlot) continue;
      keys.push(key);
      bySlot.set(slot, keys);
      if (keys.length === keysPerSlot && full.length < slots) full.push(slot);
    }
  }
  return new Map(full.map((slot) => [slot, bySlot.get(slot) as string[]]));
}

/** Orders user keys as the engine does: by their UTF-8 bytes. */
export function byUtf8(left: string, right: string): number {
  return Buffer.compare(Buffer.from(left, 'utf8'), Buffer.from(right, 'utf8'));
}

export function putEntry(index: number, key: string, value: Uint8Array, requestId = ''): Entry {
  return {
    index,
    term: 1,
    type: 'normal',
    data: encodeCommand({ operation: 'put', requestId: Buffer.from(requestId), key, value }),
  };
}

export function deleteEntry(index: number, key: string, requestId = ''): Entry {
  return {
    index,
    term: 1,
    type: 'normal',
    data: encodeCommand({ operation: 'delete', requestId: Buffer.from(requestId), key }),
  };
}

export function checkEntry(index: number): Entry {
  return {
    index,
    term: 1,
    type: 'normal',
    data: encodeCommand({ operation: 'consistency-check', requestId: Buffer.from(`check-${index}`) }),
  };
}
