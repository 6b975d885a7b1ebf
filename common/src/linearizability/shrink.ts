import type { Operation } from './history.js';
import type { RegisterState } from './register-model.js';
import { searchLinearization, type CheckResult } from './search.js';

export interface ShrinkLimits {
  /** Linearizability checks the shrinker may run. */
  readonly checksMax: number;
  /** Step budget of each check; a check that runs out keeps the operations it tried to drop. */
  readonly stepsPerCheckMax: number;
}

/**
 * Shrinks a non-linearizable set of operations on one key by removing operations while what is
 * left is still certainly not linearizable (delta debugging: halves first, then single
 * operations). The result is 1-minimal when the budget suffices.
 *
 * Only monotone removals are tried: reads, and writes whose value (null for a delete) no remaining
 * operation observed. Such a removal never turns a linearizable set into a non-linearizable one,
 * so the shrunk set is a true witness: every violation in it is one of the original history.
 * Removing, say, the delete that explains a read of null would manufacture a violation instead.
 */
export function shrinkCounterexample(
  operations: readonly Operation[],
  limits: ShrinkLimits,
  decide: (candidate: readonly Operation[], stepsMax: number) => CheckResult = (candidate, stepsMax) =>
    searchLinearization(candidate, { stepsMax }).result,
): Operation[] {
  let current = [...operations];
  let checks = 0;
  // `decide` applies the checker's reductions to each candidate afresh: a reduction justified by
  // an operation (an indeterminate write bounded by the read that saw it) must not outlive it.
  const stillFails = (candidate: readonly Operation[], removed: readonly Operation[]): boolean => {
    if (candidate.length === 0 || !isMonotoneRemoval(candidate, removed)) return false;
    checks += 1;
    return decide(candidate, limits.stepsPerCheckMax) === 'not-linearizable';
  };
  let chunkSize = Math.max(1, Math.floor(current.length / 2));
  while (checks < limits.checksMax) {
    let removedAny = false;
    for (let start = 0; start < current.length && checks < limits.checksMax;) {
      const removed = current.slice(start, start + chunkSize);
      const candidate = [...current.slice(0, start), ...current.slice(start + chunkSize)];
      if (stillFails(candidate, removed)) {
        current = candidate;
        removedAny = true;
      } else {
        start += chunkSize;
      }
    }
    if (chunkSize === 1 && !removedAny) break;
    if (!removedAny) chunkSize = Math.max(1, Math.floor(chunkSize / 2));
  }
  return current;
}

/** The value an operation writes (a delete writes null), or undefined for a read. */
function writtenValue(op: Operation): RegisterState | undefined {
  if (op.f === 'delete') return null;
  return op.f === 'put' || op.f === 'cas' ? op.input : undefined;
}

/** The value an operation observed, or undefined when it observed nothing. */
function observedValue(op: Operation): RegisterState | undefined {
  if (op.f === 'get') return op.output;
  return op.f === 'cas' ? op.expected : undefined;
}

function isMonotoneRemoval(candidate: readonly Operation[], removed: readonly Operation[]): boolean {
  const observed = new Set<RegisterState>();
  for (const op of candidate) {
    const value = observedValue(op);
    if (value !== undefined) observed.add(value);
  }
  return removed.every((op) => {
    const value = writtenValue(op);
    return value === undefined || !observed.has(value);
  });
}
