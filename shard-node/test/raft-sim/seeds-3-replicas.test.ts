import { describe, expect, it } from 'vitest';

import { expectSeedsPass } from './seeds.js';

describe('seeded simulation, 3 replicas, all faults', () => {
  it('keeps every invariant on seeds 1-300', () => {
    const results = expectSeedsPass(1, 300, 3);
    // The sweep must exercise something: clients got answers and faults happened.
    expect(results.reduce((sum, result) => sum + result.operationsOk, 0)).toBeGreaterThan(10_000);
    expect(results.some((result) => (result.faults['membershipChanges'] ?? 0) > 0)).toBe(true);
    expect(results.some((result) => (result.faults['crashes'] ?? 0) > 0)).toBe(true);
    expect(results.some((result) => (result.faults['snapshotsSent'] ?? 0) > 0)).toBe(true);
    // The targeted schedules run in the sweep too, against the unmutated core.
    expect(results.some((result) => (result.faults['figure8Rounds'] ?? 0) > 0)).toBe(true);
    expect(results.some((result) => (result.faults['staleLeaders'] ?? 0) > 0)).toBe(true);
    expect(results.some((result) => (result.faults['pauses'] ?? 0) > 0)).toBe(true);
  }, 120_000);
});
