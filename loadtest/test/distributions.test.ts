import { describe, expect, it } from 'vitest';
import { AcknowledgedCounter } from '../src/distributions/acknowledged-counter.js';
import { LatestDistribution } from '../src/distributions/latest.js';
import { ScrambledZipfianDistribution } from '../src/distributions/scrambled-zipfian.js';
import { UniformDistribution } from '../src/distributions/uniform.js';
import { ZipfianGenerator, zeta } from '../src/distributions/zipfian.js';
import { keyName } from '../src/key-name.js';
import { SeededRandom } from '../src/random.js';

const draws = 200_000;

function frequencies(next: () => number, count: number): Map<number, number> {
  const seen = new Map<number, number>();
  for (let index = 0; index < count; index++) {
    const value = next();
    seen.set(value, (seen.get(value) ?? 0) + 1);
  }
  return seen;
}

describe('key distributions', () => {
  it('names keys as YCSB does (hashed inserts)', () => {
    // YCSB's first key with the default insertorder=hashed.
    expect(keyName(0)).toBe('user6284781860667377211');
  });

  it('replays the same sequence from the same seed', () => {
    const a = new SeededRandom(42);
    const b = new SeededRandom(42);
    const c = new SeededRandom(43);
    const sequenceA = Array.from({ length: 100 }, () => a.nextUint32());
    expect(Array.from({ length: 100 }, () => b.nextUint32())).toEqual(sequenceA);
    expect(Array.from({ length: 100 }, () => c.nextUint32())).not.toEqual(sequenceA);
  });

  it('zipfian: rank 1 and rank 2 come up as often as the theory says (1/zeta(n), 2^-theta/zeta(n))', () => {
    const itemCount = 1000;
    const generator = new ZipfianGenerator(new SeededRandom(7), itemCount);
    const seen = frequencies(() => generator.next(), draws);
    const zetaN = zeta(0, itemCount, 0.99, 0);
    expect(generator.zetaOfItemCount).toBeCloseTo(zetaN, 9);
    expect((seen.get(0) ?? 0) / draws).toBeCloseTo(1 / zetaN, 2);
    expect(((seen.get(0) ?? 0) / draws) * zetaN).toBeGreaterThan(0.95);
    expect(((seen.get(0) ?? 0) / draws) * zetaN).toBeLessThan(1.05);
    const rank2Expected = Math.pow(0.5, 0.99) / zetaN;
    expect((seen.get(1) ?? 0) / draws / rank2Expected).toBeGreaterThan(0.95);
    expect((seen.get(1) ?? 0) / draws / rank2Expected).toBeLessThan(1.05);
    for (const value of seen.keys()) expect(value).toBeGreaterThanOrEqual(0);
    for (const value of seen.keys()) expect(value).toBeLessThan(itemCount);
  });

  it('zipfian: frequencies fall with rank (the head holds most of the mass)', () => {
    const generator = new ZipfianGenerator(new SeededRandom(8), 1000);
    const seen = frequencies(() => generator.next(), draws);
    const top10 = Array.from({ length: 10 }, (_, rank) => seen.get(rank) ?? 0).reduce((a, b) => a + b, 0);
    const expectedTop10 = zeta(0, 10, 0.99, 0) / zeta(0, 1000, 0.99, 0);
    expect(top10 / draws / expectedTop10).toBeGreaterThan(0.95);
    expect(top10 / draws / expectedTop10).toBeLessThan(1.05);
    expect(seen.get(0) ?? 0).toBeGreaterThan(seen.get(9) ?? 0);
  });

  it('zipfian: a growing item count extends zeta incrementally, as recomputing would', () => {
    const generator = new ZipfianGenerator(new SeededRandom(9), 100);
    generator.next(250);
    expect(generator.zetaOfItemCount).toBeCloseTo(zeta(0, 250, 0.99, 0), 9);
  });

  it('scrambled zipfian: the hottest key gets 1/zeta(10^10) of the requests, spread over the key space', () => {
    const itemCount = 10_000;
    const distribution = new ScrambledZipfianDistribution(new SeededRandom(11), () => itemCount);
    const seen = frequencies(() => distribution.nextKeyNumber(), draws);
    const sorted = [...seen.entries()].sort((a, b) => b[1] - a[1]);
    const [hottestKey, hottestCount] = sorted[0] as [number, number];
    expect(hottestKey).toBe(distribution.keyNumberOfRank(0));
    const expected = 1 / ScrambledZipfianDistribution.zetaOfItemSpace;
    expect(hottestCount / draws / expected).toBeGreaterThan(0.9);
    expect(hottestCount / draws / expected).toBeLessThan(1.1);
    // Scrambled: the two hottest keys are not neighbours, and all key numbers are in range.
    expect(Math.abs((sorted[1]?.[0] ?? 0) - hottestKey)).toBeGreaterThan(1);
    for (const value of seen.keys()) expect(value).toBeLessThan(itemCount);
  });

  it('uniform: every key about equally often', () => {
    const itemCount = 100;
    const distribution = new UniformDistribution(new SeededRandom(12), () => itemCount);
    const seen = frequencies(() => distribution.nextKeyNumber(), draws);
    expect(seen.size).toBe(itemCount);
    for (const count of seen.values()) {
      expect(count / (draws / itemCount)).toBeGreaterThan(0.9);
      expect(count / (draws / itemCount)).toBeLessThan(1.1);
    }
  });

  it('latest: the newest acknowledged key is the hottest, and it follows new inserts', () => {
    const counter = new AcknowledgedCounter(1000);
    const distribution = new LatestDistribution(new SeededRandom(13), () => counter.latest());
    const seen = frequencies(() => distribution.nextKeyNumber(), draws);
    const sorted = [...seen.entries()].sort((a, b) => b[1] - a[1]);
    expect(sorted[0]?.[0]).toBe(999);
    expect(sorted[1]?.[0]).toBe(998);
    expect((sorted[0]?.[1] ?? 0) / draws / (1 / zeta(0, 1000, 0.99, 0))).toBeGreaterThan(0.95);
    for (const value of seen.keys()) expect(value).toBeLessThanOrEqual(999);

    // Inserts acknowledged out of order: "latest" moves only once every insert below is done.
    const first = counter.next();
    const second = counter.next();
    counter.acknowledge(second);
    expect(counter.latest()).toBe(999);
    counter.acknowledge(first);
    expect(counter.latest()).toBe(1001);
    const after = frequencies(() => distribution.nextKeyNumber(), 20_000);
    expect([...after.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]).toBe(1001);
  });
});
