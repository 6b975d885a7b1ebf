import { describe } from 'vitest';
import { sweepSeeds } from './seeds.js';

// 5 nodes, each hosting a replica of 2 groups: minorities of two can fail at once.
describe('node simulator: 5 nodes x 2 groups', () => {
  sweepSeeds({ nodes: 5, groups: 2, durationMs: 3_000 }, 10_001, 150);
});
