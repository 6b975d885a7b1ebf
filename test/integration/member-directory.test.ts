import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster, type ReplicaProcess } from '@impulse/local-cluster';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { waitFor } from '../support/wait-for.js';
import { findLostWrites, startWriteLoad } from '../support/write-load.js';

interface Status {
  readonly voters: number[];
  readonly learners: number[];
  readonly appliedIndex: number;
  readonly commitIndex: number;
}

/** A replica's status, asked with the admin token of its cluster. */
async function statusOf(cluster: LocalCluster, replica: ReplicaProcess): Promise<Status> {
  return (
    await rawRequest(replica.url, '/admin/status', { headers: cluster.adminHeaders() })
  ).json() as Status;
}

/**
 * Adds `newcomer` as a learner through the current leader, retried until it is added; a leader
 * that refuses it as already a member fails the test.
 */
async function addLearner(running: LocalCluster, newcomer: ReplicaProcess): Promise<void> {
  const member = {
    replicaId: newcomer.replicaId,
    raftId: newcomer.raftId,
    url: newcomer.url,
    peerAddress: `${running.host}:${newcomer.peerPort}`,
  };
  await waitFor('the learner to be added', async () => {
    const leader = await running.leaderOf('g1', 5_000);
    const added = await rawRequest(leader.url, '/admin/members', {
      headers: running.adminHeaders(),
      method: 'POST',
      body: JSON.stringify(member),
    });
    expect(errorCodeOf(added), added.body.toString()).not.toBe('MEMBERSHIP_CHANGE_REFUSED');
    return added.status === 200;
  });
}

/**
 * The member directory (each member's addresses) follows the configuration, whatever way a replica
 * learns it. Found by the chaos tool's 300 s runs: a replica that caught up by snapshot over a
 * replacement kept refusing the new member (`unknownPeer`) both ways, so the group lost its
 * quorum when the one member it still reached stopped; and a leader restarted with a cluster
 * configuration that already listed a newcomer refused to add it ("already a member").
 */
describe('member directory', () => {
  let cluster: LocalCluster | undefined;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>> | undefined;

  afterEach(async () => {
    await cluster?.stop();
    await directory?.remove();
    cluster = undefined;
    directory = undefined;
  });

  async function replace(running: LocalCluster, leaving: ReplicaProcess): Promise<ReplicaProcess> {
    const newcomer = await running.addReplica('g1');
    await addLearner(running, newcomer);
    await waitFor('the promotion', async () => {
      const leader = await running.leaderOf('g1', 5_000);
      const promoted = await rawRequest(leader.url, `/admin/members/${newcomer.replicaId}/promote`, {
        headers: running.adminHeaders(),
        method: 'POST',
      });
      return promoted.status === 200;
    });
    await waitFor('the removal', async () => {
      const leader = await running.leaderOf('g1', 5_000);
      const removed = await rawRequest(leader.url, `/admin/members/${leaving.replicaId}`, {
        headers: running.adminHeaders(),
        method: 'DELETE',
      });
      return removed.status === 200;
    });
    await running.retire(leaving.replicaId);
    return newcomer;
  }

  it('a replica that caught up by snapshot over a replacement reaches the new member', async () => {
    directory = await temporaryDirectory('member-directory');
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      readyTimeoutMs: 15_000,
      // Compacted often: the paused replica can only catch up by snapshot.
      shardNodeArguments: ['--snapshot-entries=200', '--snapshot-catch-up-entries=20'],
    });
    const running = cluster;
    const leader = await running.leaderOf('g1');
    const [paused, leaving] = running.group('g1').filter((replica) => replica !== leader) as [
      ReplicaProcess,
      ReplicaProcess,
    ];
    const load = startWriteLoad(running.gatewayUrl, { concurrency: 8, prefix: 'directory' });
    running.signal(paused.replicaId, 'SIGSTOP');
    // The leader's window of unacknowledged messages to the paused replica fills long before the
    // replacement: its entries can only reach it inside a snapshot.
    await waitFor('the log to move on', async () => (await statusOf(running, leader)).commitIndex > 600);
    const newcomer = await replace(running, leaving);
    // Far past the paused replica, and past the replacement, in compacted log.
    const replacedAt = (await statusOf(running, leader)).commitIndex;
    await waitFor(
      'the log to move on',
      async () => (await statusOf(running, leader)).commitIndex > replacedAt + 600,
    );
    running.signal(paused.replicaId, 'SIGCONT');
    await waitFor('the paused replica to catch up', async () => {
      const status = await statusOf(running, paused);
      return (
        status.voters.includes(newcomer.raftId) &&
        status.appliedIndex >= (await statusOf(running, leader)).commitIndex - 50
      );
    });
    // Without the leader, the group is the caught-up replica and the newcomer: they must reach
    // each other to elect a leader and serve.
    await running.kill(leader.replicaId);
    const next = await running.leaderOf('g1', 15_000);
    expect([paused.replicaId, newcomer.replicaId]).toContain(next.replicaId);
    const result = await load.stop();
    expect(result.acknowledged.size).toBeGreaterThan(100);
    expect(await findLostWrites(running.gatewayUrl, result.acknowledged)).toEqual([]);
  }, 120_000);

  it('a leader restarted with a configuration that lists a newcomer still adds it', async () => {
    directory = await temporaryDirectory('member-directory-config');
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      readyTimeoutMs: 15_000,
    });
    const running = cluster;
    const leader = await running.leaderOf('g1');
    // The newcomer's process runs (and is in the cluster configuration every start now gets)
    // before it is added: a leader restarted meanwhile must not count it as a member.
    const newcomer = await running.addReplica('g1');
    const founders = running.group('g1').filter((replica) => replica !== newcomer);
    expect(founders.map((replica) => replica.replicaId)).toContain(leader.replicaId);
    // Every founder restarted: whichever leads now was given the newcomer's addresses at start.
    await Promise.all(founders.map((replica) => running.kill(replica.replicaId)));
    await Promise.all(founders.map((replica) => running.restart(replica.replicaId)));
    for (const replica of founders) {
      const status = await statusOf(running, replica);
      expect([...status.voters, ...status.learners]).not.toContain(newcomer.raftId);
    }
    await addLearner(running, newcomer);
    expect((await statusOf(running, await running.leaderOf('g1'))).learners).toContain(newcomer.raftId);
    // The launcher never gives a retired replica's Raft id to another one.
    await running.retire(newcomer.replicaId);
    const nextRaftId = newcomer.raftId + 1;
    const starting = running.addReplica('g1');
    // A replica is in its group as soon as its start begins, but not ready until it answers:
    // fault injectors pick only ready ones (chaos seed 11006 killed a newcomer mid-start).
    let seen: ReplicaProcess | undefined;
    while (seen === undefined) {
      seen = running.group('g1').find((replica) => replica.raftId === nextRaftId);
      if (seen === undefined) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(running.isReady(seen.replicaId)).toBe(false);
    expect((await starting).raftId).toBe(nextRaftId);
    expect(running.isReady(seen.replicaId)).toBe(true);
  }, 120_000);
});
