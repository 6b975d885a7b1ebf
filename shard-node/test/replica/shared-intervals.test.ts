import { describe, expect, it } from 'vitest';

import { sharedIntervals, type Scheduler } from '../../src/replica/index.js';

/** A scheduler whose intervals fire only when the test says so. */
function manualScheduler(): Scheduler & { fire(intervalMs: number): void; armed(): number[] } {
  const intervals: Array<{ intervalMs: number; callback: () => void; cancelled: boolean }> = [];
  return {
    nowMs: () => 0,
    wallClockMs: () => 0,
    setTimeout: () => ({ cancel: () => {} }),
    setImmediate: (callback) => callback(),
    setInterval(callback, intervalMs) {
      const interval = { intervalMs, callback, cancelled: false };
      intervals.push(interval);
      return { cancel: () => (interval.cancelled = true) };
    },
    fire(intervalMs) {
      for (const interval of intervals)
        if (!interval.cancelled && interval.intervalMs === intervalMs) interval.callback();
    },
    armed: () => intervals.filter((interval) => !interval.cancelled).map((interval) => interval.intervalMs),
  };
}

describe('sharedIntervals', () => {
  it('runs the callbacks of one interval from one timer, in the same round, until all are cancelled', () => {
    const base = manualScheduler();
    const shared = sharedIntervals(base);
    const calls: string[] = [];
    const a = shared.setInterval(() => calls.push('a'), 10);
    const b = shared.setInterval(() => calls.push('b'), 10);
    shared.setInterval(() => calls.push('slow'), 50);
    expect(base.armed().sort()).toEqual([10, 50]);
    base.fire(10);
    expect(calls).toEqual(['a', 'b']);
    a.cancel();
    a.cancel();
    base.fire(10);
    expect(calls).toEqual(['a', 'b', 'b']);
    b.cancel();
    expect(base.armed()).toEqual([50]);
    // A new registration after the last was cancelled gets a timer of its own again.
    shared.setInterval(() => calls.push('c'), 10);
    b.cancel();
    base.fire(10);
    expect(calls).toEqual(['a', 'b', 'b', 'c']);
  });

  it('lets a callback cancel another one of the same round', () => {
    const base = manualScheduler();
    const shared = sharedIntervals(base);
    const calls: string[] = [];
    const timers: Array<{ cancel(): void }> = [];
    timers.push(shared.setInterval(() => (calls.push('first'), timers[1]!.cancel()), 10));
    timers.push(shared.setInterval(() => calls.push('second'), 10));
    base.fire(10);
    expect(calls).toEqual(['first']);
  });
});
