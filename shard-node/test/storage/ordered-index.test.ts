import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { OrderedIndex } from '../../src/storage/ordered-index.js';

/** The reference: a sorted array of unique strings, kept sorted by the obvious means. */
class SortedArray {
  keys: string[] = [];

  insert(key: string): boolean {
    if (this.keys.includes(key)) return false;
    this.keys.push(key);
    this.keys.sort((left, right) => (left < right ? -1 : left > right ? 1 : 0));
    return true;
  }

  delete(key: string): boolean {
    const index = this.keys.indexOf(key);
    if (index === -1) return false;
    this.keys.splice(index, 1);
    return true;
  }

  keysFrom(
    from: string | undefined,
    fromInclusive: boolean,
    end: string | undefined,
    countMax: number,
  ): string[] {
    return this.keys
      .filter((key) => from === undefined || (fromInclusive ? key >= from : key > from))
      .filter((key) => end === undefined || key < end)
      .slice(0, countMax);
  }
}

type Operation =
  | { readonly kind: 'insert'; readonly key: string }
  | { readonly kind: 'delete'; readonly key: string }
  | {
      readonly kind: 'keysFrom';
      readonly from: string | undefined;
      readonly fromInclusive: boolean;
      readonly end: string | undefined;
      readonly countMax: number;
    };

/** latin1 strings over a few code units, so that keys collide and share prefixes. */
const keyArbitrary = fc
  .array(fc.constantFrom('\u0000', 'a', 'b', '\u007f', '\u0080', '\u00ff'), { maxLength: 3 })
  .map((characters) => characters.join(''));

const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('insert' as const), key: keyArbitrary }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: keyArbitrary }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('keysFrom' as const),
      from: fc.option(keyArbitrary, { nil: undefined }),
      fromInclusive: fc.boolean(),
      end: fc.option(keyArbitrary, { nil: undefined }),
      countMax: fc.nat(20),
    }),
  },
);

/** A seeded generator, so that a failing randomised test replays exactly. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

describe('OrderedIndex', () => {
  it('starts empty', () => {
    const index = new OrderedIndex();
    expect(index.size).toBe(0);
    expect(index.keys()).toEqual([]);
    expect(index.keysFrom('a', true, undefined, 10)).toEqual([]);
    expect(index.has('a')).toBe(false);
    expect(index.delete('a')).toBe(false);
    index.assertInvariants();
  });

  it('orders latin1 strings as unsigned bytes, shorter prefix first', () => {
    const index = new OrderedIndex();
    const keys = ['\u00ff', 'a', '\u0000', 'ab', '\u0080', 'a\u0000', '\u007f'];
    for (const key of keys) expect(index.insert(key)).toBe(true);
    expect(index.insert('a')).toBe(false);
    expect(index.keys()).toEqual(['\u0000', 'a', 'a\u0000', 'ab', '\u007f', '\u0080', '\u00ff']);
    expect(index.keysFrom('a', false, '\u0080', 10)).toEqual(['a\u0000', 'ab', '\u007f']);
    expect(index.keysFrom('a', true, undefined, 2)).toEqual(['a', 'a\u0000']);
    expect(index.keysFrom(undefined, true, 'a', 10)).toEqual(['\u0000']);
    expect(index.keysFrom(undefined, true, undefined, 0)).toEqual([]);
  });

  it('rejects a node capacity that cannot stay half full', () => {
    expect(() => new OrderedIndex({ nodeCapacity: 3 })).toThrow(/nodeCapacity/);
    expect(() => new OrderedIndex({ nodeCapacity: 4.5 })).toThrow(/nodeCapacity/);
  });

  for (const nodeCapacity of [4, 5, 8, 64]) {
    it(`agrees with a sorted array on random operations (node capacity ${nodeCapacity})`, () => {
      fc.assert(
        fc.property(fc.array(operationArbitrary, { maxLength: 200 }), (operations) => {
          const index = new OrderedIndex({ nodeCapacity });
          const reference = new SortedArray();
          for (const operation of operations) {
            switch (operation.kind) {
              case 'insert':
                expect(index.insert(operation.key)).toBe(reference.insert(operation.key));
                break;
              case 'delete':
                expect(index.delete(operation.key)).toBe(reference.delete(operation.key));
                break;
              case 'keysFrom': {
                const { from, fromInclusive, end, countMax } = operation;
                expect(index.keysFrom(from, fromInclusive, end, countMax)).toEqual(
                  reference.keysFrom(from, fromInclusive, end, countMax),
                );
                break;
              }
            }
            index.assertInvariants();
          }
          expect(index.keys()).toEqual(reference.keys);
          expect(index.size).toBe(reference.keys.length);
        }),
        { numRuns: 100 },
      );
    });
  }

  it('stays balanced through many inserts and deletes in random order', () => {
    const random = seededRandom(20240601);
    const index = new OrderedIndex({ nodeCapacity: 6 });
    const keys = Array.from({ length: 5000 }, (_, number) => `key ${String(number).padStart(5, '0')}`);
    const shuffled = [...keys].sort(() => random() - 0.5);
    for (const key of shuffled) index.insert(key);
    index.assertInvariants();
    expect(index.keys()).toEqual(keys);
    const deleted = shuffled.slice(0, 4000);
    for (const key of deleted) expect(index.delete(key)).toBe(true);
    index.assertInvariants();
    const remaining = keys.filter((key) => !deleted.includes(key));
    expect(index.keys()).toEqual(remaining);
    // Re-seeking after the last key, as the memory engine does, walks the whole set in order.
    const walked: string[] = [];
    for (let chunk = index.keysFrom(undefined, true, undefined, 7); chunk.length > 0;) {
      walked.push(...chunk);
      chunk = index.keysFrom(chunk.at(-1), false, undefined, 7);
    }
    expect(walked).toEqual(remaining);
    for (const key of remaining) index.delete(key);
    index.assertInvariants();
    expect(index.size).toBe(0);
  });
});
