import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { generateRegisterHistory } from '../../src/linearizability/generate-history.js';
import {
  checkHistory,
  operationsFromHistory,
  searchLinearization,
  type HistoryCheck,
  type HistoryEvent,
  type Operation,
} from '../../src/linearizability/index.js';
import { HistoryBuilder } from './history-builder.js';

const defaultStepsPerKeyMax = 5_000_000;

/** The one key's check of a history on key `k`. */
function keyCheck(check: HistoryCheck) {
  const key = check.perKey.get('k') ?? check.perKey.get('a');
  expect(key).toBeDefined();
  return key!;
}

/** The largest number of writes that completed ok and all overlap one instant. */
function concurrentOkWritesMax(events: readonly HistoryEvent[]): number {
  const edges: { time: number; delta: number }[] = [];
  for (const op of operationsFromHistory(events)) {
    if (op.f === 'get' || op.status !== 'ok') continue;
    edges.push({ time: op.invokeTime, delta: 1 }, { time: op.returnTime, delta: -1 });
  }
  // Invocations before returns at equal times: the checker treats those as concurrent.
  edges.sort((a, b) => a.time - b.time || b.delta - a.delta);
  let now = 0;
  let max = 0;
  for (const edge of edges) {
    now += edge.delta;
    max = Math.max(max, now);
  }
  return max;
}

/** Replaces the value the read with invocation id `readId` returned. */
function withReadValue(
  events: readonly HistoryEvent[],
  read: Operation,
  value: string | null,
): HistoryEvent[] {
  return events.map((event) =>
    event.client === read.client && event.type === 'ok' && event.f === 'get' ? { ...event, value } : event,
  );
}

/**
 * A witness must be small and non-linearizable on its own (checked by the general search). The
 * shrinker keeps the deletes when a read of null is part of it (removing a write whose value is
 * observed could manufacture a violation), so those may add to `operationsMax`.
 */
function expectWitness(check: HistoryCheck, operationsMax = 8): void {
  const operations = check.counterexample?.operations ?? [];
  expect(operations.length).toBeGreaterThan(0);
  expect(operations.length).toBeLessThanOrEqual(operationsMax);
  expect(searchLinearization(operations, { stepsMax: 1_000_000 }).result).toBe('not-linearizable');
}

const bigHistoryOptions = fc.record({
  seed: fc.integer({ min: 0, max: 0x7fff_ffff }),
  bursts: fc.integer({ min: 2, max: 4 }),
  // Enough that the writes left after up to 10% indeterminate ones are still 64 or more: with 72,
  // one run in a few hundred kept 63 (CI at 1347d93, counterexample seed 15335439).
  burstWrites: fc.integer({ min: 96, max: 160 }),
  burstReads: fc.integer({ min: 20, max: 120 }),
  deleteShare: fc.constantFrom(0, 0.05, 0.1, 0.2),
  indeterminateShare: fc.constantFrom(0, 0.05, 0.1),
});

describe('reads-from: rules that need no search', () => {
  it('rejects a value seen again after it was overwritten, at once', () => {
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(1, 'put', 'a', 'y')
      .ok(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    const check = checkHistory(h.events);
    expect(check.result).toBe('not-linearizable');
    expect(keyCheck(check).method).toBe('reads-from');
    expect(check.counterexample?.reason).toContain('"x" is written only by #0, yet #2 (put) overwrote it');
  });

  it('rejects a single-writer value seen after an overwrite even when other values have many writers', () => {
    // "y" is written twice, so the key as a whole goes to the general search; "x" has one writer,
    // and the delete between its write and its read decides the key at once.
    const h = new HistoryBuilder();
    for (let client = 10; client < 60; client += 1) h.invoke(client, 'put', 'a', 'y');
    for (let client = 10; client < 60; client += 1) h.ok(client, 'put', 'a');
    h.invoke(1, 'put', 'a', 'x').ok(1, 'put', 'a').invoke(1, 'delete', 'a').ok(1, 'delete', 'a');
    h.invoke(2, 'get', 'a').ok(2, 'get', 'a', 'x');
    const check = checkHistory(h.events);
    expect(check.result).toBe('not-linearizable');
    expect(keyCheck(check).method).toBe('reads-from');
    expect(keyCheck(check).steps).toBeLessThan(200);
    expect(check.counterexample?.operations.map((op) => op.f)).toEqual(['put', 'delete', 'get']);
  });

  it('rejects a read of a value nobody wrote, and a read from the future', () => {
    const never = new HistoryBuilder().invoke(1, 'put', 'a', 'x').ok(1, 'put', 'a').invoke(2, 'get', 'a');
    const neverCheck = checkHistory(never.ok(2, 'get', 'a', 'z').events);
    expect(neverCheck.counterexample?.reason).toBe('#2 read "z", which no operation writes');
    const future = new HistoryBuilder()
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x')
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a');
    const futureCheck = checkHistory(future.events);
    expect(futureCheck.result).toBe('not-linearizable');
    expect(futureCheck.counterexample?.reason).toBe(
      '#0 read "x" and returned before #2, its only writer, was invoked',
    );
  });

  it('rejects two values each read after the other was', () => {
    // x and y written concurrently; then y is read, then x: one of them was overwritten by the other.
    const h = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .invoke(2, 'put', 'a', 'y')
      .ok(1, 'put', 'a')
      .ok(2, 'put', 'a')
      .invoke(3, 'get', 'a')
      .ok(3, 'get', 'a', 'y')
      .invoke(3, 'get', 'a')
      .ok(3, 'get', 'a', 'x');
    const check = checkHistory(h.events);
    expect(check.result).toBe('not-linearizable');
    expect(keyCheck(check).method).toBe('reads-from');
    expect(check.counterexample?.reason).toMatch(/must each come before the other/);
    expectWitness(check);
  });
});

describe('reads-from: reads of null', () => {
  it('lets a read of null read from the initial absence, a delete, or an indeterminate delete', () => {
    const initial = new HistoryBuilder()
      .invoke(2, 'get', 'a')
      .invoke(1, 'put', 'a', 'x')
      .ok(2, 'get', 'a', null)
      .ok(1, 'put', 'a');
    expect(checkHistory(initial.events).result).toBe('linearizable');
    const deleted = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(3, 'delete', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', null)
      .ok(3, 'delete', 'a');
    expect(checkHistory(deleted.events).result).toBe('linearizable');
    const indeterminate = new HistoryBuilder()
      .invoke(3, 'delete', 'a')
      .info(3, 'delete', 'a')
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', null);
    expect(checkHistory(indeterminate.events).result).toBe('linearizable');
    for (const h of [initial, deleted, indeterminate])
      expect(keyCheck(checkHistory(h.events)).method).toBe('reads-from');
  });

  it('rejects a lost write read as absent, and the initial absence read after a write', () => {
    const lost = new HistoryBuilder()
      .invoke(3, 'delete', 'a')
      .ok(3, 'delete', 'a')
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', null);
    const check = checkHistory(lost.events);
    expect(check.result).toBe('not-linearizable');
    expect(keyCheck(check).method).toBe('reads-from');
    expect(check.counterexample?.reason).toMatch(
      /#4 read null, but neither the initial absence nor any delete/,
    );
    expectWitness(check);
  });

  it('uses each indeterminate delete once: two reads of null around a write need two deletes', () => {
    const base = (): HistoryBuilder =>
      new HistoryBuilder()
        .invoke(9, 'delete', 'a')
        .info(9, 'delete', 'a')
        .invoke(1, 'put', 'a', 'x')
        .ok(1, 'put', 'a')
        .invoke(2, 'get', 'a')
        .ok(2, 'get', 'a', null)
        .invoke(1, 'put', 'a', 'y')
        .ok(1, 'put', 'a');
    const one = base().invoke(2, 'get', 'a').ok(2, 'get', 'a', null);
    expect(checkHistory(one.events).result).toBe('not-linearizable');
    const two = base()
      .invoke(8, 'delete', 'a')
      .info(8, 'delete', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', null);
    expect(checkHistory(two.events).result).toBe('linearizable');
    expect(keyCheck(checkHistory(two.events)).method).toBe('reads-from');
  });
});

describe('reads-from: the canonical assignments of reads of null', () => {
  it('keeps a read with the initial absence when a later delete block spans it too', () => {
    // Two reads of null at the start (the initial absence), a delete, a read of null after it. The
    // delete's block with the last read spans the second read too; that read may stay where it is.
    const events: HistoryEvent[] = [
      { client: 0, f: 'get', key: 'k', type: 'invoke', time: 0 },
      { client: 1, f: 'get', key: 'k', type: 'invoke', time: 0 },
      { client: 0, f: 'get', key: 'k', type: 'ok', time: 0, value: null },
      { client: 2, f: 'delete', key: 'k', type: 'invoke', time: 1 },
      { client: 1, f: 'get', key: 'k', type: 'ok', time: 1, value: null },
      { client: 2, f: 'delete', key: 'k', type: 'ok', time: 1 },
      { client: 3, f: 'get', key: 'k', type: 'invoke', time: 2 },
      { client: 3, f: 'get', key: 'k', type: 'ok', time: 2, value: null },
    ];
    const check = checkHistory(events);
    expect(check.result).toBe('linearizable');
    expect(keyCheck(check).method).toBe('reads-from');
  });
});

describe('reads-from: applies only when every value has one writer', () => {
  it('falls back to the general search when a value is written twice or a cas is present', () => {
    const twice = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    expect(keyCheck(checkHistory(twice.events)).method).toBe('search');
    // With two writers, "x" read after "y" overwrote it can come from the second write of "x".
    const rewritten = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(1, 'put', 'a', 'y')
      .ok(1, 'put', 'a')
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'x');
    expect(checkHistory(rewritten.events).result).toBe('linearizable');
    const cas = new HistoryBuilder()
      .invoke(1, 'put', 'a', 'x')
      .ok(1, 'put', 'a')
      .invoke(1, 'cas', 'a', 'y', 'x')
      .ok(1, 'cas', 'a')
      .invoke(2, 'get', 'a')
      .ok(2, 'get', 'a', 'y');
    expect(checkHistory(cas.events).result).toBe('linearizable');
    expect(keyCheck(checkHistory(cas.events)).method).toBe('search');
  });
});

describe('reads-from on generated histories with at least 64 concurrent writes on one key', () => {
  it('decides linearizable histories true, within the default budget', () => {
    fc.assert(
      fc.property(bigHistoryOptions, (options) => {
        const events = generateRegisterHistory(options);
        expect(concurrentOkWritesMax(events)).toBeGreaterThanOrEqual(64);
        const check = checkHistory(events);
        expect(check.result).toBe('linearizable');
        expect(keyCheck(check).method).toBe('reads-from');
        expect(keyCheck(check).steps).toBeLessThan(defaultStepsPerKeyMax / 2);
      }),
      { numRuns: 40 },
    );
  });

  it('finds the general search unable to decide the same kind of history in its budget', () => {
    // What the reduction buys: 64 concurrent writes are past what the search can order.
    const events = generateRegisterHistory({
      seed: 1,
      bursts: 2,
      burstWrites: 64,
      burstReads: 32,
      deleteShare: 0.1,
      indeterminateShare: 0,
    });
    expect(checkHistory(events, { readsFrom: false, stepsPerKeyMax: 200_000 }).result).toBe('unknown');
    expect(checkHistory(events).result).toBe('linearizable');
  });

  it('rejects a stale read after an overwrite, at once', () => {
    fc.assert(
      fc.property(bigHistoryOptions, fc.nat(), fc.nat(), (options, pickRead, pickWrite) => {
        const events = generateRegisterHistory(options);
        const operations = operationsFromHistory(events);
        const okPuts = operations.filter((op) => op.f === 'put' && op.status === 'ok');
        // A read r, a put w2 that returned before r began, a put w1 that returned before w2 began:
        // r cannot see w1's value.
        const reads = operations.filter(
          (read) =>
            read.f === 'get' &&
            okPuts.some(
              (w2) => w2.returnTime < read.invokeTime && okPuts.some((w1) => w1.returnTime < w2.invokeTime),
            ),
        );
        fc.pre(reads.length > 0);
        const read = reads[pickRead % reads.length]!;
        const stale = okPuts.filter((w1) =>
          okPuts.some((w2) => w1.returnTime < w2.invokeTime && w2.returnTime < read.invokeTime),
        );
        const check = checkHistory(withReadValue(events, read, stale[pickWrite % stale.length]!.input));
        expect(check.result).toBe('not-linearizable');
        expect(keyCheck(check).method).toBe('reads-from');
        expect(keyCheck(check).steps).toBeLessThanOrEqual(2 * operations.length);
        expectWitness(check);
      }),
      { numRuns: 40 },
    );
  });

  it('rejects a read of a value never written, and a read from the future', () => {
    fc.assert(
      fc.property(bigHistoryOptions, fc.nat(), fc.nat(), (options, pickRead, pickWrite) => {
        const events = generateRegisterHistory(options);
        const operations = operationsFromHistory(events);
        const reads = operations.filter((op) => op.f === 'get');
        const read = reads[pickRead % reads.length]!;
        const never = checkHistory(withReadValue(events, read, 'never-written'));
        expect(never.result).toBe('not-linearizable');
        expect(keyCheck(never).steps).toBeLessThanOrEqual(2 * operations.length);
        expect(never.counterexample?.operations).toEqual([
          expect.objectContaining({ output: 'never-written' }),
        ]);

        const later = operations.filter((op) => op.f === 'put' && op.invokeTime > read.returnTime);
        fc.pre(later.length > 0);
        const future = checkHistory(withReadValue(events, read, later[pickWrite % later.length]!.input));
        expect(future.result).toBe('not-linearizable');
        expect(keyCheck(future).method).toBe('reads-from');
        expect(future.counterexample?.reason).toMatch(/returned before #\d+, its only writer, was invoked/);
        expectWitness(future);
      }),
      { numRuns: 40 },
    );
  });

  it('rejects a lost write read as absent', () => {
    fc.assert(
      fc.property(
        bigHistoryOptions,
        fc.constantFrom(0, 0.005, 0.01),
        fc.nat(),
        (options, deleteShare, pick) => {
          const events = generateRegisterHistory({ ...options, deleteShare });
          const operations = operationsFromHistory(events);
          const deletes = operations.filter((op) => op.f === 'delete');
          // An acknowledged put w and a read r after it with no delete that can fall between.
          const pairs = operations.flatMap((read) =>
            read.f !== 'get' || read.output === null
              ? []
              : operations
                  .filter(
                    (write) =>
                      write.f === 'put' &&
                      write.status === 'ok' &&
                      write.returnTime < read.invokeTime &&
                      !deletes.some(
                        (d) => d.returnTime >= write.invokeTime && d.invokeTime <= read.returnTime,
                      ),
                  )
                  .map(() => read),
          );
          fc.pre(pairs.length > 0);
          const check = checkHistory(withReadValue(events, pairs[pick % pairs.length]!, null));
          expect(check.result).toBe('not-linearizable');
          expect(keyCheck(check).method).toBe('reads-from');
          expectWitness(check, 4 + deletes.length);
        },
      ),
      { numRuns: 40 },
    );
  });
});

/** Small histories on one key with a unique value per put; reads pick any value, or none. */
const smallUniqueHistory = fc
  .array(
    fc.record({
      f: fc.constantFrom<'get' | 'put' | 'delete'>('get', 'get', 'put', 'put', 'delete'),
      read: fc.integer({ min: -2, max: 6 }),
      outcome: fc.constantFrom<'ok' | 'info' | 'fail'>('ok', 'ok', 'ok', 'info', 'fail'),
      invokeTime: fc.nat(24),
      durationTime: fc.nat(12),
    }),
    { minLength: 1, maxLength: 9 },
  )
  .map((ops) => {
    const events: { event: HistoryEvent; order: number }[] = [];
    ops.forEach((op, client) => {
      const base = { client, f: op.f, key: 'k' };
      // -2: null; -1: a value nobody writes; else the value of put number `read` (if any).
      const read = op.read === -2 ? null : op.read === -1 ? 'never' : `p${op.read}`;
      events.push({
        event: {
          ...base,
          type: 'invoke',
          time: op.invokeTime,
          ...(op.f === 'put' ? { value: `p${client}` } : {}),
        },
        order: 0,
      });
      events.push({
        event: {
          ...base,
          type: op.outcome,
          time: op.invokeTime + op.durationTime,
          ...(op.f === 'get' && op.outcome === 'ok' ? { value: read } : {}),
        },
        order: 1,
      });
    });
    events.sort((a, b) => a.event.time - b.event.time || a.order - b.order);
    return events.map(({ event }) => event);
  });

/**
 * Small histories of a real register (unique values, deletes, indeterminate operations that did or
 * did not take effect), then one read changed to null or to another put's value, or left alone:
 * histories near the boundary, where a wrong rule shows.
 */
const smallPerturbedHistory = fc
  .record({
    ops: fc.array(
      fc.record({
        f: fc.constantFrom<'get' | 'put' | 'delete'>('get', 'get', 'get', 'put', 'put', 'delete', 'delete'),
        outcome: fc.constantFrom('ok', 'ok', 'ok', 'ok', 'info-applied', 'info-lost', 'fail'),
        invokeTime: fc.nat(30),
        toEffectTime: fc.nat(8),
        toReturnTime: fc.nat(8),
      }),
      { minLength: 1, maxLength: 12 },
    ),
    pickRead: fc.nat(),
    // < 0: null; else the value of the put picked by it; undefined: no change.
    change: fc.option(fc.integer({ min: -2, max: 20 }), { nil: undefined }),
  })
  .map(({ ops, pickRead, change }) => {
    const order = ops
      .map((op, client) => ({ op, client }))
      .sort(
        (a, b) =>
          a.op.invokeTime + a.op.toEffectTime - (b.op.invokeTime + b.op.toEffectTime) || a.client - b.client,
      );
    let register: string | null = null;
    const reads = new Map<number, string | null>();
    for (const { op, client } of order) {
      if (op.outcome === 'info-lost' || op.outcome === 'fail') continue;
      if (op.f === 'get') reads.set(client, register);
      else register = op.f === 'put' ? `p${client}` : null;
    }
    const okReads = [...reads.keys()].filter((client) => ops[client]!.outcome === 'ok');
    const puts = ops.flatMap((op, client) => (op.f === 'put' ? [client] : []));
    if (change !== undefined && okReads.length > 0) {
      const read = okReads[pickRead % okReads.length]!;
      reads.set(read, change < 0 || puts.length === 0 ? null : `p${puts[change % puts.length]}`);
    }
    const events: { event: HistoryEvent; order: number }[] = [];
    ops.forEach((op, client) => {
      const base = { client, f: op.f, key: 'k' };
      const type = op.outcome === 'ok' ? 'ok' : op.outcome === 'fail' ? 'fail' : 'info';
      events.push({
        event: {
          ...base,
          type: 'invoke',
          time: op.invokeTime,
          ...(op.f === 'put' ? { value: `p${client}` } : {}),
        },
        order: 0,
      });
      const returnTime = op.invokeTime + op.toEffectTime + op.toReturnTime;
      events.push({
        event: {
          ...base,
          type,
          time: returnTime,
          ...(op.f === 'get' && type === 'ok' ? { value: reads.get(client) ?? null } : {}),
        },
        order: 1,
      });
    });
    events.sort((a, b) => a.event.time - b.event.time || a.order - b.order);
    return events.map(({ event }) => event);
  });

/** Checks `events` both ways; both must agree, and a witness must be one. */
function expectAgreement(events: readonly HistoryEvent[]): HistoryCheck {
  const general = checkHistory(events, { readsFrom: false });
  const reduced = checkHistory(events);
  expect(general.result).not.toBe('unknown');
  expect(reduced.result).toBe(general.result);
  if (reduced.counterexample !== undefined) {
    expect(searchLinearization(reduced.counterexample.operations, { stepsMax: 1_000_000 }).result).toBe(
      'not-linearizable',
    );
  }
  return reduced;
}

describe('reads-from agrees with the general search', () => {
  it('on small random histories whose values are unique (property)', () => {
    const seen = { linearizable: 0, notLinearizable: 0, withOperations: 0, byReadsFrom: 0 };
    fc.assert(
      fc.property(smallUniqueHistory, (events) => {
        const reduced = expectAgreement(events);
        const key = reduced.perKey.get('k');
        if (key !== undefined) seen.withOperations += 1; // (none when every operation failed)
        if (key?.method === 'reads-from') seen.byReadsFrom += 1;
        seen[reduced.result === 'linearizable' ? 'linearizable' : 'notLinearizable'] += 1;
      }),
      { numRuns: 5000 },
    );
    // Both answers must be common, and reads-from must be what decided them, or this proves little.
    expect(seen.linearizable).toBeGreaterThan(1000);
    expect(seen.notLinearizable).toBeGreaterThan(1000);
    expect(seen.byReadsFrom).toBe(seen.withOperations);
  });

  it('on small perturbed histories of a real register (property)', () => {
    const seen = { linearizable: 0, notLinearizable: 0 };
    fc.assert(
      fc.property(smallPerturbedHistory, (events) => {
        const reduced = expectAgreement(events);
        seen[reduced.result === 'linearizable' ? 'linearizable' : 'notLinearizable'] += 1;
      }),
      { numRuns: 5000 },
    );
    expect(seen.linearizable).toBeGreaterThan(1000);
    expect(seen.notLinearizable).toBeGreaterThan(500);
  });
});
