/**
 * The linearizability checker the simulator hands its client histories to: `@impulse/common`'s
 * Wing–Gong checker (common/src/linearizability), behind a function type so that tests can pass a
 * deliberately broken one.
 */
import { checkHistory, type HistoryCheck, type HistoryEvent } from '@impulse/common';

export type SimHistoryEvent = HistoryEvent;
/** What the simulator reads of a check: the verdict, and the witness when there is one. */
export interface HistoryCheckOutcome {
  readonly result: HistoryCheck['result'];
  readonly counterexample?: { readonly key: string; readonly operations: readonly unknown[] };
}

export type HistoryChecker = (
  events: readonly SimHistoryEvent[],
  options?: { readonly stepsPerKeyMax?: number },
) => HistoryCheckOutcome;

export function findHistoryChecker(): Promise<HistoryChecker> {
  return Promise.resolve(checkHistory);
}
