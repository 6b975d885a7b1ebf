import { describe, expect, it } from 'vitest';

import { SimCluster } from '../../src/raft-sim/cluster.js';
import { Prng } from '../../src/raft-sim/prng.js';
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

  it('resumes a paused leader with its clock caught up, then hands it what waited', () => {
    const cluster = new SimCluster(
      new Prng(5),
      {
        electionTimeoutTicks: 10,
        heartbeatTicks: 1,
        snapshotEveryEntries: 100,
        entriesKeptAfterCompaction: 5,
        preVote: true,
        checkQuorum: true,
        readOnlyOption: 'leaseBased',
        maxSizePerMessageBytes: 1024 * 1024,
        maxInflightMessages: 256,
        maxUncommittedEntriesBytes: 4096,
      },
      [1, 2, 3],
    );
    while (cluster.leader() === undefined) cluster.runTick();
    const paused = cluster.leader()!;
    const raft = paused.node!.raft;
    const ticksBefore = raft.ticksSinceStart;
    cluster.pause(paused.id);
    for (let tick = 0; tick < 40; tick += 1) cluster.runTick();
    // Frozen: no ticks, no input; the others elected a new leader meanwhile.
    expect(raft.ticksSinceStart).toBe(ticksBefore);
    expect(raft.role).toBe('leader');
    expect(cluster.leader()?.id).not.toBe(paused.id);
    expect(cluster.leader()).toBeDefined();
    cluster.resume(paused.id);
    // It ticked once per missed tick (CheckQuorum deposed it), then heard of the new term.
    expect(raft.ticksSinceStart).toBe(ticksBefore + 40);
    expect(raft.role).toBe('follower');
    expect(raft.term).toBe(cluster.leader()!.node!.raft.term);
    for (let tick = 0; tick < 20; tick += 1) cluster.runTick();
    expect(cluster.monitor.violations).toEqual([]);
  });
});
