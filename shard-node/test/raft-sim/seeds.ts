import { expect } from 'vitest';

import { runSimulation, type SimulationResult } from '../../src/raft-sim/simulation.js';
import { historyChecker } from './checker.js';

/** Ticks with faults per seed in the seed sweeps: sized so that 500 seeds take well under 60 s. */
export const sweepTicks = 500;

/** Options of a sweep beyond the seeds and the replica count. */
export interface SweepOptions {
  /** Lease-based reads (`readOnlyOption: 'leaseBased'`, with CheckQuorum); default false. */
  readonly leaseReads?: boolean;
}

/** Runs seeds [first, first + count) and expects no violation, naming the replay command if any. */
export function expectSeedsPass(
  first: number,
  count: number,
  replicas: 3 | 5,
  sweep: SweepOptions = {},
): SimulationResult[] {
  const leaseReads = sweep.leaseReads === true;
  const results: SimulationResult[] = [];
  const failures: string[] = [];
  for (let seed = first; seed < first + count; seed += 1) {
    const result = runSimulation({
      seed,
      replicas,
      ticks: sweepTicks,
      leaseReads,
      checkHistory: historyChecker,
    });
    results.push(result);
    if (result.violations.length > 0) {
      failures.push(
        `seed ${seed}: ${result.violations.map((v) => `${v.invariant}: ${v.detail.split('\n')[0]}`).join('; ')}` +
          ` (replay: npm run sim:core -- --seeds 1 --seed ${seed} --replicas ${replicas} --ticks ${sweepTicks}` +
          `${leaseReads ? ' --lease-reads' : ''} --verbose)`,
      );
    }
  }
  expect(failures).toEqual([]);
  return results;
}
