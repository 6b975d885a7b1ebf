import type { SeededRandom } from '../random.js';

/** YCSB's default skew: the most popular item gets about 1/zeta(n) of the requests. */
export const zipfianThetaDefault = 0.99;

/** zeta(n, theta) = sum over i in [1, n] of 1 / i^theta, continued from a partial sum. */
export function zeta(from: number, to: number, theta: number, partialSum: number): number {
  let sum = partialSum;
  for (let index = from; index < to; index++) sum += 1 / Math.pow(index + 1, theta);
  return sum;
}

/**
 * YCSB's ZipfianGenerator (Gray et al., "Quickly Generating Billion-Record Synthetic Databases",
 * SIGMOD 1994): item 0 is the most popular, item 1 the next, and so on. The item count may grow
 * (inserts); zeta(n) is then extended incrementally, as YCSB does, instead of recomputed.
 */
export class ZipfianGenerator {
  private readonly alpha: number;
  private readonly zeta2Theta: number;
  private zetaN: number;
  private countForZeta: number;
  private eta: number;

  constructor(
    private readonly random: SeededRandom,
    itemCount: number,
    private readonly theta: number = zipfianThetaDefault,
    /** A precomputed zeta(itemCount, theta); computing it is O(itemCount). */
    zetaNPrecomputed?: number,
  ) {
    if (!(itemCount >= 1)) throw new Error(`zipfian: item count must be at least 1 (got ${itemCount})`);
    this.alpha = 1 / (1 - theta);
    this.zeta2Theta = zeta(0, 2, theta, 0);
    this.zetaN = zetaNPrecomputed ?? zeta(0, itemCount, theta, 0);
    this.countForZeta = itemCount;
    this.eta = this.etaFor(itemCount);
  }

  /** The zeta(n) in force, so that tests can compare frequencies with the theory. */
  get zetaOfItemCount(): number {
    return this.zetaN;
  }

  /** A rank in [0, itemCount). */
  next(itemCount: number = this.countForZeta): number {
    if (itemCount !== this.countForZeta) this.resize(itemCount);
    const u = this.random.nextDouble();
    const uz = u * this.zetaN;
    if (uz < 1) return 0;
    if (uz < 1 + Math.pow(0.5, this.theta)) return 1;
    const rank = Math.floor(itemCount * Math.pow(this.eta * u - this.eta + 1, this.alpha));
    return Math.min(rank, itemCount - 1);
  }

  private resize(itemCount: number): void {
    this.zetaN =
      itemCount > this.countForZeta
        ? zeta(this.countForZeta, itemCount, this.theta, this.zetaN)
        : zeta(0, itemCount, this.theta, 0);
    this.countForZeta = itemCount;
    this.eta = this.etaFor(itemCount);
  }

  private etaFor(itemCount: number): number {
    return (1 - Math.pow(2 / itemCount, 1 - this.theta)) / (1 - this.zeta2Theta / this.zetaN);
  }
}
