import { describe, expect, it } from 'vitest';
import { groupHeader } from '@impulse/common';
import { rawRequest } from '../support/http.js';
import {
  adminRequestWithoutToken,
  everyNodeCaughtUp,
  gatewayClusterMap,
  leadersOf,
  nodeLeadingMost,
  nodeStatus,
} from './admin.js';
import type { NodeContainer } from './cluster.js';
import { Client, eventually, keysOnGroup, startClusterForTest } from './support.js';

/**
 * The Kubernetes manifests, run under Docker (no cluster can run here): 3 node containers with the
 * StatefulSet's environment, each hosting a replica of g1, g2 and g3, and the gateway. Node faults
 * hit every replica on the node.
 */
describe('the Kubernetes manifests under Docker', () => {
  it('serve every group from 3 nodes, and survive kill -9 and a pause of a node', async () => {
    const { cluster, faults } = await startClusterForTest();
    const client = new Client(() => cluster.gatewayUrl);
    const groups = cluster.groupIds;
    const written = new Map<string, string>();
    const writeAll = async (prefix: string): Promise<void> => {
      for (const group of groups) {
        for (const key of keysOnGroup(group, groups.length, 5, `${prefix}-${group}`)) {
          const answer = await client.put(key, `${key}=v`);
          expect(answer.status, key).toBe(204);
          written.set(key, `${key}=v`);
        }
      }
    };
    await writeAll('a');
    for (const node of cluster.nodes) {
      const status = await nodeStatus(cluster, node);
      expect(status.replicas.map((replica) => [replica.groupId, replica.health])).toEqual(
        groups.map((group) => [group, 'running']),
      );
      // The admin routes take the token of the manifests' Secret, and only it; probes need none.
      expect((await adminRequestWithoutToken(cluster.urlOf(node), '/admin/status')).status).toBe(401);
      expect((await rawRequest(cluster.urlOf(node), '/readyz')).status).toBe(200);
    }
    expect((await adminRequestWithoutToken(cluster.gatewayUrl, '/admin/cluster')).status).toBe(401);
    // The gateway asked the nodes with the same token: each group's leader is known.
    for (const group of (await gatewayClusterMap(cluster)).groups)
      expect(group.leader, group.id).not.toBeNull();

    // kill -9 of the node that leads the most groups: each group it led elects another leader.
    const victim = nodeLeadingMost(cluster, await leadersOf(cluster));
    await faults.kill(victim);
    await eventually(
      'every group takes writes without the killed node',
      async () => {
        for (const group of groups) {
          const [key] = keysOnGroup(group, groups.length, 1, `probe-${group}`);
          const answer = await client.put(key as string, 'p');
          if (answer.status !== 204) return `${group}: ${answer.status}`;
        }
        return true;
      },
      30_000,
    );
    await writeAll('b');
    await faults.restart(victim);

    // A paused node (cgroup freezer) holds its connections open and answers nothing.
    const paused = cluster.nodes.find((node) => node !== victim) as NodeContainer;
    await faults.pause(paused);
    await eventually(
      'every group takes writes while a node is paused',
      async () => {
        await writeAll('c');
        return true;
      },
      30_000,
    );
    await faults.unpause(paused);

    // Every node catches up in every group, and nothing acknowledged is lost.
    await eventually('every node caught up', () => everyNodeCaughtUp(cluster), 30_000);
    for (const [key, value] of written) {
      const answer = await client.get(key);
      expect(answer.body.toString(), key).toBe(value);
    }
    // A node serves only the group a request names.
    const [key] = [...written.keys()];
    const other = await rawRequest(cluster.urlOf(victim), `/kv/${key}?consistency=stale`, {
      headers: { [groupHeader]: 'g-none' },
    });
    expect(other.status).toBe(421);
  });
});
