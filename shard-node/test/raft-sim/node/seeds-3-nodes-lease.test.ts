import { describe } from 'vitest';
import { sweepSeeds } from './seeds.js';

// Lease reads: a paused or partitioned leader must never answer from a lease that ran out. These
// seeds give each replica a Raft log of its own (RaftLogStore), the others the node's shared log.
describe('node simulator: 3 nodes x 3 groups, lease reads', () => {
  sweepSeeds({ nodes: 3, groups: 3, durationMs: 3_000, readMode: 'lease', logs: 'replica' }, 5_001, 150);
});
