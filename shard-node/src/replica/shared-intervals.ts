/**
 * One timer per interval for every replica of a node. Each replica asks its scheduler for a tick
 * interval (`Replica` ticks its core every `tickIntervalMs`); a node gives all of them this
 * scheduler, so that the replicas with the same interval tick in the same round, from one timer.
 * Their heartbeats then leave in the same round, which the node transport sends as one coalesced
 * heartbeat per node pair per tick (docs/decisions/0013-node-transport.md), and a node of 256
 * groups runs one tick timer, not 256 (ARCHITECTURE.md: "one tick timer").
 *
 * A replica that starts while others run takes its first tick at the shared timer's next firing,
 * less than one interval after it asked: harmless, since its election timeout is many ticks and
 * randomized, and lease mode counts ticks from the monotonic clock (`MonotonicTicks`), not from
 * the timer.
 */
import type { Scheduler, Timer } from './scheduler.js';

interface SharedInterval {
  readonly timer: Timer;
  readonly callbacks: Set<() => void>;
}

/** `base`, with the callbacks of every `setInterval` of the same interval run by one timer. */
export function sharedIntervals(base: Scheduler): Scheduler {
  const intervals = new Map<number, SharedInterval>();
  return {
    nowMs: () => base.nowMs(),
    wallClockMs: () => base.wallClockMs(),
    setTimeout: (callback, delayMs) => base.setTimeout(callback, delayMs),
    setImmediate: (callback) => base.setImmediate(callback),
    setInterval(callback, intervalMs) {
      let shared = intervals.get(intervalMs);
      if (shared === undefined) {
        const callbacks = new Set<() => void>();
        const timer = base.setInterval(() => {
          // A copy: a callback may cancel itself or another one.
          for (const each of [...callbacks]) if (callbacks.has(each)) each();
        }, intervalMs);
        shared = { timer, callbacks };
        intervals.set(intervalMs, shared);
      }
      const owner = shared;
      // A function of its own, so that the same callback registered twice is two registrations.
      const registration = (): void => callback();
      owner.callbacks.add(registration);
      return {
        cancel: () => {
          if (!owner.callbacks.delete(registration) || owner.callbacks.size > 0) return;
          owner.timer.cancel();
          if (intervals.get(intervalMs) === owner) intervals.delete(intervalMs);
        },
      };
    },
  };
}
