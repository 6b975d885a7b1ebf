/**
 * Time as the replica host sees it: a monotonic clock, a wall clock (for names that must differ
 * across restarts) and timers. The host never calls `setTimeout`, `Date.now()` or
 * `performance.now()` itself, so that a simulated cluster can run the host on simulated time and
 * replay a run exactly from its seed (STYLE.md, "Determinism").
 */
export interface Scheduler {
  /** Monotonic milliseconds: never goes back, counts a paused process's pause. */
  nowMs(): number;
  /** Milliseconds since the epoch, for names that must not repeat across restarts. */
  wallClockMs(): number;
  /** Calls `callback` once after `delayMs`; the timer is cancelled with `cancel()`. */
  setTimeout(callback: () => void, delayMs: number): Timer;
  /** Calls `callback` every `intervalMs` until cancelled. */
  setInterval(callback: () => void, intervalMs: number): Timer;
  /** Calls `callback` once, after the current turn's I/O callbacks: the end of this round. */
  setImmediate(callback: () => void): void;
}

export interface Timer {
  cancel(): void;
}

/** The process's own clocks and timers. */
export const systemScheduler: Scheduler = {
  nowMs: () => performance.now(),
  wallClockMs: () => Date.now(),
  setTimeout(callback, delayMs) {
    const handle = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(handle) };
  },
  setInterval(callback, intervalMs) {
    const handle = setInterval(callback, intervalMs);
    return { cancel: () => clearInterval(handle) };
  },
  setImmediate(callback) {
    setImmediate(callback);
  },
};

/** Resolves after `delayMs` on `scheduler`'s time. */
export function sleep(scheduler: Scheduler, delayMs: number): Promise<void> {
  return new Promise((resolve) => scheduler.setTimeout(resolve, delayMs));
}
