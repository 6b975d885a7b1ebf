import type { Clock } from '../clock.js';
import type { RunRecorder } from '../recorder.js';
import type { DriverSummary, IssueOperation } from './pending-operation.js';

export interface ClosedLoopOptions {
  /** Workers, each with one operation in flight at a time. */
  readonly concurrency: number;
  /** Workers start no new operation after this. */
  readonly durationMs: number;
  /** Stop after this many operations (the load phase inserts exactly the record count). */
  readonly operationsMax?: number;
  readonly issue: IssueOperation;
  readonly recorder: RunRecorder;
  readonly clock: Clock;
}

/**
 * Closed loop: `concurrency` workers, each issuing its next operation when the previous one is
 * answered. Latency is measured from the actual send, so a stall delays the next operations
 * instead of showing in their latency: this mode measures capacity, not the latency a client with
 * its own arrival rate would see (use the open loop for that).
 */
export async function runClosedLoop(options: ClosedLoopOptions): Promise<DriverSummary> {
  const { clock, recorder } = options;
  const startMs = clock.nowMilliseconds();
  const endMs = startMs + options.durationMs;
  const operationsMax = options.operationsMax ?? Number.POSITIVE_INFINITY;
  let issued = 0;

  const worker = async (): Promise<void> => {
    while (issued < operationsMax && clock.nowMilliseconds() < endMs) {
      const sentMs = clock.nowMilliseconds();
      const operation = options.issue(issued++);
      try {
        await operation.done;
        recorder.record(operation.kind, clock.nowMilliseconds() - sentMs, true);
      } catch (error) {
        recorder.record(operation.kind, clock.nowMilliseconds() - sentMs, false, error);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, () => worker()));
  return { issued, elapsedSeconds: (clock.nowMilliseconds() - startMs) / 1000, notIssued: 0 };
}
