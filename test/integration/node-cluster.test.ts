import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotTable, groupHeader, pathForKey } from '@impulse/common';
import { LocalNodeCluster, nodeRuntimeFlags, type NodeProcessInfo } from '@impulse/local-cluster';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { waitFor } from '../support/wait-for.js';

interface NodeStatus {
  readonly nodeId: string;
  readonly replicas: readonly {
    readonly groupId: string;
    readonly health: string;
    readonly role?: string;
    readonly appliedIndex?: number;
  }[];
}

/**
 * The production shape on loopback: 3 node processes, each hosting a replica of every one of 4
 * groups (LevelDB, fsync on), and a gateway. Node faults hit every replica on the node.
 */
describe('a cluster of 3 nodes hosting 4 groups', () => {
  let cluster: LocalNodeCluster;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  const groups = ['g1', 'g2', 'g3', 'g4'];
  const table = SlotTable.fromGroups(groups, 1);
  /** Keys written and acknowledged, with their values. */
  const written = new Map<string, string>();

  beforeAll(async () => {
    directory = await temporaryDirectory('node-cluster');
    cluster = await LocalNodeCluster.start({
      nodes: 3,
      groups: 4,
      dataDirectory: directory.path,
      logLevel: 'warn',
    });
  });

  afterAll(async () => {
    await cluster?.stop();
    await directory?.remove();
  });

  const statusOf = async (node: NodeProcessInfo): Promise<NodeStatus> =>
    (await rawRequest(node.url, '/admin/status', { headers: cluster.adminHeaders() })).json() as NodeStatus;

  async function putAll(prefix: string, count: number): Promise<void> {
    for (let index = 0; index < count; index++) {
      const key = `${prefix}-${index}`;
      const answer = await rawRequest(cluster.gatewayUrl, pathForKey(key), {
        method: 'PUT',
        body: `${key}=v`,
        timeoutMs: 20_000,
      });
      expect(answer.status, key).toBe(204);
      written.set(key, `${key}=v`);
    }
  }

  async function expectEveryWrite(): Promise<void> {
    for (const [key, value] of written) {
      const answer = await rawRequest(cluster.gatewayUrl, pathForKey(key), { timeoutMs: 20_000 });
      expect(answer.status, key).toBe(200);
      expect(answer.body.toString(), key).toBe(value);
    }
  }

  it('serves every group through the gateway, each node hosting a replica of each', async () => {
    await putAll('a', 80);
    expect(new Set([...written.keys()].map((key) => table.groupForKey(key)))).toEqual(new Set(groups));
    await expectEveryWrite();
    for (const node of cluster.nodes) {
      const status = await statusOf(node);
      expect(status.nodeId).toBe(node.nodeId);
      expect(status.replicas.map((replica) => [replica.groupId, replica.health])).toEqual(
        groups.map((group) => [group, 'running']),
      );
    }
    // Started with the runtime flags the container image's entrypoint gives too.
    for (const node of cluster.nodes) {
      const pid = cluster.pidOf(node.nodeId);
      expect(pid, node.nodeId).toBeDefined();
      const commandLine = (await readFile(`/proc/${String(pid)}/cmdline`, 'utf8')).split('\0');
      expect(commandLine).toEqual(expect.arrayContaining([...nodeRuntimeFlags]));
    }
    // A scan gathers every group's keys in byte order.
    const scan = (await rawRequest(cluster.gatewayUrl, '/kv?prefix=a-&limit=1000')).json() as {
      items: { key: string }[];
    };
    expect(scan.items.map((item) => item.key)).toEqual([...written.keys()].sort());
  });

  it('answers for the group a request names, and refuses one it does not host', async () => {
    const [node] = cluster.nodes as [NodeProcessInfo];
    const key = 'a-0';
    const group = table.groupForKey(key);
    const stale = await rawRequest(node.url, `${pathForKey(key)}?consistency=stale`, {
      headers: { [groupHeader]: group },
    });
    // A stale read of the node's own replica: it may be behind, but never holds another group's key.
    expect([200, 404]).toContain(stale.status);
    const other = groups.find((candidate) => candidate !== group) as string;
    const elsewhere = await rawRequest(node.url, `${pathForKey(key)}?consistency=stale`, {
      headers: { [groupHeader]: other },
    });
    expect(elsewhere.status).toBe(404);
    const missing = await rawRequest(node.url, pathForKey(key));
    expect([missing.status, errorCodeOf(missing)]).toEqual([421, 'GROUP_NOT_HOSTED']);
    const unknown = await rawRequest(node.url, pathForKey(key), { headers: { [groupHeader]: 'g9' } });
    expect([unknown.status, errorCodeOf(unknown)]).toEqual([421, 'GROUP_NOT_HOSTED']);
    // One registry for every hosted group, each series labelled with its group.
    const metrics = (await rawRequest(node.url, '/metrics')).body.toString();
    for (const group of groups) expect(metrics).toContain(`impulse_raft_term{group="${group}"`);
    expect(metrics).toMatch(/impulse_node_replicas\{state="running",[^}]*\} 4/);
  });

  it('after kill -9 of the node leading the most groups, every group it led elects another leader and loses nothing', async () => {
    const leaders = await Promise.all(groups.map((group) => cluster.leaderOf(group, 15_000)));
    const counts = new Map<string, number>();
    for (const leader of leaders) counts.set(leader.nodeId, (counts.get(leader.nodeId) ?? 0) + 1);
    const victim = [...counts].sort((left, right) => right[1] - left[1])[0]?.[0] as string;
    const led = groups.filter((_, index) => leaders[index]?.nodeId === victim);
    await cluster.kill(victim);
    for (const group of led) {
      const leader = await cluster.leaderOf(group, 15_000, [victim]);
      expect(leader.nodeId).not.toBe(victim);
    }
    // Writes to every group go on with two of three nodes.
    await putAll('b', 40);
    await cluster.restart(victim);
    // The restarted node's replicas catch up, and nothing acknowledged is lost.
    await putAll('c', 20);
    const restarted = cluster.node(victim);
    await waitFor(
      `node ${victim} catches up in every group`,
      async () => {
        const status = await statusOf(restarted);
        const others = await Promise.all(
          cluster.nodes.filter((node) => node.nodeId !== victim).map((node) => statusOf(node)),
        );
        return status.replicas.every((replica) =>
          others.every((other) => {
            const peer = other.replicas.find((candidate) => candidate.groupId === replica.groupId);
            return replica.health === 'running' && replica.appliedIndex === peer?.appliedIndex;
          }),
        );
      },
      20_000,
    );
    await expectEveryWrite();
    expect(cluster.unexpectedExits).toEqual([]);
  });
});

/**
 * Moving a group's replica from one node to another at run time, as an operator (or the meta
 * group, next) does: the new node hosts a joiner, the leader adds it, promotes it, removes the old
 * member, and the old node drops its replica. Both nodes keep what they were told across restarts.
 */
describe('moving a replica between nodes', () => {
  let cluster: LocalNodeCluster;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;

  beforeAll(async () => {
    directory = await temporaryDirectory('node-move');
    // 4 nodes, 1 group of 3: g1 on n1, n2 and n3; n4 hosts nothing yet.
    cluster = await LocalNodeCluster.start({
      nodes: 4,
      groups: 1,
      dataDirectory: directory.path,
      logLevel: 'warn',
    });
  });

  afterAll(async () => {
    await cluster?.stop();
    await directory?.remove();
  });

  const admin = async (
    node: NodeProcessInfo,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; code: string | undefined; json: () => unknown }> => {
    const answer = await rawRequest(node.url, path, {
      method,
      headers: { [groupHeader]: 'g1', 'content-type': 'application/json', ...cluster.adminHeaders() },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      timeoutMs: 20_000,
    });
    return { status: answer.status, code: errorCodeOf(answer), json: () => answer.json() };
  };

  it('moves g1 from n1 to n4, and each node hosts what it was told after a restart', async () => {
    const gateway = cluster.gatewayUrl;
    for (let index = 0; index < 30; index++) {
      const put = await rawRequest(gateway, pathForKey(`m-${index}`), { method: 'PUT', body: `v${index}` });
      expect(put.status).toBe(204);
    }
    const [n1, , , n4] = cluster.nodes as [
      NodeProcessInfo,
      NodeProcessInfo,
      NodeProcessInfo,
      NodeProcessInfo,
    ];
    const members = cluster.clusterConfig().groups[0]?.replicas.map((replica) => ({
      replicaId: replica.id,
      raftId: replica.raftId,
      url: replica.url,
      peerAddress: replica.peerAddress,
    }));
    const newcomer = { replicaId: 'g1-r4', raftId: 4, url: n4.url, peerAddress: `127.0.0.1:${n4.peerPort}` };
    // Malformed and duplicate requests change nothing.
    expect((await admin(n4, 'POST', '/admin/replicas', { groupId: 'g1' })).code).toBe('INVALID_REQUEST');
    const added = await admin(n4, 'POST', '/admin/replicas', {
      groupId: 'g1',
      replicaId: 'g1-r4',
      raftId: 4,
      members,
    });
    expect(added.status).toBe(200);
    expect(
      (await admin(n4, 'POST', '/admin/replicas', { groupId: 'g1', replicaId: 'g1-r4', raftId: 4, members }))
        .code,
    ).toBe('MEMBERSHIP_CHANGE_REFUSED');
    let leader = await cluster.leaderOf('g1');
    expect((await admin(leader, 'POST', '/admin/members', newcomer)).status).toBe(200);
    await waitFor(
      'g1-r4 promoted',
      async () => (await admin(leader, 'POST', '/admin/members/g1-r4/promote')).status === 200,
      20_000,
    );
    // n1's replica is still a member: deleting its data is refused.
    expect((await admin(n1, 'DELETE', '/admin/replicas/g1')).code).toBe('MEMBERSHIP_CHANGE_REFUSED');
    // Removed through whichever node leads (a removed leader steps down).
    leader = await cluster.leaderOf('g1');
    expect((await admin(leader, 'DELETE', '/admin/members/g1-r1')).status).toBe(200);
    // A removed replica need not ever learn it (the leader stops sending to it once the removal
    // commits): the group's leader is the one to ask, and the node's removal is then forced.
    await waitFor(
      'the leader commits the removal',
      async () => {
        const status = (await admin(leader, 'GET', '/admin/status')).json() as { voters: number[] };
        return !status.voters.includes(1);
      },
      20_000,
    );
    expect((await admin(n1, 'DELETE', '/admin/replicas/g1?force=true')).status).toBe(200);
    expect((await admin(n1, 'GET', '/kv/m-0')).code).toBe('GROUP_NOT_HOSTED');
    // Both nodes restart (kill -9): n4 hosts g1 again from its record, n1 does not, although the
    // cluster configuration still places g1-r1 there.
    for (const node of [n1, n4]) {
      await cluster.kill(node.nodeId);
      await cluster.restart(node.nodeId);
    }
    expect((await admin(n1, 'GET', '/kv/m-0')).code).toBe('GROUP_NOT_HOSTED');
    await waitFor(
      'n4 serves g1 after its restart',
      async () => {
        const status = (await admin(n4, 'GET', '/admin/status')).json() as {
          voters: number[];
          appliedIndex: number;
        };
        return status.voters.includes(4) && status.appliedIndex > 0;
      },
      20_000,
    );
    // Every write is there, served by n2, n3 and n4.
    for (let index = 0; index < 30; index++) {
      const get = await rawRequest(gateway, pathForKey(`m-${index}`), { timeoutMs: 20_000 });
      expect(get.body.toString()).toBe(`v${index}`);
    }
    // n2 down: n3 and n4 are a majority and serve, once one of them leads. If n2 led g1, the
    // election takes up to two election timeouts, and a gateway that finds no leader meanwhile
    // answers GROUP_UNAVAILABLE: a client retries, as this one does, until the group answers.
    await cluster.kill('n2');
    let served = '';
    await waitFor(
      'g1 to serve m-0 from n3 and n4',
      async () => {
        const get = await rawRequest(gateway, pathForKey('m-0'), { timeoutMs: 20_000 });
        served = get.body.toString();
        return get.status === 200;
      },
      30_000,
    );
    expect(served).toBe('v0');
    await cluster.restart('n2');
    expect(cluster.unexpectedExits).toEqual([]);
  });
});
