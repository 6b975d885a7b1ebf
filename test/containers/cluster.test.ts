import { describe, expect, it } from 'vitest';
import { pathForKey } from '@impulse/common';
import { errorCodeOf, rawRequest } from '../support/http.js';
import type { ReplicaNode } from './cluster.js';
import { Client, describeResponse, eventually, keysOnGroup, startClusterForTest } from './support.js';

/**
 * The project image, run as a cluster of containers: 3 single-replica shard groups and a gateway
 * that finds them by their network aliases. The host speaks to the gateway through its mapped port.
 */
describe('a cluster of containers from the project image', () => {
  it('puts, gets and deletes through the gateway, each key on its own group', async () => {
    const { cluster } = await startClusterForTest({ groups: 3 });
    const client = new Client(() => cluster.gatewayUrl);

    expect((await client.put('greeting', 'hello')).status).toBe(204);
    const got = await client.get('greeting');
    expect(got.status).toBe(200);
    expect(got.body.toString()).toBe('hello');
    const binary = Buffer.from([0, 1, 2, 255, 254, 0, 10, 13]);
    expect((await client.put('photos/1', binary)).status).toBe(204);
    expect((await client.get('photos/1')).body.equals(binary)).toBe(true);
    expect((await client.delete('greeting')).status).toBe(204);
    const gone = await client.get('greeting');
    expect(gone.status).toBe(404);
    expect(errorCodeOf(gone)).toBe('NOT_FOUND');

    // Every group gets its keys, and only its keys: the gateway routed over the network aliases.
    for (const replica of cluster.replicas) {
      const keys = keysOnGroup(replica.groupId, 3, 5, 'spread');
      for (const key of keys) expect((await client.put(key, key)).status).toBe(204);
      for (const key of keys) {
        const direct = await rawRequest(cluster.replicaUrl(replica.replicaId), pathForKey(key));
        expect(direct.status, `${key} on ${replica.replicaId}`).toBe(200);
      }
      const status = (
        await rawRequest(cluster.replicaUrl(replica.replicaId), '/admin/status', {
          headers: cluster.adminHeaders(),
        })
      ).json() as Record<string, unknown>;
      expect(status).toMatchObject({
        groupId: replica.groupId,
        replicaId: replica.replicaId,
        engine: 'leveldb',
      });
    }

    const map = (
      await rawRequest(cluster.gatewayUrl, '/admin/cluster', { headers: cluster.adminHeaders() })
    ).json() as {
      groups: { id: string; replicas: { id: string; url: string }[] }[];
    };
    expect(map.groups.map((group) => group.replicas[0]?.url)).toEqual([
      'http://g1-r1:7001',
      'http://g2-r1:7001',
      'http://g3-r1:7001',
    ]);
    const metrics = await rawRequest(cluster.gatewayUrl, '/metrics');
    expect(metrics.body.toString()).toContain('impulse_http_requests_total');
  });

  it('runs a replicated group: one leader, and writes survive the loss of the leader', async () => {
    const { cluster, faults } = await startClusterForTest({
      groups: 1,
      replicasPerGroup: 3,
      gatewayArguments: ['--upstream-timeout=2s'],
    });
    const client = new Client(() => cluster.gatewayUrl);
    expect(cluster.replicas.map((replica) => replica.replicaId)).toEqual(['g1-r1', 'g1-r2', 'g1-r3']);

    /** The replica every reachable member names as leader, once they agree on one. */
    const agreedLeader = async (members: readonly ReplicaNode[]): Promise<string | undefined> => {
      const statuses = await Promise.all(
        members.map(
          async (replica) =>
            (
              await rawRequest(cluster.replicaUrl(replica.replicaId), '/admin/status', {
                headers: cluster.adminHeaders(),
              })
            ).json() as {
              role?: string;
              leaderReplicaId?: string | null;
            },
        ),
      );
      const leaders = new Set(statuses.map((status) => status.leaderReplicaId ?? null));
      const [leader] = [...leaders];
      const leaderCount = statuses.filter((status) => status.role === 'leader').length;
      return leaders.size === 1 && typeof leader === 'string' && leaderCount === 1 ? leader : undefined;
    };

    let leader: string | undefined;
    await eventually('a leader the whole group agrees on', async () => {
      leader = await agreedLeader(cluster.replicas);
      return leader !== undefined || 'no agreed leader yet';
    });
    await eventually('a write through the gateway', async () => {
      const response = await client.put('replicated', 'before');
      return response.status === 204 || describeResponse(response);
    });
    expect((await client.get('replicated')).body.toString()).toBe('before');

    // SIGKILL the leader: the two others elect a new one, and the gateway finds it.
    const victim = cluster.replica(leader ?? '');
    await faults.kill(victim);
    const survivors = cluster.replicas.filter((replica) => replica !== victim);
    await eventually('a new leader among the survivors', async () => {
      const next = await agreedLeader(survivors);
      return (next !== undefined && next !== victim.replicaId) || `leader: ${String(next)}`;
    });
    await eventually('a write after the failover', async () => {
      const response = await client.put('replicated', 'after');
      return response.status === 204 || describeResponse(response);
    });
    const read = await client.get('replicated');
    expect(read.status, describeResponse(read)).toBe(200);
    expect(read.body.toString()).toBe('after');

    // The old leader comes back from its volume as a follower, and catches up.
    await faults.restart(victim);
    await eventually('the restarted replica follows the new leader', async () => {
      const next = await agreedLeader(cluster.replicas);
      return (next !== undefined && next !== victim.replicaId) || `leader: ${String(next)}`;
    });
  });
});
