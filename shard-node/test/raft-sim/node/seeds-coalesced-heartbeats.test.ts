import { describe } from 'vitest';
import { sweepSeeds } from './seeds.js';

// Coalesced heartbeats (issue 12 item 4, docs/decisions/0013-node-transport.md): each node's
// heartbeats and responses of a round for another node travel as one coalesced heartbeat through
// the transport's encoder and decoder, lost, delayed or duplicated whole. Leases and ReadIndex
// must stay linearizable under every fault, as they do with one message per group.
describe('node simulator: coalesced heartbeats, 3 nodes x 4 groups, lease reads', () => {
  sweepSeeds(
    { nodes: 3, groups: 4, durationMs: 3_000, readMode: 'lease', coalesceHeartbeats: true },
    9_001,
    80,
  );
});

describe('node simulator: coalesced heartbeats, 5 nodes x 3 groups, ReadIndex reads', () => {
  sweepSeeds(
    { nodes: 5, groups: 3, durationMs: 3_000, readMode: 'readindex', coalesceHeartbeats: true },
    9_501,
    40,
  );
});
