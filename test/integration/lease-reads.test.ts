import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathForKey } from '@impulse/common';
import { LocalCluster, type ReplicaProcess } from '@impulse/local-cluster';
import { FaultNetwork } from '@impulse/loadtest';
import { helloAtStreamStart } from '@impulse/shard-node';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';

const host = '127.0.0.1';

async function roleOf(cluster: LocalCluster, replica: ReplicaProcess): Promise<string> {
  const response = await rawRequest(replica.url, '/admin/status', {
    headers: cluster.adminHeaders(),
    timeoutMs: 2000,
  });
  return (response.json() as { role: string }).role;
}

/**
 * `--read-mode=lease`: the leader answers linearizable reads from its lease, without a heartbeat
 * round. The lease is measured on the Raft clock, so that clock must not stand still while the
 * process does: a leader paused past its lease (SIGSTOP) and cut off from its group must not
 * answer a read from the lease when it resumes, although no tick timer fired while it was stopped.
 */
describe('lease reads (--read-mode=lease) on a group of 3 replicas', () => {
  let cluster: LocalCluster;
  let network: FaultNetwork;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;

  beforeAll(async () => {
    directory = await temporaryDirectory('lease-reads');
    network = FaultNetwork.create({
      host,
      identifyDialler: (firstBytes) => {
        const hello = helloAtStreamStart(firstBytes);
        if (hello === undefined || hello === null) return hello;
        return `${hello.groupId}-r${hello.senderId}`;
      },
    });
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      host,
      advertisePeerPort: (replica, listenPort) =>
        network.addNode(replica.replicaId, { host, port: listenPort }),
      shardNodeArguments: ['--read-mode=lease'],
    });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    await network?.close();
    await directory?.remove();
  });

  it('serves reads from the lease, and a leader paused past its lease does not answer from it', async () => {
    const leader = await cluster.leaderOf('g1');
    const path = pathForKey('lease-key');
    expect((await rawRequest(leader.url, path, { method: 'PUT', body: 'before the pause' })).status).toBe(
      204,
    );
    expect((await rawRequest(leader.url, path)).body.toString()).toBe('before the pause');

    // Cut the leader off first, so that nothing it receives after resuming can tell it of a new term.
    network.isolate(leader.replicaId);
    cluster.signal(leader.replicaId, 'SIGSTOP');
    let resumed = false;
    try {
      const newLeader = await cluster.leaderOf('g1', 15_000, [leader.replicaId]);
      const deadline = Date.now() + 10_000;
      let status = 0;
      while (status !== 204 && Date.now() < deadline) {
        status = (await rawRequest(newLeader.url, path, { method: 'PUT', body: 'after the pause' })).status;
      }
      expect(status).toBe(204);
      cluster.signal(leader.replicaId, 'SIGCONT');
      resumed = true;
      // At once after resuming, still isolated: its lease ran out in real time while it was stopped.
      const direct = await rawRequest(leader.url, path, { timeoutMs: 10_000 });
      if (direct.status === 200) expect(direct.body.toString()).toBe('after the pause');
      else expect(errorCodeOf(direct)).toMatch(/NOT_LEADER|COMMIT_TIMEOUT/);
      expect(await roleOf(cluster, leader)).not.toBe('leader');
    } finally {
      if (!resumed) cluster.signal(leader.replicaId, 'SIGCONT');
      network.heal();
    }
    // Healed, the group serves the newest value, from whichever replica leads now.
    const current = await cluster.leaderOf('g1', 15_000);
    expect((await rawRequest(current.url, path)).body.toString()).toBe('after the pause');
  }, 60_000);
});
