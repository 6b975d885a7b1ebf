import { describe } from 'vitest';
import { sweepSeeds } from './seeds.js';

// The production host on 3 nodes, each hosting a replica of 3 groups, under every fault.
describe('node simulator: 3 nodes x 3 groups', () => {
  sweepSeeds({ nodes: 3, groups: 3, durationMs: 3_000 }, 1, 200);
});
