/**
 * A small seeded pseudo-random generator (mulberry32). The core draws its randomized election
 * timeouts from an injected `() => number`, so a simulated cluster replays exactly from a seed.
 */

/** Returns a generator of numbers in [0, 1), fully determined by `seed` (a 32-bit integer). */
export function createSeededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
