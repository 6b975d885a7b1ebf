import { describe, expect, it } from 'vitest';

import { expectSeedsPass } from './seeds.js';

// Lease-based reads answer without a heartbeat round, so they are only as safe as the lease rule
// in the core (`hasReadLease` in raft.ts). Finding 1 in FINDINGS.md (a stale read after an
// abandoned leadership transfer) is the kind of bug this sweep exists to catch.
describe('seeded simulation, 3 replicas, all faults, lease-based reads', () => {
  it('keeps every invariant on seeds 20001-20200', () => {
    const results = expectSeedsPass(20_001, 200, 3, { leaseReads: true });
    expect(results.reduce((sum, result) => sum + result.operationsOk, 0)).toBeGreaterThan(5_000);
    // The sweep must exercise what breaks leases: transfers, crashes and partitions.
    expect(results.some((result) => (result.faults['transfers'] ?? 0) > 0)).toBe(true);
    expect(results.some((result) => (result.faults['crashes'] ?? 0) > 0)).toBe(true);
    expect(results.some((result) => (result.faults['partitions'] ?? 0) > 0)).toBe(true);
  }, 120_000);
});
