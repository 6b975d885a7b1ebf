import { describe, expect, it } from 'vitest';
import { ConfigError, parseClusterConfig } from '@impulse/common';

function problemsOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

const nodes = [1, 2, 3].map((n) => ({
  id: `n${n}`,
  url: `http://127.0.0.1:${7000 + n}`,
  peerAddress: `127.0.0.1:${7100 + n}`,
}));

/** Groups g1..gN, each with a replica on every node. */
function groupsOnNodes(count: number): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, index) => ({
    id: `g${index + 1}`,
    replicas: nodes.map((node, position) => ({ id: `g${index + 1}-r${position + 1}`, node: node.id })),
  }));
}

describe('cluster configuration: nodes', () => {
  it("gives each replica on a node the node's URL and peer address, and lists the nodes", () => {
    const cluster = parseClusterConfig({ nodes, groups: groupsOnNodes(3) });
    expect(cluster.nodes.map((node) => node.id)).toEqual(['n1', 'n2', 'n3']);
    for (const group of cluster.groups) {
      expect(
        group.replicas.map((replica) => [replica.node, replica.url, replica.peerAddress, replica.raftId]),
      ).toEqual([
        ['n1', 'http://127.0.0.1:7001', '127.0.0.1:7101', 1],
        ['n2', 'http://127.0.0.1:7002', '127.0.0.1:7102', 2],
        ['n3', 'http://127.0.0.1:7003', '127.0.0.1:7103', 3],
      ]);
    }
  });

  it('reads back a parsed configuration written out as JSON', () => {
    const cluster = parseClusterConfig({ nodes, groups: groupsOnNodes(2) });
    expect(parseClusterConfig(JSON.parse(JSON.stringify(cluster)))).toEqual(cluster);
  });

  it('is optional: a configuration of one-replica processes has no nodes', () => {
    const cluster = parseClusterConfig({
      groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url: 'http://h:1' }] }],
    });
    expect(cluster.nodes).toEqual([]);
    expect(cluster.groups[0]?.replicas[0]?.node).toBeNull();
  });

  it('refuses a replica on an unknown node, on a node and with its own addresses, or two of a group on one node', () => {
    const problems = problemsOf(() =>
      parseClusterConfig({
        nodes,
        groups: [
          { id: 'g1', replicas: [{ id: 'g1-r1', node: 'n9' }] },
          { id: 'g2', replicas: [{ id: 'g2-r1', node: 'n1', url: 'http://127.0.0.1:9000' }] },
          {
            id: 'g3',
            replicas: [
              { id: 'g3-r1', node: 'n1' },
              { id: 'g3-r2', node: 'n1' },
            ],
          },
        ],
      }),
    );
    expect(problems).toEqual([
      'cluster.groups[0].replicas[0].node: must name a node of cluster.nodes',
      "cluster.groups[1].replicas[0]: a replica on a node takes the node's url and peerAddress; give neither (or the node's own)",
      'cluster.groups[2].replicas[1].node: node n1 already hosts a replica of group g3',
    ]);
  });

  it('refuses malformed nodes, duplicate ids, and an address used twice', () => {
    const problems = problemsOf(() =>
      parseClusterConfig({
        nodes: [
          nodes[0],
          { ...nodes[1], id: 'n1' },
          { id: 'n3', url: 'ftp://x', peerAddress: '127.0.0.1:7103' },
          { id: 'n4', url: 'http://127.0.0.1:7004', peerAddress: 'nowhere' },
          { id: 'n5', url: 'http://127.0.0.1:7001', peerAddress: '127.0.0.1:7105' },
          { id: 'n6', url: 'http://127.0.0.1:7006', peerAddress: '127.0.0.1:7106', peerAdress: 'x' },
        ],
        groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', node: 'n1' }] }],
      }),
    );
    expect(problems).toEqual([
      'cluster.nodes[1].id: duplicate node id n1',
      'cluster.nodes[2].url: must be an http:// URL with a host and port',
      'cluster.nodes[3].peerAddress: must be host:port',
      'cluster.nodes[4].url: address 127.0.0.1:7001 is already used by cluster.nodes[0].url',
      'cluster.nodes[5].peerAdress: unknown field (did you mean peerAddress?)',
    ]);
    expect(problemsOf(() => parseClusterConfig({ nodes: {}, groups: groupsOnNodes(1) }))[0]).toBe(
      'cluster.nodes: must be an array of at most 256 nodes',
    );
  });

  it('refuses a one-replica process at a node address', () => {
    const problems = problemsOf(() =>
      parseClusterConfig({
        nodes,
        groups: [
          ...groupsOnNodes(1),
          { id: 'g9', replicas: [{ id: 'g9-r1', url: 'http://127.0.0.1:7002' }] },
        ],
      }),
    );
    expect(problems).toEqual([
      'cluster.groups[1].replicas[0].url: address 127.0.0.1:7002 is already used by cluster.nodes[1].url',
    ]);
  });
});
