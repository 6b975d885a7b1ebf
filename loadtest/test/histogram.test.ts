import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../src/histogram.js';
import { SeededRandom } from '../src/random.js';

function exactPercentile(sorted: readonly number[], percent: number): number {
  const rank = Math.max(1, Math.ceil((percent / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

describe('LatencyHistogram', () => {
  it('reports percentiles within 1% on 1..100000', () => {
    const histogram = new LatencyHistogram();
    for (let value = 1; value <= 100_000; value++) histogram.record(value);
    for (const [percent, exact] of [
      [50, 50_000],
      [90, 90_000],
      [99, 99_000],
      [99.9, 99_900],
      [100, 100_000],
    ] as const) {
      expect(Math.abs(histogram.percentileMicroseconds(percent) - exact) / exact).toBeLessThan(0.01);
    }
    expect(histogram.count).toBe(100_000);
    expect(histogram.minMicroseconds).toBe(1);
    expect(histogram.maxMicroseconds).toBe(100_000);
    expect(histogram.meanMicroseconds).toBeCloseTo(50_000.5, 6);
  });

  it('reports percentiles within 1% on skewed (log-normal) latencies', () => {
    const random = new SeededRandom(3);
    const values: number[] = [];
    const histogram = new LatencyHistogram();
    for (let index = 0; index < 50_000; index++) {
      // Box-Muller: a log-normal around 2 ms with a long tail, as request latencies look.
      const normal =
        Math.sqrt(-2 * Math.log(1 - random.nextDouble())) * Math.cos(2 * Math.PI * random.nextDouble());
      const value = Math.round(Math.exp(Math.log(2000) + normal));
      values.push(Math.max(1, value));
      histogram.record(value);
    }
    values.sort((a, b) => a - b);
    for (const percent of [1, 10, 50, 75, 90, 99, 99.9, 99.99]) {
      const exact = exactPercentile(values, percent);
      expect(Math.abs(histogram.percentileMicroseconds(percent) - exact) / exact).toBeLessThan(0.01);
    }
  });

  it('counts small values exactly, and every bucket is at most 1/128 of its values wide', () => {
    const histogram = new LatencyHistogram();
    histogram.record(7);
    histogram.record(7);
    histogram.record(200);
    expect(histogram.percentileMicroseconds(50)).toBe(7);
    expect(histogram.percentileMicroseconds(100)).toBe(200);
    for (const value of [256, 1000, 65_537, 10_000_000, 2 ** 32 - 1]) {
      const [low, high] = LatencyHistogram.boundsOf(LatencyHistogram.indexOf(value));
      expect(low).toBeLessThanOrEqual(value);
      expect(high).toBeGreaterThanOrEqual(value);
      expect((high - low + 1) / low).toBeLessThanOrEqual(1 / 128);
    }
  });

  it('merges and resets', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    for (let value = 1; value <= 1000; value++) (value % 2 === 0 ? a : b).record(value * 10);
    a.add(b);
    expect(a.count).toBe(1000);
    expect(a.minMicroseconds).toBe(10);
    expect(a.maxMicroseconds).toBe(10_000);
    expect(Math.abs(a.percentileMicroseconds(50) - 5000) / 5000).toBeLessThan(0.01);
    a.reset();
    expect(a.count).toBe(0);
    expect(a.percentileMicroseconds(99)).toBe(0);
  });
});
