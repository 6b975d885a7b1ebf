/**
 * The one source of randomness of a simulation. Every choice (faults, delays, workload, and the
 * cores' election timeouts) derives from the seed, so a seed replays exactly.
 */
import { createSeededRandom } from '../raft/index.js';

export class Prng {
  readonly next: () => number;

  constructor(seed: number) {
    this.next = createSeededRandom(seed);
  }

  /** An integer in [0, bound). */
  int(bound: number): number {
    return Math.floor(this.next() * bound);
  }

  /** An integer in [low, high]. */
  between(low: number, high: number): number {
    return low + this.int(high - low + 1);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('raft-sim: pick from an empty list');
    return items[this.int(items.length)]!;
  }

  /** A derived generator (for a core), so that its draws do not depend on the others' order. */
  fork(): () => number {
    return createSeededRandom(this.int(0x1_0000_0000));
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i -= 1) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}
