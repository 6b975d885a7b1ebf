import type { OperationKind } from '../workload.js';

/**
 * One issued operation: its kind is chosen when it is issued (so the sequence of kinds and keys
 * depends only on the seed), and `done` settles when the store has answered.
 */
export interface PendingOperation {
  readonly kind: OperationKind;
  readonly done: Promise<void>;
}

/** Issues operation number `sequence` (0, 1, 2, ... in issue order). */
export type IssueOperation = (sequence: number) => PendingOperation;

export interface DriverSummary {
  readonly issued: number;
  readonly elapsedSeconds: number;
  /** Open loop only: operations whose intended start passed but that were never sent. */
  readonly notIssued: number;
}
