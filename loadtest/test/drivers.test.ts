import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.js';
import { runClosedLoop } from '../src/drivers/closed-loop.js';
import { runOpenLoop } from '../src/drivers/open-loop.js';
import type { IssueOperation } from '../src/drivers/pending-operation.js';
import { RunRecorder } from '../src/recorder.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A fake target that answers at once, except that it stalls for `stallMs` once, on the operation
 * issued at `stallAtMs` into the run; while stalled it serves nothing (one connection).
 */
function stallingTarget(stallAtMs: number, stallMs: number): IssueOperation {
  const startMs = systemClock.nowMilliseconds();
  let stalled = false;
  let busyUntilMs = 0;
  return () => {
    const nowMs = systemClock.nowMilliseconds();
    let waitMs = Math.max(0, busyUntilMs - nowMs);
    if (!stalled && nowMs - startMs >= stallAtMs) {
      stalled = true;
      waitMs += stallMs;
    }
    busyUntilMs = nowMs + waitMs;
    return { kind: 'read', done: waitMs > 0 ? sleep(waitMs) : Promise.resolve() };
  };
}

describe('drivers', () => {
  it('open loop: a stall shows in the latency of every operation due during it (no coordinated omission)', async () => {
    const recorder = new RunRecorder();
    const summary = await runOpenLoop({
      rateOperationsPerSecond: 500,
      durationMs: 600,
      inflightMax: 1,
      drainTimeoutMs: 2000,
      issue: stallingTarget(100, 200),
      recorder,
      clock: systemClock,
    });
    expect(summary.issued).toBe(300);
    expect(recorder.overall.count).toBe(300);
    // About 100 operations (200 ms at 500/s) were due during the stall and waited for it: their
    // latencies, measured from the intended start, go from ~200 ms down to ~0.
    expect(recorder.overall.maxMicroseconds / 1000).toBeGreaterThan(180);
    expect(recorder.overall.percentileMicroseconds(80) / 1000).toBeGreaterThan(20);
  });

  it('closed loop: the same stall hides in one operation (why the open loop exists)', async () => {
    const recorder = new RunRecorder();
    await runClosedLoop({
      concurrency: 1,
      durationMs: 600,
      issue: stallingTarget(100, 200),
      recorder,
      clock: systemClock,
    });
    expect(recorder.overall.maxMicroseconds / 1000).toBeGreaterThan(180);
    expect(recorder.overall.percentileMicroseconds(99) / 1000).toBeLessThan(20);
  });

  it('closed loop: stops after operationsMax and counts failures as errors', async () => {
    const recorder = new RunRecorder();
    const summary = await runClosedLoop({
      concurrency: 4,
      durationMs: Number.POSITIVE_INFINITY,
      operationsMax: 100,
      issue: (sequence) => ({
        kind: 'update',
        done: sequence % 10 === 0 ? Promise.reject(new Error('boom')) : Promise.resolve(),
      }),
      recorder,
      clock: systemClock,
    });
    expect(summary.issued).toBe(100);
    expect(recorder.overall.count).toBe(100);
    expect(recorder.errors).toBe(10);
    expect(recorder.errorSamples[0]).toBe('boom');
  });

  it('open loop: operations never sent before the deadline count as errors with their wait', async () => {
    const recorder = new RunRecorder();
    const summary = await runOpenLoop({
      rateOperationsPerSecond: 1000,
      durationMs: 100,
      inflightMax: 1,
      drainTimeoutMs: 100,
      issue: () => ({ kind: 'read', done: sleep(500) }),
      recorder,
      clock: systemClock,
    });
    expect(summary.notIssued).toBeGreaterThan(90);
    expect(recorder.errors).toBe(summary.notIssued);
    expect(recorder.overall.maxMicroseconds / 1000).toBeGreaterThan(100);
  });
});
