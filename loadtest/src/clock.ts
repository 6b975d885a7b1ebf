import { performance } from 'node:perf_hooks';

/** Time as the drivers see it, injected so that tests can drive a fake one. */
export interface Clock {
  nowMilliseconds(): number;
  sleep(durationMs: number): Promise<void>;
}

export const systemClock: Clock = {
  nowMilliseconds: () => performance.now(),
  sleep: (durationMs) => new Promise((resolve) => setTimeout(resolve, Math.max(0, durationMs))),
};
