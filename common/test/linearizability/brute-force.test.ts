import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  checkHistory,
  operationsFromHistory,
  stepRegister,
  type HistoryEvent,
  type Operation,
  type RegisterState,
} from '../../src/linearizability/index.js';

/**
 * The definition, searched exhaustively: some order of the operations that respects real time,
 * in which every completed operation takes effect and any indeterminate one may or may not.
 */
function bruteForceLinearizable(operations: readonly Operation[]): boolean {
  const search = (remaining: readonly Operation[], state: RegisterState): boolean => {
    if (remaining.every((op) => op.status === 'info')) return true;
    return remaining.some((candidate) => {
      // An operation that returned before `candidate` was invoked must come first.
      if (remaining.some((other) => other.returnTime < candidate.invokeTime)) return false;
      const next = stepRegister(state, candidate);
      const rest = remaining.filter((op) => op !== candidate);
      return (
        (next !== undefined && search(rest, next)) || (candidate.status === 'info' && search(rest, state))
      );
    });
  };
  return search(operations, null);
}

const values = ['x', 'y', 'z'];

/** Random small histories on one key, not necessarily produced by a register. */
const arbitraryHistory = fc
  .array(
    fc.record({
      f: fc.constantFrom<'get' | 'put' | 'delete'>('get', 'put', 'delete'),
      value: fc.constantFrom(...values),
      read: fc.constantFrom<string | null>(null, ...values),
      outcome: fc.constantFrom<'ok' | 'info' | 'fail'>('ok', 'ok', 'info', 'fail'),
      invokeTime: fc.nat(20),
      durationTime: fc.nat(20),
    }),
    // An empty history is an error, not a history to compare.
    { minLength: 1, maxLength: 7 },
  )
  .map((ops) => {
    const events: { event: HistoryEvent; order: number }[] = [];
    ops.forEach((op, client) => {
      const base = { client, f: op.f, key: 'k' };
      events.push({
        event: {
          ...base,
          type: 'invoke',
          time: op.invokeTime,
          ...(op.f === 'put' ? { value: op.value } : {}),
        },
        order: 0,
      });
      events.push({
        event: {
          ...base,
          type: op.outcome,
          time: op.invokeTime + op.durationTime,
          ...(op.f === 'get' && op.outcome === 'ok' ? { value: op.read } : {}),
        },
        order: 1,
      });
    });
    events.sort((a, b) => a.event.time - b.event.time || a.order - b.order);
    return events.map(({ event }) => event);
  });

describe('checkHistory agrees with an exhaustive search', () => {
  it('shrinks to a witness of the recorded history: a bound justified by a read does not outlive the read', () => {
    // The read of x bounds the indeterminate put of x to before it; a shrink that drops the read
    // must not keep the bound, or the "witness" [put x (info), get null] would be linearizable.
    const events: HistoryEvent[] = [
      { client: 0, f: 'get', key: 'k', type: 'invoke', time: 0 },
      { client: 1, f: 'put', key: 'k', type: 'invoke', time: 0, value: 'x' },
      { client: 0, f: 'get', key: 'k', type: 'ok', time: 0, value: 'x' },
      { client: 1, f: 'put', key: 'k', type: 'info', time: 0 },
      { client: 2, f: 'get', key: 'k', type: 'invoke', time: 1 },
      { client: 2, f: 'get', key: 'k', type: 'ok', time: 1, value: null },
    ];
    const check = checkHistory(events);
    expect(check.result).toBe('not-linearizable');
    expect(bruteForceLinearizable(check.counterexample?.operations ?? [])).toBe(false);
  });

  it('on small random histories with indeterminate operations', () => {
    const outcomes = { linearizable: 0, notLinearizable: 0 };
    fc.assert(
      fc.property(arbitraryHistory, (events) => {
        const expected = bruteForceLinearizable(operationsFromHistory(events));
        outcomes[expected ? 'linearizable' : 'notLinearizable'] += 1;
        const check = checkHistory(events);
        expect(check.result).toBe(expected ? 'linearizable' : 'not-linearizable');
        // The shrunk counterexample must itself be a witness.
        if (check.counterexample !== undefined) {
          expect(bruteForceLinearizable(check.counterexample.operations)).toBe(false);
        }
      }),
      { numRuns: 2000 },
    );
    // Both answers must be common, or the comparison proves little.
    expect(outcomes.linearizable).toBeGreaterThan(200);
    expect(outcomes.notLinearizable).toBeGreaterThan(200);
  });
});
