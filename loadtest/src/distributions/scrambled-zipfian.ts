import { fnvHash64 } from '../fnv-hash.js';
import type { SeededRandom } from '../random.js';
import type { KeyDistribution } from './key-distribution.js';
import { ZipfianGenerator, zipfianThetaDefault } from './zipfian.js';

/**
 * YCSB's ScrambledZipfianGenerator: ranks come from a zipfian over a fixed, huge item space
 * (10^10 items, whose zeta for theta 0.99 YCSB precomputes), then are hashed with FNV-64 onto
 * the real key space. The popularity curve thus does not change as the key space grows, and the
 * hot keys are scattered rather than clustered at the low key numbers.
 */
export class ScrambledZipfianDistribution implements KeyDistribution {
  readonly name = 'zipfian';
  static readonly itemSpace = 10_000_000_000;
  static readonly zetaOfItemSpace = 26.46902820178302;
  private readonly zipfian: ZipfianGenerator;

  constructor(
    random: SeededRandom,
    private readonly itemCount: () => number,
  ) {
    this.zipfian = new ZipfianGenerator(
      random,
      ScrambledZipfianDistribution.itemSpace,
      zipfianThetaDefault,
      ScrambledZipfianDistribution.zetaOfItemSpace,
    );
  }

  nextKeyNumber(): number {
    const rank = this.zipfian.next();
    return Number(fnvHash64(rank) % BigInt(this.itemCount()));
  }

  /** The key number that a given popularity rank lands on (rank 0 is the hottest key). */
  keyNumberOfRank(rank: number): number {
    return Number(fnvHash64(rank) % BigInt(this.itemCount()));
  }
}
