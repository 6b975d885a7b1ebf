import type { Timer } from './scheduler.js';

/** A caller waiting for an outcome, with the timer that gives up on it. */
export interface Waiter<T = void> {
  resolve: (value: T) => void;
  reject: (error: Error) => void;
  timer: Timer;
}

/** Answers a waiter with `error` and stops its timer. */
export function settle<T>(waiter: Waiter<T>, error: Error): void {
  waiter.timer.cancel();
  waiter.reject(error);
}

/** Answers a waiter with `value` and stops its timer. */
export function fulfil<T>(waiter: Waiter<T>, value: T): void {
  waiter.timer.cancel();
  waiter.resolve(value);
}
