import { describe, expect, it } from 'vitest';

import { checkHistory, HistoryFormatError } from '../../src/linearizability/index.js';
import { HistoryBuilder } from './history-builder.js';

describe('checkHistory: known-good histories', () => {
  it('accepts the empty history', () => {
    expect(checkHistory([]).result).toBe('linearizable');
  });

  it('accepts sequential put then get', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    expect(checkHistory(h.events).result).toBe('linearizable');
  });

  it('accepts a get of an absent key as null', () => {
    const h = new HistoryBuilder().invoke(1, 'get', 'a').ok(1, 'get', 'a', null);
    expect(checkHistory(h.events).result).toBe('linearizable');
  });

  it('accepts delete then get null', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(1, 'delete', 'a')
      .ok(1, 'delete', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', null);
    expect(checkHistory(h.events).result).toBe('linearizable');
  });

  it('accepts concurrent overlapping writes observed in either order', () => {
    for (const [first, second] of [
      ['x', 'y'],
      ['y', 'x'],
    ] as const) {
      const h = new HistoryBuilder()
        .invoke(1, 'put', 'a', 'x')
        .invoke(2, 'put', 'a', 'y')
        .ok(1, 'put', 'a')
        .ok(2, 'put', 'a')
        .invoke(3, 'get', 'a')
        .ok(3, 'get', 'a', second)
        .invoke(3, 'get', 'a')
        .ok(3, 'get', 'a', second);
      expect(checkHistory(h.events).result, `last write ${second} after ${first}`).toBe('linearizable');
    }
  });

  it('accepts a read concurrent with a write seeing either the old or the new value', () => {
    for (const seen of [null, 'x']) {
      const h = new HistoryBuilder()
        .invoke(1, 'put', 'a', 'x')
        .invoke(2, 'get', 'a')
        .ok(2, 'get', 'a', seen)
        .ok(1, 'put', 'a');
      expect(checkHistory(h.events).result).toBe('linearizable');
    }
  });

  it('allows an indeterminate write to have taken effect', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .info(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    expect(checkHistory(h.events).result).toBe('linearizable');
  });

  it('allows an indeterminate write not to have taken effect', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .info(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', null);
    expect(checkHistory(h.events).result).toBe('linearizable');
  });

  it('allows an indeterminate write to take effect long after its timeout', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .info(1, 'put', 'a')
      .invoke(2, 'put', 'a', 'y')
      .ok(2, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'y')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    expect(checkHistory(h.events).result).toBe('linearizable');
  });

  it('treats an invocation never completed as indeterminate', () => {
    const h = new HistoryBuilder().invoke(1, 'delete', 'a').invoke(2, 'get', 'a').ok(2, 'get', 'a', null);
    expect(checkHistory(h.events).result).toBe('linearizable');
  });

  it('ignores failed operations', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .fail(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', null);
    expect(checkHistory(h.events).result).toBe('linearizable');
  });

  it('checks compare-and-set', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(1, 'cas', 'a', 'y', 'x')
      .ok(1, 'cas', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'y');
    expect(checkHistory(h.events).result).toBe('linearizable');
    const bad = new HistoryBuilder()
      .invoke(1, 'cas', 'a', 'y', 'x')
      .ok(1, 'cas', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'y');
    expect(checkHistory(bad.events).result).toBe('not-linearizable');
  });

  it('checks keys independently', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .invoke(2, 'put', 'b', 'y')
      .ok(1, 'put', 'a')
      .ok(2, 'put', 'b')
      .invoke(1, 'get', 'b')
      .ok(1, 'get', 'b', 'y')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    const check = checkHistory(h.events);
    expect(check.result).toBe('linearizable');
    expect([...check.perKey.keys()].sort()).toEqual(['a', 'b']);
  });
});

describe('checkHistory: known-bad histories', () => {
  it('rejects a lost write', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', null);
    const check = checkHistory(h.events);
    expect(check.result).toBe('not-linearizable');
    expect(check.counterexample?.key).toBe('a');
    expect(check.counterexample?.operations.map((op) => op.f)).toEqual(['put', 'get']);
  });

  it('rejects a stale read', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(1, 'put', 'a', 'y')
      .ok(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    expect(checkHistory(h.events).result).toBe('not-linearizable');
  });

  it('rejects a read of a value never written', () => {
    const h = new HistoryBuilder().invoke(2, 'get', 'a').ok(2, 'get', 'a', 'ghost');
    expect(checkHistory(h.events).result).toBe('not-linearizable');
  });

  it('rejects a read that goes back in time (new value, then old value)', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x')
      .invoke(3, 'get', 'a')
      .ok(3, 'get', 'a', null)
      .ok(1, 'put', 'a');
    expect(checkHistory(h.events).result).toBe('not-linearizable');
  });

  it('rejects a get that sees a value after its delete completed', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(1, 'delete', 'a')
      .ok(1, 'delete', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    expect(checkHistory(h.events).result).toBe('not-linearizable');
  });

  it('rejects an indeterminate write observed before it was invoked', () => {
    const h = new HistoryBuilder()
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x')
      .invoke(1, 'put', 'a', 'x')
      .info(1, 'put', 'a');
    expect(checkHistory(h.events).result).toBe('not-linearizable');
  });

  it('reports the failing key only, and shrinks the counterexample to the conflicting operations', () => {
    const h = new HistoryBuilder();
    for (let i = 0; i < 20; i += 1) h.invoke(1, 'put', 'b', `v${i}`).ok(1, 'put', 'b');
    h.invoke(1, 'put', 'a', 'x').ok(1, 'put', 'a');
    for (let i = 0; i < 20; i += 1) h.invoke(2, 'put', 'a', `w${i}`).ok(2, 'put', 'a');
    h.invoke(3, 'get', 'a').ok(3, 'get', 'a', 'x');
    const check = checkHistory(h.events);
    expect(check.result).toBe('not-linearizable');
    expect(check.perKey.get('b')?.result).toBe('linearizable');
    expect(check.perKey.get('a')?.result).toBe('not-linearizable');
    // The stale read of x needs x written and a later completed write: three operations.
    expect(check.counterexample?.operations).toHaveLength(3);
    expect(check.counterexample?.longestLinearization.length).toBeGreaterThan(0);
  });
});

describe('checkHistory: indeterminate operations', () => {
  it('lets each indeterminate delete take effect at most once, in any order it needs', () => {
    const base = (): HistoryBuilder =>
      new HistoryBuilder()
        .invoke(1, 'put', 'a', 'x')
        .ok(1, 'put', 'a')
        .invoke(2, 'delete', 'a')
        .info(2, 'delete', 'a')
        .invoke(3, 'get', 'a')
        .ok(3, 'get', 'a', null)
        .invoke(1, 'put', 'a', 'y')
        .ok(1, 'put', 'a');
    // One delete cannot explain both reads of null after x and after y.
    const one = base().invoke(3, 'get', 'a').ok(3, 'get', 'a', null);
    expect(checkHistory(one.events).result).toBe('not-linearizable');
    // A second indeterminate delete, invoked after y was written, can.
    const two = base()
      .invoke(4, 'delete', 'a')
      .info(4, 'delete', 'a')
      .invoke(3, 'get', 'a')
      .ok(3, 'get', 'a', null);
    expect(checkHistory(two.events).result).toBe('linearizable');
  });

  it('lets an observed indeterminate write take effect once, before it is first observed', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .info(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x')
      .invoke(2, 'put', 'a', 'y')
      .ok(2, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    expect(checkHistory(h.events).result).toBe('not-linearizable');
  });

  it('stays fast with many indeterminate operations', () => {
    const h = new HistoryBuilder();
    for (let i = 0; i < 200; i += 1) {
      h.invoke(1000 + i, i % 3 === 0 ? 'delete' : 'put', 'a', i % 3 === 0 ? undefined : `v${i}`);
      h.info(1000 + i, i % 3 === 0 ? 'delete' : 'put', 'a');
      h.invoke(1, 'get', 'a').ok(1, 'get', 'a', i % 3 === 0 ? null : `v${i}`);
    }
    const check = checkHistory(h.events, { stepsPerKeyMax: 200_000 });
    expect(check.result).toBe('linearizable');
  });
});

describe('checkHistory: budgets and malformed input', () => {
  it('answers unknown, never linearizable, when the step budget runs out', () => {
    const h = new HistoryBuilder();
    // Many concurrent writes and a read that matches none: the search must explore a lot.
    for (let client = 0; client < 14; client += 1) h.invoke(client, 'put', 'a', `v${client}`);
    h.invoke(99, 'get', 'a').ok(99, 'get', 'a', 'none');
    for (let client = 0; client < 14; client += 1) h.ok(client, 'put', 'a');
    const check = checkHistory(h.events, { stepsPerKeyMax: 10 });
    expect(check.result).toBe('unknown');
    expect(check.perKey.get('a')?.result).toBe('unknown');
    expect(check.counterexample).toBeUndefined();
  });

  it('answers unknown when the time budget runs out', () => {
    const h = new HistoryBuilder();
    for (let client = 0; client < 64; client += 1) h.invoke(client, 'put', 'a', `v${client % 2}`);
    for (let client = 0; client < 64; client += 1) h.ok(client, 'put', 'a');
    h.invoke(99, 'get', 'a').ok(99, 'get', 'a', 'none');
    expect(checkHistory(h.events, { timeBudgetMs: 0 }).result).toBe('unknown');
  });

  it('rejects malformed histories', () => {
    expect(() => checkHistory([{ client: 1, type: 'ok', f: 'get', key: 'a', value: null, time: 1 }])).toThrow(
      HistoryFormatError,
    );
    const doubleInvoke = new HistoryBuilder().invoke(1, 'get', 'a').invoke(1, 'get', 'a');
    expect(() => checkHistory(doubleInvoke.events)).toThrow(HistoryFormatError);
    const mismatch = new HistoryBuilder().invoke(1, 'get', 'a').ok(1, 'get', 'b', null);
    expect(() => checkHistory(mismatch.events)).toThrow(HistoryFormatError);
  });
});
