import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { Backoff } from '../../src/transport/index.js';

describe('reconnect backoff', () => {
  it('stays within [min/2, max], grows from the minimum, and starts over after a reset', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.double({ min: 0, max: 0.999_999, noNaN: true }),
        (delayMsMin, extraMs, random) => {
          const delayMsMax = delayMsMin + extraMs;
          const backoff = new Backoff(delayMsMin, delayMsMax, () => random);
          const delays = Array.from({ length: 40 }, () => backoff.nextDelayMs());
          for (const delayMs of delays) {
            expect(delayMs).toBeGreaterThanOrEqual(Math.floor(delayMsMin / 2));
            expect(delayMs).toBeLessThanOrEqual(delayMsMax);
          }
          expect(delays[39]).toBeGreaterThanOrEqual(Math.floor(delayMsMax / 2));
          backoff.reset();
          expect(backoff.nextDelayMs()).toBeLessThanOrEqual(delayMsMin);
        },
      ),
    );
  });
});
