import { describe, expect, it } from 'vitest';

import { expectSeedsPass } from './seeds.js';

describe('seeded simulation, 5 replicas, all faults', () => {
  it('keeps every invariant on seeds 10001-10200', () => {
    const results = expectSeedsPass(10_001, 200, 5);
    expect(results.reduce((sum, result) => sum + result.operationsOk, 0)).toBeGreaterThan(5_000);
  }, 120_000);
});
