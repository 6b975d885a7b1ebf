import { describe, expect, it } from 'vitest';
import { groupHeader, pathForKey } from '@impulse/common';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { everyNodeCaughtUp, leadersOf, replicaStatus, spreadLeaders } from './admin.js';
import type { ContainerCluster, NodeContainer } from './cluster.js';
import { runInNetworkNamespace } from './faults.js';
import {
  Client,
  describeResponse,
  eventually,
  isGroupDown,
  keysOnGroup,
  startClusterForTest,
} from './support.js';

/** Short, so that a fault shows within a second and the suite stays fast. */
const upstreamTimeoutMs = 1000;
/** The gateway gives up on a group after this, across its attempts on every replica. */
const requestDeadlineMs = 4000;
const keysPerGroup = 5;

/**
 * The fault helpers, exercised for real against node containers: a fault of a node hits the
 * replica of every group it hosts. One node down, every group still serves (the groups it led
 * after electing a leader on the other nodes); two nodes down, no group has a majority and every
 * group answers the documented error; once the faults are undone, every node catches up in every
 * group. Before each fault the leaders are spread (impulse-node-0 leads g1, impulse-node-1 g2,
 * impulse-node-2 g3), so that a node's fault hits one group's leader and two groups' followers,
 * the same way in every run.
 */
describe('faults of node containers', () => {
  const start = async () => {
    const started = await startClusterForTest({
      gatewayArguments: [
        `--upstream-timeout=${upstreamTimeoutMs}ms`,
        `--request-deadline=${requestDeadlineMs}ms`,
      ],
    });
    const { cluster } = started;
    await spreadLeaders(cluster);
    const client = new Client(() => cluster.gatewayUrl);
    const keys = await seed(client, cluster.groupIds);
    return { ...started, client, keys, leaderOf: (groupId: string) => leaderNode(cluster, groupId) };
  };

  /** Writes a few keys on every group, through the gateway. */
  async function seed(client: Client, groups: readonly string[]): Promise<Map<string, string[]>> {
    const keysByGroup = new Map<string, string[]>();
    for (const groupId of groups) {
      const keys = keysOnGroup(groupId, groups.length, keysPerGroup, 'seed');
      for (const key of keys) expect((await client.put(key, `value of ${key}`)).status).toBe(204);
      keysByGroup.set(groupId, keys);
    }
    return keysByGroup;
  }

  /** The node spreadLeaders made the leader of `groupId`. */
  function leaderNode(cluster: ContainerCluster, groupId: string): NodeContainer {
    return cluster.nodes[cluster.groupIds.indexOf(groupId)] as NodeContainer;
  }

  async function expectServed(client: Client, keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      const response = await client.get(key);
      expect(response.status, `${key}: ${describeResponse(response)}`).toBe(200);
      expect(response.body.toString()).toBe(`value of ${key}`);
    }
  }

  async function expectRecovered(client: Client, keys: readonly string[]): Promise<void> {
    await eventually(`${keys.length} keys served again`, async () => {
      for (const key of keys) {
        const response = await client.get(key);
        if (response.status !== 200) return `${key}: ${describeResponse(response)}`;
      }
      return true;
    });
    await expectServed(client, keys);
  }

  /** Every group down at once: the gateway answers each with 503 or 504 and its code. */
  async function expectEveryGroupDown(client: Client, keys: ReadonlyMap<string, string[]>): Promise<void> {
    await Promise.all(
      [...keys].map(([groupId, groupKeys]) =>
        eventually(`${groupId} down`, async () => {
          const response = await client.get(groupKeys[0] as string);
          return isGroupDown(response) || describeResponse(response);
        }),
      ),
    );
  }

  const every = (keys: ReadonlyMap<string, string[]>): string[] => [...keys.values()].flat();

  it('kill and restart: one node down, every group serves; all down, the volumes keep every write', async () => {
    const { cluster, faults, client, keys, leaderOf } = await start();
    const [first, second, third] = cluster.nodes as [NodeContainer, NodeContainer, NodeContainer];
    expect(leaderOf('g1')).toBe(first);

    // The node goes with every replica on it; g1, which it led, elects a leader on another node.
    await faults.kill(first);
    await expect(rawRequest(cluster.urlOf(first), '/readyz', { timeoutMs: 1_000 })).rejects.toThrow();
    await expectRecovered(client, every(keys));
    const failedOver = await leadersOf(cluster, { asking: [second, third] });
    expect(failedOver.get('g1')).not.toBe(first);
    const during = new Map(
      cluster.groupIds.map((groupId) => [groupId, keysOnGroup(groupId, keys.size, 1, 'during')[0] as string]),
    );
    for (const key of during.values()) {
      await eventually(`${key} written without ${first.nodeId}`, async () => {
        const response = await client.put(key, `value of ${key}`);
        return response.status === 204 || describeResponse(response);
      });
    }

    // Two nodes down: no group has a majority left, and every group is down.
    await faults.kill(second);
    await expectEveryGroupDown(client, keys);

    // Every replica of every group killed: what comes back is what the volumes kept (writes are
    // fsynced before they are acknowledged).
    await faults.kill(third);
    await Promise.all(cluster.nodes.map((node) => faults.restart(node)));
    await expectRecovered(client, [...every(keys), ...during.values()]);
    await eventually('every node holds every key of every group', async () => {
      for (const node of cluster.nodes) {
        for (const groupId of cluster.groupIds) {
          const { keyCount } = await replicaStatus(cluster, node, groupId);
          if (keyCount !== keysPerGroup + 1) return `${node.nodeId}'s ${groupId}: ${String(keyCount)} keys`;
        }
      }
      return true;
    });
  });

  it('pause and unpause: the gateway times out on the frozen node and goes on with the others', async () => {
    const { cluster, faults, client, keys, leaderOf } = await start();
    const paused = leaderOf('g2');

    await faults.pause(paused);
    // The gateway's first attempt goes to g2's leader, frozen: it gets no answer, gives up after
    // its upstream timeout, and tries g2's other replicas, which serve once they elect a leader.
    const startedAt = Date.now();
    const response = await client.get(keys.get('g2')?.[0] ?? '');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(upstreamTimeoutMs - 50);
    expect(response.status === 200 || isGroupDown(response), describeResponse(response)).toBe(true);
    // Every replica on the node is frozen with it: it answers for no group.
    for (const groupId of cluster.groupIds) {
      await expect(
        rawRequest(cluster.urlOf(paused), '/readyz', {
          headers: { [groupHeader]: groupId },
          timeoutMs: 1_000,
        }),
      ).rejects.toThrow(/timed out/);
    }
    await expectRecovered(client, every(keys));

    // A second frozen node leaves no group a majority: every group times out.
    const alsoPaused = leaderOf('g3');
    await faults.pause(alsoPaused);
    await expectEveryGroupDown(client, keys);

    await faults.unpause(paused);
    await faults.unpause(alsoPaused);
    await expectRecovered(client, every(keys));
    await eventually('every node caught up', () => everyNodeCaughtUp(cluster));
  });

  it('disconnect and reconnect: the others serve without the node, which catches up when it is back', async () => {
    const { cluster, faults, client, keys, leaderOf } = await start();
    const victim = leaderOf('g3');

    await faults.disconnect(victim);
    await expect(faults.addressOf(victim)).rejects.toThrow(/no address/);
    // Cut off from its peers and from the gateway, the node's replicas serve nobody: every group
    // serves from the two other nodes, g3 once they elect a leader.
    await expectRecovered(client, every(keys));
    const others = cluster.nodes.filter((node) => node !== victim);
    expect((await leadersOf(cluster, { asking: others })).get('g3')).not.toBe(victim);
    const during = cluster.groupIds.map(
      (groupId) => keysOnGroup(groupId, keys.size, 1, 'during')[0] as string,
    );
    for (const key of during) {
      await eventually(`${key} written without ${victim.nodeId}`, async () => {
        const written = await client.put(key, `value of ${key}`);
        return written.status === 204 || describeResponse(written);
      });
    }

    // Back under the same alias, the node catches up in every group, with the writes it missed.
    await faults.reconnect(victim);
    await eventually(`${victim.nodeId} has the writes it missed`, async () => {
      for (const [index, groupId] of cluster.groupIds.entries()) {
        const key = during[index] as string;
        const direct = await rawRequest(cluster.urlOf(victim), `${pathForKey(key)}?consistency=stale`, {
          headers: { [groupHeader]: groupId },
        });
        if (direct.status !== 200) return `${key} in ${groupId}: ${describeResponse(direct)}`;
      }
      return true;
    });
    await eventually('every node caught up', () => everyNodeCaughtUp(cluster));
  });

  it('a one-way partition drops the packets of one side only, and heals', async () => {
    const { cluster, faults, client, keys, leaderOf } = await start();
    const victim = leaderOf('g1');

    const partition = await faults.partitionOneWay(cluster.gateway, victim);
    // The gateway cannot reach the node, whose replicas still lead or follow their groups: g1's
    // leader is there, and g1's other replicas send the gateway back to it, until its deadline.
    const response = await client.get(keys.get('g1')?.[0] ?? '');
    expect(response.status, describeResponse(response)).toBe(504);
    expect(errorCodeOf(response)).toBe('UPSTREAM_TIMEOUT');
    // The rule really dropped the gateway's packets...
    expect(await faults.droppedPackets(partition)).toBeGreaterThan(0);
    // ...and only those: the host still reaches the node, and the groups led elsewhere still answer.
    expect((await rawRequest(cluster.urlOf(victim), '/readyz')).status).toBe(200);
    await expectServed(client, [...(keys.get('g2') ?? []), ...(keys.get('g3') ?? [])]);

    // The other direction is open: packets the node sends reach the gateway. Count them with an
    // accept rule at the gateway while the node's namespace opens a connection to it (the
    // connection itself cannot complete, since the gateway's answers are dropped).
    const gatewayPid = await faults.pidOf(cluster.gateway);
    const victimAddress = await faults.addressOf(victim);
    const gatewayAddress = await faults.addressOf(cluster.gateway);
    await runInNetworkNamespace(gatewayPid, 'iptables', [
      '-w',
      '-I',
      'INPUT',
      '-s',
      victimAddress,
      '-j',
      'ACCEPT',
    ]);
    await runInNetworkNamespace(await faults.pidOf(victim), process.execPath, [
      '-e',
      `require('node:net').connect(${cluster.gateway.port}, '${gatewayAddress}').on('error', () => {}); setTimeout(() => process.exit(0), 1500);`,
    ]);
    const { stdout } = await runInNetworkNamespace(gatewayPid, 'iptables', [
      '-w',
      '-L',
      'INPUT',
      '-n',
      '-v',
      '-x',
    ]);
    const arrived = stdout
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .find((fields) => fields[2] === 'ACCEPT' && fields[7] === victimAddress);
    expect(Number(arrived?.[0] ?? 0), stdout).toBeGreaterThan(0);

    await faults.heal();
    await expectRecovered(client, keys.get('g1') ?? []);
  });
});
