import { describe, expect, it } from 'vitest';

import { checkHistory, HistoryFormatError, type HistoryEvent } from '../../src/linearizability/index.js';
import { HistoryBuilder } from './history-builder.js';

describe('checkHistory: known-good histories', () => {
  it('accepts a history whose operations all failed (they did not happen)', () => {
    const h = new HistoryBuilder().invoke(1, 'put', 'a', 'x').fail(1, 'put', 'a');
    expect(checkHistory(h.events).result).toBe('linearizable');
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
    // Values are unique, so reads-from decided it, and says which rule broke.
    expect(check.perKey.get('a')?.method).toBe('reads-from');
    expect(check.counterexample?.reason).toMatch(
      /"x" is written only by #\d+, yet #\d+ \(put\) overwrote it/,
    );
    // The general search reaches the same three operations, and the prefix it could linearize.
    const searched = checkHistory(h.events, { readsFrom: false });
    expect(searched.perKey.get('a')?.method).toBe('search');
    expect(searched.counterexample?.operations).toHaveLength(3);
    expect(searched.counterexample?.longestLinearization.length).toBeGreaterThan(0);
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
    // Many concurrent writes of two values (so reads-from does not apply): more than 10 steps.
    for (let client = 0; client < 14; client += 1) h.invoke(client, 'put', 'a', `v${client % 2}`);
    h.invoke(99, 'get', 'a').ok(99, 'get', 'a', 'v1');
    for (let client = 0; client < 14; client += 1) h.ok(client, 'put', 'a');
    const check = checkHistory(h.events, { stepsPerKeyMax: 10 });
    expect(check.result).toBe('unknown');
    expect(check.perKey.get('a')?.result).toBe('unknown');
    expect(check.counterexample).toBeUndefined();
  });

  it('answers unknown when the time budget runs out', () => {
    const h = new HistoryBuilder();
    // 64 concurrent writes of two values, then reads that flip between them after every write
    // completed: not linearizable, and the general search must try every order of the writes.
    for (let client = 0; client < 64; client += 1) h.invoke(client, 'put', 'a', `v${client % 2}`);
    for (let client = 0; client < 64; client += 1) h.ok(client, 'put', 'a');
    h.invoke(99, 'get', 'a').ok(99, 'get', 'a', 'v0').invoke(99, 'get', 'a').ok(99, 'get', 'a', 'v1');
    expect(checkHistory(h.events, { timeBudgetMs: 0 }).result).toBe('unknown');
  });

  it('refuses an empty history: nothing recorded is an error, not linearizable', () => {
    expect(() => checkHistory([])).toThrow(HistoryFormatError);
    expect(() => checkHistory([])).toThrow(/empty/);
  });

  it('refuses a get that completed ok without a value, instead of reading it as absent', () => {
    const h = new HistoryBuilder().invoke(1, 'get', 'a').ok(1, 'get', 'a');
    expect(() => checkHistory(h.events)).toThrow(/a get that completed ok needs a value/);
    // null (absent) and a string are values; a get that failed or timed out carries none.
    expect(
      checkHistory(new HistoryBuilder().invoke(1, 'get', 'a').ok(1, 'get', 'a', null).events).result,
    ).toBe('linearizable');
    expect(checkHistory(new HistoryBuilder().invoke(1, 'get', 'a').info(1, 'get', 'a').events).result).toBe(
      'linearizable',
    );
    const notString = [
      { client: 1, type: 'invoke', f: 'get', key: 'a', time: 1 },
      { client: 1, type: 'ok', f: 'get', key: 'a', value: 7, time: 2 },
    ] as unknown as HistoryEvent[];
    expect(() => checkHistory(notString)).toThrow(HistoryFormatError);
  });

  it('refuses a cas whose expected value is missing or not a string (null means absent)', () => {
    const missing = new HistoryBuilder().invoke(1, 'cas', 'a', 'y').ok(1, 'cas', 'a');
    expect(() => checkHistory(missing.events)).toThrow(/cas needs expected/);
    const number = [
      { client: 1, type: 'invoke', f: 'cas', key: 'a', value: 'y', expected: 1, time: 1 },
      { client: 1, type: 'fail', f: 'cas', key: 'a', time: 2 },
    ] as unknown as HistoryEvent[];
    expect(() => checkHistory(number)).toThrow(/cas needs expected/);
    const absent = new HistoryBuilder().invoke(1, 'cas', 'a', 'y', null).ok(1, 'cas', 'a');
    expect(checkHistory(absent.events).result).toBe('linearizable');
  });

  it('refuses a put without a string value', () => {
    const h = new HistoryBuilder().invoke(1, 'put', 'a').ok(1, 'put', 'a');
    expect(() => checkHistory(h.events)).toThrow(/put needs a string value/);
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
