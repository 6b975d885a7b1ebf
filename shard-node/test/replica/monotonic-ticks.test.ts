import { describe, expect, it } from 'vitest';
import { MonotonicTicks } from '../../src/replica/monotonic-ticks.js';

describe('MonotonicTicks', () => {
  function setUp(dueMax = 40): { ticks: MonotonicTicks; advance: (ms: number) => void; count: () => number } {
    let now = 1_000;
    let ticked = 0;
    const ticks = new MonotonicTicks(
      100,
      dueMax,
      () => ticked++,
      () => now,
    );
    return { ticks, advance: (ms) => (now += ms), count: () => ticked };
  }

  it('ticks once per whole interval of monotonic time, carrying the remainder', () => {
    const { ticks, advance, count } = setUp();
    expect(ticks.catchUp()).toBe(0);
    advance(99);
    expect(ticks.catchUp()).toBe(0);
    advance(1);
    expect(ticks.catchUp()).toBe(1);
    advance(250);
    expect(ticks.catchUp()).toBe(2);
    // The 50 ms left over count towards the next tick.
    advance(50);
    expect(ticks.catchUp()).toBe(1);
    expect(count()).toBe(4);
  });

  it('counts a pause in full, however few timers fired during it', () => {
    const { ticks, advance, count } = setUp();
    advance(2_345);
    expect(ticks.catchUp()).toBe(23);
    expect(count()).toBe(23);
  });

  it('caps a very long pause, and measures from its end afterwards', () => {
    const { ticks, advance, count } = setUp(40);
    advance(60_000);
    expect(ticks.catchUp()).toBe(40);
    advance(99);
    expect(ticks.catchUp()).toBe(0);
    advance(1);
    expect(ticks.catchUp()).toBe(1);
    expect(count()).toBe(41);
  });
});
