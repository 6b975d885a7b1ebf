import { describe, expect, it } from 'vitest';

import { runSimulation } from '../../src/raft-sim/simulation.js';
import { historyChecker } from './checker.js';

describe('runSimulation', () => {
  it('replays exactly from a seed', () => {
    const first = runSimulation({ seed: 42, replicas: 3, ticks: 400, checkHistory: historyChecker });
    const second = runSimulation({ seed: 42, replicas: 3, ticks: 400, checkHistory: historyChecker });
    expect(second).toEqual(first);
    const other = runSimulation({ seed: 43, replicas: 3, ticks: 400, checkHistory: historyChecker });
    expect(other.faults).not.toEqual(first.faults);
  });

  it('commits client commands on a fault-free cluster and finds the history linearizable', () => {
    const result = runSimulation({
      seed: 7,
      replicas: 5,
      ticks: 400,
      checkHistory: historyChecker,
      faults: { crashes: false, partitions: false, transfers: false, membershipChanges: false },
    });
    expect(result.violations).toEqual([]);
    expect(result.linearizability).toBe('linearizable');
    expect(result.commandsCommitted).toBeGreaterThan(20);
  });

  it('reports a history the checker rejects as a linearizability violation', () => {
    const result = runSimulation({
      seed: 7,
      replicas: 3,
      ticks: 100,
      checkHistory: () => ({ result: 'not-linearizable', counterexample: { key: 'a', operations: [] } }),
    });
    expect(result.violations.map((v) => v.invariant)).toEqual(['linearizability']);
  });
});
