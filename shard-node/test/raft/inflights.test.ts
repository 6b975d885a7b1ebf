import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Inflights } from '../../src/raft/inflights.js';

describe('Inflights', () => {
  it('fills up by count and frees up to an index', () => {
    const inflights = new Inflights(3, 0);
    inflights.add(1, 10);
    inflights.add(2, 10);
    expect(inflights.full()).toBe(false);
    inflights.add(3, 10);
    expect(inflights.full()).toBe(true);
    expect(() => inflights.add(4, 1)).toThrow(/full/);
    inflights.freeLE(2);
    expect(inflights.count).toBe(1);
    expect(inflights.bytes).toBe(10);
    inflights.freeLE(1);
    expect(inflights.count).toBe(1);
  });

  it('wraps around the ring buffer', () => {
    const inflights = new Inflights(3, 0);
    for (let i = 1; i <= 3; i++) inflights.add(i, 1);
    inflights.freeLE(2);
    inflights.add(4, 1);
    inflights.add(5, 1);
    expect(inflights.full()).toBe(true);
    inflights.freeLE(4);
    expect(inflights.count).toBe(1);
    inflights.freeFirstOne();
    expect(inflights.count).toBe(0);
  });

  it('fills up by bytes', () => {
    const inflights = new Inflights(100, 25);
    inflights.add(1, 10);
    inflights.add(2, 10);
    expect(inflights.full()).toBe(false);
    inflights.add(3, 10);
    expect(inflights.full()).toBe(true);
    inflights.freeLE(1);
    expect(inflights.full()).toBe(false);
    expect(inflights.bytes).toBe(20);
  });

  it('matches a simple model under random operations', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant('add'), fc.integer({ min: 0, max: 40 })), { maxLength: 200 }),
        (ops) => {
          const inflights = new Inflights(8, 50);
          const model: { index: number; bytes: number }[] = [];
          let next = 1;
          for (const op of ops) {
            if (op === 'add') {
              const full = model.length === 8 || model.reduce((s, m) => s + m.bytes, 0) >= 50;
              expect(inflights.full()).toBe(full);
              if (full) continue;
              const bytes = next % 7;
              inflights.add(next, bytes);
              model.push({ index: next, bytes });
              next++;
            } else {
              inflights.freeLE(op);
              while (model.length > 0 && model[0]!.index <= op) model.shift();
            }
            expect(inflights.count).toBe(model.length);
            expect(inflights.bytes).toBe(model.reduce((s, m) => s + m.bytes, 0));
          }
        },
      ),
    );
  });
});
