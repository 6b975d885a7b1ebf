import type { SeededRandom } from '../random.js';
import type { KeyDistribution } from './key-distribution.js';
import { ZipfianGenerator } from './zipfian.js';

/**
 * YCSB's SkewedLatestGenerator (workload D): the most recently inserted key is the most popular,
 * then the one before it, with zipfian skew. `latestKeyNumber` is the newest key whose insert was
 * acknowledged, so that a read never asks for a key that is not written yet.
 */
export class LatestDistribution implements KeyDistribution {
  readonly name = 'latest';
  private readonly zipfian: ZipfianGenerator;

  constructor(
    random: SeededRandom,
    private readonly latestKeyNumber: () => number,
  ) {
    this.zipfian = new ZipfianGenerator(random, Math.max(1, latestKeyNumber() + 1));
  }

  nextKeyNumber(): number {
    const latest = this.latestKeyNumber();
    return latest - this.zipfian.next(latest + 1);
  }
}
