import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathForKey } from '@impulse/common';
import { LocalCluster, type ReplicaProcess } from '@impulse/local-cluster';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { findLostWrites, startWriteLoad } from '../support/write-load.js';
import { waitFor } from '../support/wait-for.js';

interface Status {
  role: string;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  snapshotIndex: number;
  firstIndex: number;
  lastIndex: number;
  leaderReplicaId: string | null;
}

/** A replica's status, asked with the admin token of its cluster. */
async function statusOf(cluster: LocalCluster, replica: ReplicaProcess): Promise<Status> {
  return (
    await rawRequest(replica.url, '/admin/status', { headers: cluster.adminHeaders(), timeoutMs: 2000 })
  ).json() as Status;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The sum of the samples of `name` on `replica`'s /metrics whose labels include every one of
 * `labels`; undefined when it has no such sample.
 */
async function metricOf(
  replica: ReplicaProcess,
  name: string,
  labels: Readonly<Record<string, string>>,
): Promise<number | undefined> {
  const text = (await rawRequest(replica.url, '/metrics', { timeoutMs: 2000 })).body.toString();
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([label, value]) => line.includes(`${label}="${value}"`))) continue;
    sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * One shard group of 3 replicas behind the gateway, with default Raft timing (100 ms ticks, an
 * election timeout of 1 to 2 s) and small snapshots so that compaction happens within a test.
 */
describe('a replicated shard group (3 replicas) under crashes and pauses', () => {
  let cluster: LocalCluster;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  const put = (key: string, value: string): Promise<number> =>
    rawRequest(cluster.gatewayUrl, pathForKey(key), { method: 'PUT', body: value }).then(
      (response) => response.status,
    );
  const get = async (key: string): Promise<string | undefined> => {
    const response = await rawRequest(cluster.gatewayUrl, pathForKey(key));
    return response.status === 200 ? response.body.toString() : undefined;
  };

  beforeAll(async () => {
    directory = await temporaryDirectory('replication');
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      logLevel: 'info',
      shardNodeArguments: ['--snapshot-entries=400', '--snapshot-catch-up-entries=100'],
    });
    await cluster.leaderOf('g1');
  });

  afterAll(async () => {
    await cluster?.stop();
    await directory?.remove();
  });

  it('replicates every write to every replica, and followers send clients to the leader', async () => {
    expect(await put('replicated', 'everywhere')).toBe(204);
    const leader = await cluster.leaderOf('g1');
    for (const replica of cluster.group('g1')) {
      await waitFor(`${replica.replicaId} to apply`, async () => {
        const response = await rawRequest(replica.url, `${pathForKey('replicated')}?consistency=stale`);
        return response.body.toString() === 'everywhere';
      });
      if (replica === leader) continue;
      const direct = await rawRequest(replica.url, pathForKey('replicated'));
      expect(direct.status).toBe(421);
      expect(errorCodeOf(direct)).toBe('NOT_LEADER');
      expect((direct.json() as { error: { leaderHint: string } }).error.leaderHint).toBe(leader.replicaId);
    }
    const status = await statusOf(cluster, leader);
    expect(status).toMatchObject({ role: 'leader', leaderReplicaId: leader.replicaId });
    const map = (
      await rawRequest(cluster.gatewayUrl, '/admin/cluster', { headers: cluster.adminHeaders() })
    ).json() as {
      groups: {
        id: string;
        leader: string;
        term: number;
        replicas: { id: string; role: string; commitIndex: number }[];
      }[];
    };
    expect(map.groups[0]?.leader).toBe(leader.replicaId);
    expect(map.groups[0]?.term).toBe(status.term);
    expect(map.groups[0]?.replicas.map((replica) => replica.role).sort()).toEqual([
      'follower',
      'follower',
      'leader',
    ]);
    expect(map.groups[0]?.replicas.every((replica) => replica.commitIndex > 0)).toBe(true);
    const invalid = await rawRequest(leader.url, `${pathForKey('replicated')}?consistency=eventual`);
    expect(errorCodeOf(invalid)).toBe('INVALID_REQUEST');
  });

  it('applies a retried write once: the same request id after another write changes nothing', async () => {
    const send = (value: string, requestId?: string): Promise<number> =>
      rawRequest(cluster.gatewayUrl, pathForKey('retried'), {
        method: 'PUT',
        body: value,
        ...(requestId === undefined ? {} : { headers: { 'x-impulse-request-id': requestId } }),
      }).then((response) => response.status);
    expect(await send('first', 'retry-test-1')).toBe(204);
    expect(await send('second')).toBe(204);
    // The retry of the first write (its answer was "lost"): acknowledged, but not applied again.
    expect(await send('first', 'retry-test-1')).toBe(204);
    expect(await get('retried')).toBe('second');
    const deleted = await rawRequest(cluster.gatewayUrl, pathForKey('retried'), {
      method: 'DELETE',
      headers: { 'x-impulse-request-id': 'retry-test-2' },
    });
    expect(deleted.status).toBe(204);
    expect(await send('third')).toBe(204);
    const deletedAgain = await rawRequest(cluster.gatewayUrl, pathForKey('retried'), {
      method: 'DELETE',
      headers: { 'x-impulse-request-id': 'retry-test-2' },
    });
    expect(deletedAgain.status).toBe(204);
    expect(await get('retried')).toBe('third');
  });

  it('elects a new leader within 3 s when the leader is killed during a write load, and loses no acknowledged write', async () => {
    const load = startWriteLoad(cluster.gatewayUrl, { concurrency: 8, prefix: 'failover' });
    await sleep(1500);
    const leader = await cluster.leaderOf('g1');
    const killedAtMs = Date.now();
    await cluster.kill(leader.replicaId);
    const newLeader = await cluster.leaderOf('g1', 10_000, [leader.replicaId]);
    const electedAfterMs = Date.now() - killedAtMs;
    // The first write acknowledged after the kill shows when the group served writes again.
    let servedAfterMs = Number.POSITIVE_INFINITY;
    await waitFor('a write acknowledged by the new leader', async () => {
      const started = Date.now();
      const status = await put(`after-kill-${started}`, 'x');
      if (status === 204) servedAfterMs = Date.now() - killedAtMs;
      return status === 204;
    });
    await sleep(1000);
    const result = await load.stop();
    console.log(
      `failover: ${newLeader.replicaId} elected ${electedAfterMs} ms after kill -9 of ${leader.replicaId}; ` +
        `writes served again after ${servedAfterMs} ms; ${result.acknowledged.size} writes acknowledged, ${result.uncertain} uncertain`,
    );
    expect(servedAfterMs).toBeLessThan(3000);
    await cluster.restart(leader.replicaId);
    expect(await findLostWrites(cluster.gatewayUrl, result.acknowledged)).toEqual([]);
  });

  it('lets a killed follower catch up after a restart', async () => {
    const leader = await cluster.leaderOf('g1');
    const follower = cluster.group('g1').find((replica) => replica !== leader) as ReplicaProcess;
    await cluster.kill(follower.replicaId);
    const load = startWriteLoad(cluster.gatewayUrl, { concurrency: 4, prefix: 'follower-down' });
    await sleep(1500);
    const result = await load.stop();
    expect(result.acknowledged.size).toBeGreaterThan(10);
    await cluster.restart(follower.replicaId);
    const target = (await statusOf(cluster, leader)).commitIndex;
    await waitFor(
      `${follower.replicaId} to catch up to ${target}`,
      async () => (await statusOf(cluster, follower)).appliedIndex >= target,
    );
    for (const [key, value] of [...result.acknowledged].slice(-20)) {
      const response = await rawRequest(follower.url, `${pathForKey(key)}?consistency=stale`);
      expect(response.body.toString()).toBe(value);
    }
  });

  it('catches up by snapshot a replica that was down while the leader compacted its log', async () => {
    const leader = await cluster.leaderOf('g1');
    const follower = cluster.group('g1').find((replica) => replica !== leader) as ReplicaProcess;
    await cluster.kill(follower.replicaId);
    const written = new Map<string, string>();
    // The follower's log ends at or before the highest last index of the group when it died.
    const others = cluster.group('g1').filter((replica) => replica !== follower);
    const followerLastIndex = Math.max(
      ...(await Promise.all(others.map(async (replica) => (await statusOf(cluster, replica)).lastIndex))),
    );
    // Write until no live replica's log holds what the follower is missing: whichever of them
    // leads when it returns (leadership may move meanwhile) must send a snapshot.
    const everyLogCompactedPastFollower = async (): Promise<boolean> => {
      const statuses = await Promise.all(others.map((replica) => statusOf(cluster, replica)));
      return statuses.every((status) => status.firstIndex > followerLastIndex + 1);
    };
    for (let batch = 0; !(await everyLogCompactedPastFollower()); batch++) {
      expect(batch, 'the leader never compacted past the follower').toBeLessThan(200);
      await Promise.all(
        Array.from({ length: 40 }, async (_, index) => {
          const key = `compacted-${batch}-${index}`;
          if ((await put(key, key)) === 204) written.set(key, key);
        }),
      );
    }
    // A compacted log is not enough: the appends the leader built for the follower before it
    // compacted may still wait in its send queue. A peer transport keeps a disconnected peer's
    // messages for `disconnectedBufferMs` (1 s) and hands them to the peer's next connection, the
    // restarted process included; a follower back within that second caught up from them without a
    // snapshot, and this test failed now and then. Once no live replica has anything queued for the
    // follower, all they can send it later is read from logs that no longer hold what it misses.
    const peer = String(follower.raftId);
    await waitFor('every live replica to have nothing queued for the stopped follower', async () => {
      const queued = await Promise.all(
        others.map((replica) => metricOf(replica, 'impulse_transport_send_queue_messages', { peer })),
      );
      return queued.every((messages) => messages === 0);
    });
    for (const replica of others) {
      const status = await statusOf(cluster, replica);
      expect(
        status.firstIndex,
        `${replica.replicaId}'s log still holds what ${follower.replicaId} is missing (its log ends at or before ${followerLastIndex})`,
      ).toBeGreaterThan(followerLastIndex + 1);
    }
    await cluster.restart(follower.replicaId);
    const target = (await statusOf(cluster, leader)).commitIndex;
    await waitFor(
      `${follower.replicaId} to catch up`,
      async () => (await statusOf(cluster, follower)).appliedIndex >= target,
      30_000,
    );
    // The counter moves once the install has also removed the old generation, a moment after the
    // applied index does.
    await waitFor(
      'the installed-snapshot counter',
      async () => ((await metricOf(follower, 'impulse_raft_snapshots_installed_total', {})) ?? 0) > 0,
    );
    for (const [key, value] of [...written].filter((_, index) => index % 37 === 0)) {
      const response = await rawRequest(follower.url, `${pathForKey(key)}?consistency=stale`);
      expect(response.body.toString(), key).toBe(value);
    }
  });

  it('keeps a paused (SIGSTOP) old leader from answering reads with stale data after it resumes', async () => {
    expect(await put('paused-key', 'before the pause')).toBe(204);
    const oldLeader = await cluster.leaderOf('g1');
    cluster.signal(oldLeader.replicaId, 'SIGSTOP');
    try {
      const newLeader = await cluster.leaderOf('g1', 10_000, [oldLeader.replicaId]);
      expect(newLeader.replicaId).not.toBe(oldLeader.replicaId);
      await waitFor(
        'the write after the pause',
        async () => (await put('paused-key', 'after the pause')) === 204,
      );
    } finally {
      cluster.signal(oldLeader.replicaId, 'SIGCONT');
    }
    // At once after resuming, the old leader still believes it leads; a linearizable read must
    // not be answered from its stale state.
    const direct = await rawRequest(oldLeader.url, pathForKey('paused-key'), { timeoutMs: 10_000 });
    if (direct.status === 200) expect(direct.body.toString()).toBe('after the pause');
    else expect(errorCodeOf(direct)).toMatch(/NOT_LEADER|COMMIT_TIMEOUT/);
    expect(await get('paused-key')).toBe('after the pause');
    await waitFor(
      'the old leader to step down',
      async () => (await statusOf(cluster, oldLeader)).role !== 'leader',
    );
  });

  it('hands leadership to another replica on request', async () => {
    const leader = await cluster.leaderOf('g1');
    const target = cluster.group('g1').find((replica) => replica !== leader) as ReplicaProcess;
    const follower = cluster
      .group('g1')
      .find((replica) => replica !== leader && replica !== target) as ReplicaProcess;
    const refused = await rawRequest(follower.url, '/admin/transfer-leadership', {
      headers: cluster.adminHeaders(),
      method: 'POST',
      body: JSON.stringify({ to: target.replicaId }),
    });
    expect(errorCodeOf(refused)).toBe('NOT_LEADER');
    const response = await rawRequest(leader.url, '/admin/transfer-leadership', {
      headers: cluster.adminHeaders(),
      method: 'POST',
      body: JSON.stringify({ to: target.replicaId }),
    });
    expect(response.status).toBe(200);
    expect((await cluster.leaderOf('g1')).replicaId).toBe(target.replicaId);
    expect(await put('after-transfer', 'ok')).toBe(204);
    const invalid = await rawRequest(target.url, '/admin/transfer-leadership', {
      headers: cluster.adminHeaders(),
      method: 'POST',
      body: 'not json',
    });
    expect(errorCodeOf(invalid)).toBe('INVALID_REQUEST');
  });

  it('loses no acknowledged write when every replica is killed at once and restarted', async () => {
    const load = startWriteLoad(cluster.gatewayUrl, { concurrency: 8, prefix: 'all-down' });
    await sleep(1500);
    await Promise.all(cluster.group('g1').map((replica) => cluster.kill(replica.replicaId)));
    const result = await load.stop();
    expect(result.acknowledged.size).toBeGreaterThan(10);
    await Promise.all(cluster.group('g1').map((replica) => cluster.restart(replica.replicaId)));
    await cluster.leaderOf('g1');
    expect(await findLostWrites(cluster.gatewayUrl, result.acknowledged)).toEqual([]);
  });

  it('replaces a replica of the live group under write load: add a learner, promote it, remove the old one', async () => {
    const load = startWriteLoad(cluster.gatewayUrl, { concurrency: 4, prefix: 'membership' });
    try {
      const leader = await cluster.leaderOf('g1');
      const newcomer = await cluster.addReplica('g1');
      const member = {
        replicaId: newcomer.replicaId,
        raftId: newcomer.raftId,
        url: newcomer.url,
        peerAddress: `${cluster.host}:${newcomer.peerPort}`,
      };
      const early = await rawRequest(leader.url, `/admin/members/${newcomer.replicaId}/promote`, {
        headers: cluster.adminHeaders(),
        method: 'POST',
      });
      expect(errorCodeOf(early)).toBe('MEMBERSHIP_CHANGE_REFUSED');
      const added = await rawRequest(leader.url, '/admin/members', {
        headers: cluster.adminHeaders(),
        method: 'POST',
        body: JSON.stringify(member),
      });
      expect(added.status, added.body.toString()).toBe(200);
      expect((added.json() as { learners: number[] }).learners).toContain(newcomer.raftId);
      const again = await rawRequest(leader.url, '/admin/members', {
        headers: cluster.adminHeaders(),
        method: 'POST',
        body: JSON.stringify(member),
      });
      expect(errorCodeOf(again)).toBe('MEMBERSHIP_CHANGE_REFUSED');
      // The learner catches up (by snapshot: the log was compacted long ago), then is promoted.
      await waitFor('the learner to catch up', async () => {
        const target = (await statusOf(cluster, leader)).commitIndex;
        return (await statusOf(cluster, newcomer)).appliedIndex >= target - 50;
      });
      let promoted = false;
      await waitFor('the promotion', async () => {
        const response = await rawRequest(leader.url, `/admin/members/${newcomer.replicaId}/promote`, {
          headers: cluster.adminHeaders(),
          method: 'POST',
        });
        promoted = response.status === 200;
        return promoted;
      });
      // Remove an old replica that is not the leader, and stop its process.
      const leaving = cluster
        .group('g1')
        .find((replica) => replica !== leader && replica !== newcomer) as ReplicaProcess;
      const removed = await rawRequest(leader.url, `/admin/members/${leaving.replicaId}`, {
        headers: cluster.adminHeaders(),
        method: 'DELETE',
      });
      expect(removed.status, removed.body.toString()).toBe(200);
      const status = removed.json() as { voters: number[]; learners: number[] };
      expect(status.voters.sort()).toEqual(
        cluster
          .group('g1')
          .filter((replica) => replica !== leaving)
          .map((replica) => replica.raftId)
          .sort(),
      );
      await cluster.retire(leaving.replicaId);
      // The group still commits with the new member as one of its three voters.
      await sleep(1000);
    } finally {
      const result = await load.stop();
      expect(result.acknowledged.size).toBeGreaterThan(10);
      expect(await findLostWrites(cluster.gatewayUrl, result.acknowledged)).toEqual([]);
    }
    // The newcomer can lead: hand it leadership, and the gateway finds it from the NOT_LEADER hint.
    const leader = await cluster.leaderOf('g1');
    const newcomer = cluster.group('g1').find((replica) => replica.raftId === 4) as ReplicaProcess;
    const moved = await rawRequest(leader.url, '/admin/transfer-leadership', {
      headers: cluster.adminHeaders(),
      method: 'POST',
      body: JSON.stringify({ to: newcomer.replicaId }),
    });
    expect(moved.status, moved.body.toString()).toBe(200);
    const ledByNewcomer = await rawRequest(cluster.gatewayUrl, pathForKey('led-by-newcomer'), {
      method: 'PUT',
      body: 'yes',
    });
    expect(ledByNewcomer.status, ledByNewcomer.body.toString()).toBe(204);
    expect(await get('led-by-newcomer')).toBe('yes');
  });
});
