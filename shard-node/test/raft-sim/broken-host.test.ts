import { describe, expect, it } from 'vitest';

import { runSimulation, type SimulationOptions } from '../../src/raft-sim/simulation.js';
import { historyChecker } from './checker.js';

/** The invariants broken over a range of seeds. */
function brokenInvariants(options: Omit<SimulationOptions, 'seed'>, seeds: number): Set<string> {
  const invariants = new Set<string>();
  for (let seed = 1; seed <= seeds; seed += 1) {
    for (const violation of runSimulation({ ...options, seed }).violations)
      invariants.add(violation.invariant);
  }
  return invariants;
}

describe('the simulator catches deliberately broken hosts', () => {
  it('finds stale reads when reads skip ReadIndex', () => {
    const invariants = brokenInvariants(
      { replicas: 3, ticks: 400, checkHistory: historyChecker, unsafeLocalReads: true },
      20,
    );
    expect([...invariants]).toEqual(['linearizability']);
  });

  it('finds lost entries when messages are sent before the Ready is persisted', () => {
    const invariants = brokenInvariants(
      {
        replicas: 3,
        ticks: 400,
        checkHistory: historyChecker,
        unsafeSendBeforePersist: true,
        faults: {
          crashes: true,
          partitions: true,
          transfers: true,
          membershipChanges: false,
          crashProbability: 0.1,
        },
      },
      40,
    );
    expect([...invariants]).not.toEqual([]);
  });
});
