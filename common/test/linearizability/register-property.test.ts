import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { checkHistory, type HistoryEvent, type OperationFunction } from '../../src/linearizability/index.js';

/** One operation of a generated client, with its timings relative to the previous operation. */
interface PlannedOperation {
  readonly f: OperationFunction;
  readonly key: string;
  readonly gapTicks: number;
  readonly toEffectTicks: number;
  readonly toReturnTicks: number;
  /** 'ok', or an outcome unknown to the client that did or did not take effect, or a failure. */
  readonly outcome: 'ok' | 'info-applied' | 'info-lost' | 'fail';
}

const plannedOperation = fc.record({
  f: fc.constantFrom<OperationFunction>('get', 'get', 'put', 'put', 'delete'),
  key: fc.constantFrom('a', 'b', 'c'),
  gapTicks: fc.nat(10),
  toEffectTicks: fc.nat(10),
  toReturnTicks: fc.nat(10),
  outcome: fc.constantFrom<PlannedOperation['outcome']>(
    'ok',
    'ok',
    'ok',
    'ok',
    'ok',
    'info-applied',
    'info-lost',
    'fail',
  ),
});

const plannedClients = fc.array(fc.array(plannedOperation, { maxLength: 12 }), {
  minLength: 1,
  maxLength: 5,
});

/**
 * Runs the plan against a real atomic register: every operation takes effect at one instant
 * between its invocation and its completion, in the order of those instants. The history is
 * therefore linearizable by construction.
 */
function executePlan(plan: readonly (readonly PlannedOperation[])[]): HistoryEvent[] {
  interface Timed {
    readonly client: number;
    readonly sequence: number;
    readonly operation: PlannedOperation;
    readonly value: string;
    readonly invokeTime: number;
    readonly effectTime: number;
    readonly returnTime: number;
  }
  const timed: Timed[] = [];
  plan.forEach((operations, client) => {
    let now = 0;
    for (const [sequence, operation] of operations.entries()) {
      const invokeTime = now + operation.gapTicks;
      const effectTime = invokeTime + operation.toEffectTicks;
      const returnTime = effectTime + operation.toReturnTicks;
      timed.push({
        client,
        sequence,
        operation,
        value: `${client}.${sequence}`,
        invokeTime,
        effectTime,
        returnTime,
      });
      now = returnTime;
      // A client whose operation may still be in flight is not reused.
      if (operation.outcome.startsWith('info')) break;
    }
  });
  const store = new Map<string, string>();
  const reads = new Map<Timed, string | null>();
  for (const op of [...timed].sort((a, b) => a.effectTime - b.effectTime)) {
    const { f, key, outcome } = op.operation;
    if (outcome === 'fail' || outcome === 'info-lost') continue;
    if (f === 'get') reads.set(op, store.get(key) ?? null);
    else if (f === 'put') store.set(key, op.value);
    else store.delete(key);
  }
  const events: { event: HistoryEvent; sequence: number }[] = [];
  for (const op of timed) {
    const { f, key, outcome } = op.operation;
    const base = { client: op.client, f, key };
    events.push({
      event: { ...base, type: 'invoke', time: op.invokeTime, ...(f === 'put' ? { value: op.value } : {}) },
      sequence: op.sequence * 2,
    });
    const type = outcome === 'ok' ? 'ok' : outcome === 'fail' ? 'fail' : 'info';
    events.push({
      event: {
        ...base,
        type,
        time: op.returnTime,
        ...(f === 'get' && type === 'ok' ? { value: reads.get(op) ?? null } : {}),
      },
      sequence: op.sequence * 2 + 1,
    });
  }
  events.sort((a, b) => a.event.time - b.event.time || a.sequence - b.sequence);
  return events.map((entry) => entry.event);
}

describe('checkHistory on histories of a real atomic register', () => {
  it('finds every such history linearizable', () => {
    fc.assert(
      fc.property(plannedClients, (plan) => {
        const events = executePlan(plan);
        fc.pre(events.length > 0); // an empty history is an error, tested on its own
        expect(checkHistory(events).result).toBe('linearizable');
      }),
      { numRuns: 300 },
    );
  });

  it('finds it not linearizable once one read returns a value never written', () => {
    fc.assert(
      fc.property(plannedClients, fc.nat(), (plan, pick) => {
        const events = executePlan(plan);
        const reads = events.flatMap((event, index) =>
          event.type === 'ok' && event.f === 'get' ? [index] : [],
        );
        fc.pre(reads.length > 0);
        const index = reads[pick % reads.length]!;
        events[index] = { ...events[index]!, value: 'never-written' };
        const check = checkHistory(events);
        expect(check.result).toBe('not-linearizable');
        expect(check.counterexample?.operations.some((op) => op.output === 'never-written')).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
