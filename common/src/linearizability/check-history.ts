import { performance } from 'node:perf_hooks';

import { HistoryFormatError, operationsFromHistory, type HistoryEvent, type Operation } from './history.js';
import { decideByReadsFrom } from './reads-from.js';
import { searchLinearization, type CheckResult, type SearchLimits } from './search.js';
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
  /**
   * Decide keys whose values have one writer each by reads-from (reads-from.ts) before searching;
   * default true. Off, every key goes to the general search (to compare the two).
   */
  readonly readsFrom?: boolean;
}

/** How a key was decided: by the reads-from reduction, or by the general search. */
export type DecisionMethod = 'reads-from' | 'search';

export interface KeyCheck {
  readonly result: CheckResult;
  readonly operationCount: number;
  readonly steps: number;
  readonly method: DecisionMethod;
}

export interface Counterexample {
  readonly key: string;
  /**
   * Operations, ordered by invocation, that cannot be linearized together (shrunk, when
   * shrinking is on, so that dropping any one of them makes the rest linearizable).
   */
  readonly operations: readonly Operation[];
  /**
   * Ids of the longest prefix the general search could linearize in the full history of the key;
   * empty when the reads-from reduction decided the key (it builds no linearization).
   */
  readonly longestLinearization: readonly number[];
  /** The rule the operations break, in words, when the reads-from reduction decided the key. */
  readonly reason?: string;
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
 * every key is (linearizability is compositional, Herlihy & Wing §3.3), so each key is decided on
 * its own: many small problems instead of one exponential one. A history with no events is an
 * error (`HistoryFormatError`), never vacuously linearizable: it is what a broken recorder writes.
 */
export function checkHistory(events: readonly HistoryEvent[], options: CheckOptions = {}): HistoryCheck {
  if (events.length === 0) throw new HistoryFormatError('the history is empty: it holds no events');
  const stepsMax = options.stepsPerKeyMax ?? defaultStepsPerKeyMax;
  const readsFrom = options.readsFrom ?? true;
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
    const limits = isPastDeadline === undefined ? { stepsMax } : { stepsMax, isPastDeadline };
    const decision = decideKey(allOperations, limits, readsFrom);
    perKey.set(key, {
      result: decision.result,
      operationCount: decision.operationCount,
      steps: decision.steps,
      method: decision.method,
    });
    if (decision.result === 'not-linearizable' && counterexample === undefined) {
      result = 'not-linearizable';
      counterexample = {
        key,
        operations:
          options.shrink === false ? allOperations : shrinkDecision(allOperations, decision, options),
        longestLinearization: decision.longestLinearization,
        ...(decision.reason === undefined ? {} : { reason: decision.reason }),
      };
    } else if (decision.result === 'unknown' && result === 'linearizable') {
      result = 'unknown';
    }
  }
  return counterexample === undefined ? { result, perKey } : { result, perKey, counterexample };
}

interface KeyDecision {
  readonly result: CheckResult;
  readonly operationCount: number;
  readonly steps: number;
  readonly method: DecisionMethod;
  readonly longestLinearization: readonly number[];
  readonly witness?: readonly Operation[];
  readonly reason?: string;
}

/**
 * Decides one key: by reads-from when every value has one writer (it then answers in about
 * O(n log n), whatever the concurrency), else, or when its search of reads of null runs out of
 * half the budget, by the general search with what is left.
 */
function decideKey(operations: readonly Operation[], limits: SearchLimits, readsFrom: boolean): KeyDecision {
  const reduced = withoutUnobservedIndeterminateWrites(operations);
  let steps = 0;
  if (readsFrom) {
    const outcome = decideByReadsFrom(reduced, {
      ...limits,
      stepsMax: Math.max(1, Math.floor(limits.stepsMax / 2)),
    });
    if (outcome.result === 'linearizable' || outcome.result === 'not-linearizable') {
      return {
        result: outcome.result,
        operationCount: reduced.length,
        steps: outcome.steps,
        method: 'reads-from',
        longestLinearization: [],
        ...(outcome.witness === undefined ? {} : { witness: outcome.witness }),
        ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
      };
    }
    steps = outcome.steps;
  }
  const bounded = boundIndeterminateWrites(reduced);
  // The reduction's backtracking had half the budget at most; the search gets the rest.
  const remaining = Math.max(1, limits.stepsMax - Math.min(steps, Math.floor(limits.stepsMax / 2)));
  const outcome = searchLinearization(bounded, { ...limits, stepsMax: remaining });
  return {
    result: outcome.result,
    operationCount: bounded.length,
    steps: steps + outcome.steps,
    method: 'search',
    longestLinearization: outcome.longestLinearization,
  };
}

/**
 * Shrinks the operations of a key found not linearizable: from the reduction's witness when it gave
 * one (a handful of operations) and the witness is one on its own, else from all of them.
 */
function shrinkDecision(
  allOperations: readonly Operation[],
  decision: KeyDecision,
  options: CheckOptions,
): Operation[] {
  const readsFrom = options.readsFrom ?? true;
  const decide = (candidate: readonly Operation[], stepsMax: number): CheckResult =>
    decideKey(candidate, { stepsMax }, readsFrom).result;
  const witness = decision.witness;
  const start =
    witness !== undefined && decide(witness, shrinkStepsPerCheckMax) === 'not-linearizable'
      ? witness
      : allOperations;
  // Shrink the operations as recorded; every candidate is reduced again before it is decided.
  return shrinkCounterexample(
    start,
    {
      checksMax: options.shrinkChecksMax ?? defaultShrinkChecksMax,
      stepsPerCheckMax: shrinkStepsPerCheckMax,
    },
    decide,
  );
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
