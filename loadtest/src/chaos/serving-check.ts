/**
 * Liveness of a chaos run: a cluster that stopped serving is not a pass, however linearizable its
 * (empty) history. Every stretch of the run with no kill, pause or partition in effect is given
 * `graceSeconds` to recover from the fault before it (a restart, an election); after that, every
 * window of `windowSeconds` whole seconds inside it must hold at least `operationsMin` successful
 * operations.
 */
export interface ServingOptions {
  readonly windowSeconds: number;
  readonly graceSeconds: number;
  readonly operationsMin: number;
}

export interface ServingInput {
  /** The faults that count (replacements go on without stopping service, so callers leave them out). */
  readonly faults: ReadonlyArray<{ readonly startSeconds: number; readonly endSeconds: number | undefined }>;
  /** Successful operations completed in each second of the run, by completion time. */
  readonly okPerSecond: readonly number[];
  /** When the workload stopped. */
  readonly endSeconds: number;
  readonly options: ServingOptions;
}

/** One line per fault-free stretch that had a window with too few successful operations. */
export function checkServing(input: ServingInput): string[] {
  const { windowSeconds, graceSeconds, operationsMin } = input.options;
  const intervals = input.faults
    .map((fault) => ({ start: fault.startSeconds, end: fault.endSeconds ?? input.endSeconds }))
    .sort((a, b) => a.start - b.start);
  // The fault-free stretches: between the start and the first fault, between faults, after the last.
  const stretches: Array<{ start: number; end: number }> = [];
  let cursor = 0;
  for (const interval of intervals) {
    if (interval.start > cursor) stretches.push({ start: cursor, end: interval.start });
    cursor = Math.max(cursor, interval.end);
  }
  if (input.endSeconds > cursor) stretches.push({ start: cursor, end: input.endSeconds });

  const problems: string[] = [];
  for (const stretch of stretches) {
    // The run's start has no fault to recover from; every other stretch follows one.
    const from = Math.ceil(stretch.start === 0 ? 0 : stretch.start + graceSeconds);
    const to = Math.floor(stretch.end);
    for (let second = from; second + windowSeconds <= to; second++) {
      let ok = 0;
      for (let index = second; index < second + windowSeconds; index++) ok += input.okPerSecond[index] ?? 0;
      if (ok < operationsMin) {
        problems.push(
          `only ${ok} successful operations from ${second} s to ${second + windowSeconds} s, fault-free ` +
            `since ${stretch.start.toFixed(1)} s (at least ${operationsMin} per ${windowSeconds} s required)`,
        );
        break;
      }
    }
  }
  return problems;
}
