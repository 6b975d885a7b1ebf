import { describe, expect, it } from 'vitest';
import { groupHeader, pathForKey } from '@impulse/common';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { gatewayClusterMap, groupsLedBy, leadersOf, nodeLeadingMost, replicaStatus } from './admin.js';
import { Client, describeResponse, eventually, keysOnGroup, startClusterForTest } from './support.js';

/**
 * The project image, run as production runs it: 3 node containers, each hosting a replica of the
 * shard groups g1, g2 and g3, and a gateway that finds the nodes by their network aliases. The
 * host speaks to the gateway through its mapped port.
 */
describe('a cluster of node containers from the project image', () => {
  it('puts, gets and deletes through the gateway, each key on its own group, on every node', async () => {
    const { cluster } = await startClusterForTest();
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

    // Every group gets its keys, and only its keys: the gateway routed over the network aliases,
    // by the group header, and every node's replica of the group holds them (stale reads: only a
    // leader serves linearizable ones). Another group's replica on the same node has none of them.
    const groups = cluster.groupIds;
    for (const groupId of groups) {
      const keys = keysOnGroup(groupId, groups.length, 5, 'spread');
      for (const key of keys) expect((await client.put(key, key)).status).toBe(204);
      const otherGroup = groups.find((candidate) => candidate !== groupId) as string;
      for (const node of cluster.nodes) {
        const read = (key: string, group: string) =>
          rawRequest(cluster.urlOf(node), `${pathForKey(key)}?consistency=stale`, {
            headers: { [groupHeader]: group },
          });
        await eventually(`${groupId}'s keys on ${node.nodeId}`, async () => {
          for (const key of keys) {
            const direct = await read(key, groupId);
            if (direct.status !== 200 || direct.body.toString() !== key) {
              return `${key}: ${describeResponse(direct)}`;
            }
          }
          return true;
        });
        const elsewhere = await read(keys[0] as string, otherGroup);
        expect(elsewhere.status, `${keys[0]} in ${otherGroup} on ${node.nodeId}`).toBe(404);
        expect(await replicaStatus(cluster, node, groupId)).toMatchObject({
          groupId,
          replicaId: cluster.replicaIdOn(node, groupId),
          engine: 'leveldb',
        });
      }
    }

    const map = await gatewayClusterMap(cluster);
    const nodeUrls = cluster.config.nodes.map((node) => node.url);
    expect(nodeUrls[0]).toBe('http://impulse-node-0.impulse-node:7001');
    for (const group of map.groups) {
      expect(group.replicas.map((replica) => replica.url).sort(), group.id).toEqual(nodeUrls);
    }
    const metrics = await rawRequest(cluster.gatewayUrl, '/metrics');
    expect(metrics.body.toString()).toContain('impulse_http_requests_total');
  });

  it('elects a leader per group; each group a killed node led fails over, and the node comes back as a follower', async () => {
    const { cluster, faults } = await startClusterForTest({ gatewayArguments: ['--upstream-timeout=2s'] });
    const client = new Client(() => cluster.gatewayUrl);
    const groups = cluster.groupIds;
    const keyOf = (groupId: string): string =>
      keysOnGroup(groupId, groups.length, 1, 'replicated')[0] as string;

    // Every node names the same leader for each group.
    const leaders = await leadersOf(cluster, { unanimous: true });
    for (const groupId of groups) {
      await eventually(`a write to ${groupId} through the gateway`, async () => {
        const response = await client.put(keyOf(groupId), 'before');
        return response.status === 204 || describeResponse(response);
      });
    }

    // SIGKILL of the node that leads the most groups takes a replica of every group with it: the
    // groups it led elect a leader on the other nodes, and the gateway finds them.
    const victim = nodeLeadingMost(cluster, leaders);
    const led = groupsLedBy(cluster, leaders).find((entry) => entry.node === victim)?.groups ?? [];
    expect(led.length).toBeGreaterThan(0);
    await faults.kill(victim);
    const survivors = cluster.nodes.filter((node) => node !== victim);
    const failedOver = await leadersOf(cluster, { asking: survivors, unanimous: true });
    for (const groupId of groups) expect(failedOver.get(groupId), groupId).not.toBe(victim);
    for (const groupId of groups) {
      await eventually(`a write to ${groupId} after the failover`, async () => {
        const response = await client.put(keyOf(groupId), 'after');
        return response.status === 204 || describeResponse(response);
      });
      const read = await client.get(keyOf(groupId));
      expect(read.status, describeResponse(read)).toBe(200);
      expect(read.body.toString()).toBe('after');
    }

    // The old leader comes back from its volume as a follower in every group, and catches up.
    await faults.restart(victim);
    const after = await leadersOf(cluster, { unanimous: true });
    for (const groupId of led) expect(after.get(groupId), groupId).not.toBe(victim);
    for (const groupId of groups) {
      await eventually(`${victim.nodeId} caught up in ${groupId}`, async () => {
        const direct = await rawRequest(
          cluster.urlOf(victim),
          `${pathForKey(keyOf(groupId))}?consistency=stale`,
          {
            headers: { [groupHeader]: groupId },
          },
        );
        return direct.body.toString() === 'after' || describeResponse(direct);
      });
    }
  });
});
