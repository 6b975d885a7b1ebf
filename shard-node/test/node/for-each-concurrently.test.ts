import { describe, expect, it } from 'vitest';
import { forEachConcurrently } from '../../src/node/for-each-concurrently.js';

describe('forEachConcurrently', () => {
  it('runs every item once, never more than inFlightMax at a time, and keeps going past a slow one', async () => {
    const items = Array.from({ length: 50 }, (_, index) => index);
    const done: number[] = [];
    let inFlight = 0;
    let inFlightPeak = 0;
    // Item 0 is slow: it finishes only once every other item has, which the other 7 runs must do.
    let releaseSlow = (): void => {};
    const slow = new Promise<void>((resolve) => (releaseSlow = resolve));
    await forEachConcurrently(items, 8, async (item) => {
      inFlight++;
      inFlightPeak = Math.max(inFlightPeak, inFlight);
      if (item === 0) await slow;
      else await new Promise((resolve) => setImmediate(resolve));
      done.push(item);
      inFlight--;
      if (done.length === items.length - 1) releaseSlow();
    });
    expect(inFlightPeak).toBe(8);
    expect(done).toHaveLength(items.length);
    expect(done.at(-1)).toBe(0);
    expect([...done].sort((left, right) => left - right)).toEqual(items);
  });

  it('runs fewer items than inFlightMax all at once, and no item at all for an empty list', async () => {
    let inFlightPeak = 0;
    let inFlight = 0;
    await forEachConcurrently([1, 2, 3], 8, async () => {
      inFlightPeak = Math.max(inFlightPeak, ++inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
    });
    expect(inFlightPeak).toBe(3);
    await forEachConcurrently([], 8, () => Promise.reject(new Error('never called')));
  });

  it('refuses a bound that is not a positive integer', async () => {
    await expect(forEachConcurrently([1], 0, () => Promise.resolve())).rejects.toThrow(/inFlightMax/);
    await expect(forEachConcurrently([1], 1.5, () => Promise.resolve())).rejects.toThrow(/inFlightMax/);
  });
});
