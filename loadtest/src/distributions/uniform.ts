import type { SeededRandom } from '../random.js';
import type { KeyDistribution } from './key-distribution.js';

/** Every key number in [0, itemCount()) equally likely; the item count may grow with inserts. */
export class UniformDistribution implements KeyDistribution {
  readonly name = 'uniform';

  constructor(
    private readonly random: SeededRandom,
    private readonly itemCount: () => number,
  ) {}

  nextKeyNumber(): number {
    return this.random.nextInt(this.itemCount());
  }
}
