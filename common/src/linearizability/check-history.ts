import { performance } from 'node:perf_hooks';

import { operationsFromHistory, type HistoryEvent, type Operation } from './history.js';
import { searchLinearization, type CheckResult } from './search.js';
import { shrinkCounterexample } from './shrink.js';

export interface CheckOptions {
  /** Search steps allowed per key before that key is 'unknown'. Default 5,000,000. */
  readonly stepsPerKeyMax?: number;
  /** Wall-clock budget for the whole check in milliseconds; default none (deterministic). */
  readonly timeBudgetMs?: number;
  /** Shrink the counterexample by removing operations; default true. */
  readonly shrink?: boolean;
  /** Checks the shrinker may run; default 500. */
  readonly shrinkChecksMax?: number;
}

export interface KeyCheck {
  readonly result: CheckResult;
  readonly operationCount: number;
  readonly steps: number;
}

export interface Counterexample {
  readonly key: string;
  /**
   * Operations, ordered by invocation, that cannot be linearized together (shrunk, when
   * shrinking is on, so that dropping any one of them makes the rest linearizable).
   */
  readonly operations: readonly Operation[];
  /** Ids of the longest prefix the search could linearize in the full history of the key. */
  readonly longestLinearization: readonly number[];
}

export interface HistoryCheck {
  /** 'not-linearizable' if any key is; else 'unknown' if any key ran out of budget. */
  readonly result: CheckResult;
  readonly perKey: ReadonlyMap<string, KeyCheck>;
  readonly counterexample?: Counterexample;
}

const defaultStepsPerKeyMax = 5_000_000;
const defaultShrinkChecksMax = 500;
const shrinkStepsPerCheckMax = 200_000;

/**
 * Checks a key-value history for linearizability. A history is linearizable iff the history of
 * every key is (linearizability is compositional, Herlihy & Wing §3.3), so each key is searched on
 * its own: many small searches instead of one exponential one.
 */
export function checkHistory(events: readonly HistoryEvent[], options: CheckOptions = {}): HistoryCheck {
  const stepsMax = options.stepsPerKeyMax ?? defaultStepsPerKeyMax;
  const deadlineMs =
    options.timeBudgetMs === undefined ? undefined : performance.now() + options.timeBudgetMs;
  const isPastDeadline = deadlineMs === undefined ? undefined : () => performance.now() > deadlineMs;

  const byKey = new Map<string, Operation[]>();
  for (const op of operationsFromHistory(events)) {
    const list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, [op]);
    else list.push(op);
  }

  const perKey = new Map<string, KeyCheck>();
  let result: CheckResult = 'linearizable';
  let counterexample: Counterexample | undefined;
  for (const [key, allOperations] of byKey) {
    const operations = boundIndeterminateWrites(withoutUnobservedIndeterminateWrites(allOperations));
    const limits = isPastDeadline === undefined ? { stepsMax } : { stepsMax, isPastDeadline };
    const outcome = searchLinearization(operations, limits);
    perKey.set(key, { result: outcome.result, operationCount: operations.length, steps: outcome.steps });
    if (outcome.result === 'not-linearizable' && counterexample === undefined) {
      result = 'not-linearizable';
      const shrunk =
        options.shrink === false
          ? allOperations
          : // Shrink the operations as recorded; every candidate is reduced again before its search.
            shrinkCounterexample(
              allOperations,
              {
                checksMax: options.shrinkChecksMax ?? defaultShrinkChecksMax,
                stepsPerCheckMax: shrinkStepsPerCheckMax,
              },
              (candidate) => boundIndeterminateWrites(withoutUnobservedIndeterminateWrites(candidate)),
            );
      counterexample = { key, operations: shrunk, longestLinearization: outcome.longestLinearization };
    } else if (outcome.result === 'unknown' && result === 'linearizable') {
      result = 'unknown';
    }
  }
  return counterexample === undefined ? { result, perKey } : { result, perKey, counterexample };
}

/**
 * Drops `info` writes whose value nobody observed (no get returned it, no cas expected it). They
 * are free not to take effect, and taking effect could not help: a read after one would return
 * its value, and none did. Dropping them is exact, and it matters: each such write can otherwise
 * be placed anywhere after its invocation, which multiplies the search.
 */
export function withoutUnobservedIndeterminateWrites(operations: readonly Operation[]): Operation[] {
  const observed = new Set<string>();
  for (const op of operations) {
    if (op.f === 'get' && op.output !== null) observed.add(op.output);
    if (op.f === 'cas' && op.expected !== null) observed.add(op.expected);
  }
  return operations.filter(
    (op) => op.status !== 'info' || op.input === null || op.f === 'delete' || observed.has(op.input),
  );
}

/**
 * Gives an `info` write a finite return time when a completed read observed its value and no
 * other operation writes that value: the write must take effect before that read returns, so
 * the earliest such return bounds it. This is exact, and it keeps observed writes from staying
 * pending (and multiplying the search) until the end of the history.
 */
export function boundIndeterminateWrites(operations: readonly Operation[]): Operation[] {
  const writers = new Map<string, number>();
  const firstObservedTime = new Map<string, number>();
  for (const op of operations) {
    if (op.input !== null) writers.set(op.input, (writers.get(op.input) ?? 0) + 1);
    const observed = op.f === 'get' ? op.output : op.f === 'cas' ? op.expected : null;
    if (observed !== null && op.status === 'ok') {
      firstObservedTime.set(observed, Math.min(firstObservedTime.get(observed) ?? Infinity, op.returnTime));
    }
  }
  return operations.map((op) => {
    if (op.status !== 'info' || op.input === null || writers.get(op.input) !== 1) return op;
    const bound = firstObservedTime.get(op.input);
    return bound === undefined || bound < op.invokeTime ? op : { ...op, returnTime: bound };
  });
}
