import type { Clock } from '../clock.js';
import type { RunRecorder } from '../recorder.js';
import type { DriverSummary, IssueOperation } from './pending-operation.js';

export interface OpenLoopOptions {
  /** Operations start at this rate whatever the target does. */
  readonly rateOperationsPerSecond: number;
  readonly durationMs: number;
  /** Operations in flight at most; past it, due operations wait (and their wait is counted). */
  readonly inflightMax: number;
  /** After the duration, how long operations still due or in flight may take before the run ends. */
  readonly drainTimeoutMs: number;
  readonly issue: IssueOperation;
  readonly recorder: RunRecorder;
  readonly clock: Clock;
}

/**
 * Open loop: operation i is due at start + i / rate, and its latency is measured from that
 * INTENDED start, not from when it was sent. When the target stalls, operations that could not
 * be sent on time carry the wait in their latency, so a stall shows in the percentiles instead
 * of being hidden by the client waiting politely (coordinated omission).
 */
export async function runOpenLoop(options: OpenLoopOptions): Promise<DriverSummary> {
  const { clock, recorder } = options;
  if (!(options.rateOperationsPerSecond > 0)) throw new Error('open loop needs a rate above 0');
  const intervalMs = 1000 / options.rateOperationsPerSecond;
  const startMs = clock.nowMilliseconds();
  const total = Math.floor((options.durationMs / 1000) * options.rateOperationsPerSecond);
  const deadlineMs = startMs + options.durationMs + options.drainTimeoutMs;
  let next = 0;
  let inflight = 0;
  let wake: (() => void) | undefined;
  const inflightDone = new Set<Promise<void>>();

  const dispatch = (sequence: number, intendedMs: number): void => {
    inflight++;
    const operation = options.issue(sequence);
    const settled = operation.done.then(
      () => recorder.record(operation.kind, clock.nowMilliseconds() - intendedMs, true),
      (error: unknown) => recorder.record(operation.kind, clock.nowMilliseconds() - intendedMs, false, error),
    );
    const finished = settled.finally(() => {
      inflight--;
      inflightDone.delete(finished);
      wake?.();
    });
    inflightDone.add(finished);
  };

  while (next < total) {
    const nowMs = clock.nowMilliseconds();
    if (nowMs >= deadlineMs) break;
    while (next < total && inflight < options.inflightMax && startMs + next * intervalMs <= nowMs) {
      dispatch(next, startMs + next * intervalMs);
      next++;
    }
    if (next >= total) break;
    if (inflight >= options.inflightMax) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadlineMs - nowMs));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    } else {
      await clock.sleep(startMs + next * intervalMs - nowMs);
    }
  }

  // Operations that were due but never sent waited at least until now: they count as errors
  // with that wait as their latency, rather than vanishing from the percentiles.
  const notIssued = total - next;
  const nowMs = clock.nowMilliseconds();
  for (let sequence = next; sequence < total; sequence++) {
    recorder.recordUnsent(nowMs - (startMs + sequence * intervalMs));
  }
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(inflightDone),
    new Promise<void>((resolve) => {
      drainTimer = setTimeout(resolve, Math.max(0, deadlineMs - clock.nowMilliseconds()));
    }),
  ]);
  clearTimeout(drainTimer);
  return { issued: next, elapsedSeconds: (clock.nowMilliseconds() - startMs) / 1000, notIssued };
}
