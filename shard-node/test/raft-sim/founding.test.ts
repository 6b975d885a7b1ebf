import { describe, expect, it } from 'vitest';
import { SimCluster } from '../../src/raft-sim/cluster.js';
import { Prng } from '../../src/raft-sim/prng.js';

const replicaOptions = {
  electionTimeoutTicks: 10,
  heartbeatTicks: 1,
  snapshotEveryEntries: 10,
  entriesKeptAfterCompaction: 2,
  preVote: true,
  checkQuorum: true,
  readOnlyOption: 'safe' as const,
  maxSizePerMessageBytes: 1024 * 1024,
  maxInflightMessages: 256,
  maxUncommittedEntriesBytes: 4096,
};

/**
 * The simulator founds as the host does (docs/decisions/0009-found-a-group-once.md): the initial
 * members once, a newcomer under a fresh id with empty storage, never an id a second time.
 */
describe('simulator founding', () => {
  it('refuses to start a replica under an id started before, initial or removed', () => {
    const cluster = new SimCluster(new Prng(7), replicaOptions, [1, 2, 3]);
    expect(() => cluster.addReplica(2)).toThrow(/replica 2 was started before; ids are never reused/);
    cluster.addReplica(4);
    cluster.destroyReplica(4);
    expect(() => cluster.addReplica(4)).toThrow(/replica 4 was started before/);
    expect(cluster.addReplica(5).id).toBe(5);
  });
});
