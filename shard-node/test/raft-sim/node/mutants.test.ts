import { describe, expect, it } from 'vitest';
import {
  huntNodeMutant,
  nodeHuntFailure,
  nodeMutantSeedsMax,
  nodeMutantSpecs,
  runNodeMutantSeed,
} from '../../../src/raft-sim/node/mutants.js';

/**
 * Mutation testing of the node simulator (docs/raft.md, "The node simulator's mutants"): each
 * planted bug must be caught under its targeted schedule within `nodeMutantSeedsMax` seeds, by the
 * check expected, and the catching seed must run clean without it. The schedules must also pass
 * on their own, with the real code: a schedule that failed without any bug would prove nothing.
 */
const controlSeeds = [1, 2, 3];

describe('node simulator: planted bugs caught by targeted schedules', () => {
  it('has a mutant for each rule, each under its own schedule', () => {
    expect(nodeMutantSpecs.map((spec) => [spec.mutant, spec.simulation.schedule])).toEqual([
      ['commit-earlier-term', 'figure8'],
      ['no-check-quorum-step-down', 'isolated-leaders'],
      ['node-acknowledges-heartbeats', 'deposed-leader-reads'],
    ]);
  });

  for (const spec of nodeMutantSpecs) {
    it(
      `catches ${spec.mutant} under ${spec.simulation.schedule} within ${nodeMutantSeedsMax} seeds`,
      { timeout: 120_000 },
      async () => {
        const hunt = await huntNodeMutant(spec);
        expect(nodeHuntFailure(spec, hunt), JSON.stringify(hunt.caught)).toBeUndefined();
        expect(hunt.caught?.seed).toBeLessThanOrEqual(nodeMutantSeedsMax);
      },
    );

    it(
      `passes ${spec.simulation.schedule} without the bug (seeds ${controlSeeds.join(', ')})`,
      { timeout: 120_000 },
      async () => {
        for (const seed of controlSeeds) {
          const result = await runNodeMutantSeed(spec, seed, false);
          expect(result.problems, `seed ${seed}`).toEqual([]);
          expect(result.linearizable, `seed ${seed}`).toBe('linearizable');
          // The schedule acted: a run in which it injected nothing would pass for nothing.
          expect(Object.values(result.faults).reduce((sum, faults) => sum + faults, 0)).toBeGreaterThan(0);
        }
      },
    );
  }
});
