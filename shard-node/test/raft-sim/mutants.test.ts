import { describe, expect, it } from 'vitest';

import {
  huntFailure,
  huntMutant,
  mutantSeedsMax,
  mutantSpecs,
  type MutantHunt,
} from '../../src/raft-sim/mutants.js';
import { historyChecker } from './checker.js';

// Mutation testing of the simulator (docs/raft.md, "The simulator's mutants"): each planted bug
// must break an invariant within `mutantSeedsMax` seeds, and the seed that catches it must run
// clean without it. This is what shows the simulator's checks can fail.
describe('the simulator catches every planted bug', () => {
  it('has a mutant for each rule the issue names, each run under its own schedule', () => {
    expect(mutantSpecs.map((spec) => spec.mutant)).toEqual([
      'commit-earlier-term',
      'leader-keeps-leading-on-higher-term',
      'no-check-quorum-step-down',
      'two-votes-per-term',
      'lease-without-fresh-quorum',
      'ack-before-persist',
    ]);
  });

  for (const spec of mutantSpecs) {
    it(`catches ${spec.mutant} within ${mutantSeedsMax} seeds`, () => {
      const hunt: MutantHunt = huntMutant(spec, historyChecker);
      expect(huntFailure(spec, hunt)).toBeUndefined();
      expect(hunt.caught?.seed).toBeLessThanOrEqual(mutantSeedsMax);
    }, 60_000);
  }
});
