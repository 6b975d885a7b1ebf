import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SlotTable, slotCount, slotForKey } from '@impulse/common';

/** Deterministic pseudo-random keys of 1 to 24 printable characters: the same on every run. */
function randomKeys(count: number, seed: number): string[] {
  const keys: string[] = [];
  for (let index = 0; index < count; index++) {
    const digest = createHash('sha256').update(`${seed}:${index}`).digest();
    const length = 1 + ((digest[0] ?? 0) % 24);
    let key = '';
    for (let position = 1; position <= length; position++)
      key += String.fromCharCode(33 + ((digest[position] ?? 0) % 94));
    keys.push(key);
  }
  return keys;
}

describe('slotForKey', () => {
  it('is CRC-32 of the UTF-8 bytes modulo 16384, pinned forever', () => {
    expect(slotCount).toBe(16384);
    expect(slotForKey('')).toBe(0);
    expect(slotForKey('a')).toBe(15939);
    expect(slotForKey('hello')).toBe(9862);
    expect(slotForKey('héllo')).toBe(slotForKey(Buffer.from('héllo', 'utf8')));
  });

  it('always lands in 0..16383', () => {
    for (const key of randomKeys(10_000, 7)) {
      const slot = slotForKey(key);
      expect(Number.isInteger(slot) && slot >= 0 && slot < slotCount).toBe(true);
    }
  });
});

describe('SlotTable', () => {
  it('spreads 100,000 random keys over 3 groups within ±10% of even', () => {
    const table = SlotTable.fromGroups(['g1', 'g2', 'g3'], 1);
    const counts = new Map<string, number>();
    const keys = randomKeys(100_000, 42);
    for (const key of keys) {
      const group = table.groupForKey(key);
      counts.set(group, (counts.get(group) ?? 0) + 1);
    }
    const even = keys.length / 3;
    for (const group of ['g1', 'g2', 'g3']) {
      const count = counts.get(group) ?? 0;
      expect(Math.abs(count - even) / even, `${group}: ${count} keys`).toBeLessThan(0.1);
    }
  });

  it('is deterministic and independent of the order groups are listed in', () => {
    const a = SlotTable.fromGroups(['g1', 'g2', 'g3'], 1);
    const b = SlotTable.fromGroups(['g3', 'g1', 'g2'], 1);
    expect(a.movedSlots(b)).toEqual([]);
  });

  it('moves about 1/4 of the slots to a 4th group, and none between old groups', () => {
    const before = SlotTable.fromGroups(['g1', 'g2', 'g3'], 1);
    const after = SlotTable.fromGroups(['g1', 'g2', 'g3', 'g4'], 2);
    const moved = before.movedSlots(after);
    const fraction = moved.length / slotCount;
    console.log(
      `slot table: adding a 4th group moves ${moved.length} of ${slotCount} slots (${(fraction * 100).toFixed(1)}%)`,
    );
    expect(fraction).toBeGreaterThan(0.2);
    expect(fraction).toBeLessThan(0.3);
    expect(moved.every((move) => move.to === 'g4')).toBe(true);
    const counts = after.slotCountsByGroup();
    expect(Object.values(counts).reduce((sum, count) => sum + count, 0)).toBe(slotCount);
  });

  it('rejects an empty or duplicated group list', () => {
    expect(() => SlotTable.fromGroups([], 1)).toThrow();
    expect(() => SlotTable.fromGroups(['g1', 'g1'], 1)).toThrow();
  });
});
