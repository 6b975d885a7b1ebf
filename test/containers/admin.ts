import { groupHeader } from '@impulse/common';
import { rawRequest, type RawResponse } from '../support/http.js';
import type { ContainerCluster, NodeContainer } from './cluster.js';
import { eventually } from './support.js';

/**
 * The suite's calls to admin routes, in one place: this module is the one that knows how to make
 * an admin request (the cluster's admin token, a header naming the group, a JSON body, what an
 * answer must be). What is built
 * on them is here too: each group's leader, and leaders placed where a test wants them.
 */

/** One replica in a node's `/admin/status` (a failed one has only its group and health). */
export interface HostedReplica {
  readonly groupId: string;
  readonly replicaId?: string;
  readonly health: string;
  readonly role?: string;
  readonly term?: number;
  readonly leaderReplicaId?: string | null;
  readonly appliedIndex?: number;
}

/** A node's own `/admin/status`: every replica it hosts. */
export interface NodeStatus {
  readonly nodeId: string;
  readonly replicas: readonly HostedReplica[];
}

/** A replica's `/admin/status` (the node's answer when the request names the group). */
export interface ReplicaStatus {
  readonly groupId: string;
  readonly replicaId: string;
  readonly role: string;
  readonly engine: string;
  /** User keys, counted by the state machine; null while faulted. */
  readonly keyCount: number | null;
  readonly appliedIndex: number;
}

/** The gateway's `/admin/cluster`: the groups, their leaders (as the replicas say) and where their replicas are. */
export interface ClusterMap {
  readonly groups: readonly {
    id: string;
    leader: string | null;
    replicas: readonly { id: string; url: string }[];
  }[];
}

/** Each group's leader node, by group id. */
export type Leaders = ReadonlyMap<string, NodeContainer>;

/** An admin answer slower than this counts as none: a paused or cut-off node answers nothing. */
const adminTimeoutMsDefault = 2_000;
/** How long a group may take to agree on a leader, after a fault or a transfer. */
const leaderTimeoutMs = 30_000;

interface AdminRequest {
  readonly method?: 'GET' | 'POST';
  /** The group whose replica answers (`x-impulse-group`); none: the node (or gateway) answers. */
  readonly group?: string;
  readonly body?: unknown;
  readonly timeoutMs?: number;
}

/**
 * Every admin request of the suite, with the cluster's admin token (decision 0017): answers the
 * response, or throws unless it is a 200.
 */
async function adminRequest(
  cluster: ContainerCluster,
  baseUrl: string,
  path: string,
  request: AdminRequest = {},
): Promise<RawResponse> {
  const method = request.method ?? 'GET';
  const headers: Record<string, string> = { ...cluster.adminHeaders() };
  if (request.group !== undefined) headers[groupHeader] = request.group;
  if (request.body !== undefined) headers['content-type'] = 'application/json';
  const response = await rawRequest(baseUrl, path, {
    method,
    headers,
    ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
    timeoutMs: request.timeoutMs ?? adminTimeoutMsDefault,
  });
  if (response.status !== 200) {
    const group = request.group === undefined ? '' : ` of ${request.group}`;
    throw new Error(
      `${method} ${path}${group} at ${baseUrl}: ${response.status} ${response.body.toString('utf8').slice(0, 300)}`,
    );
  }
  return response;
}

export async function nodeStatus(
  cluster: ContainerCluster,
  node: NodeContainer,
  timeoutMs = adminTimeoutMsDefault,
): Promise<NodeStatus> {
  return (
    await adminRequest(cluster, cluster.urlOf(node), '/admin/status', { timeoutMs })
  ).json() as NodeStatus;
}

export async function replicaStatus(
  cluster: ContainerCluster,
  node: NodeContainer,
  groupId: string,
): Promise<ReplicaStatus> {
  const response = await adminRequest(cluster, cluster.urlOf(node), '/admin/status', { group: groupId });
  return response.json() as ReplicaStatus;
}

export async function gatewayClusterMap(cluster: ContainerCluster): Promise<ClusterMap> {
  return (await adminRequest(cluster, cluster.gatewayUrl, '/admin/cluster')).json() as ClusterMap;
}

/**
 * An admin route asked as anyone who reaches the port would ask it, without the admin token:
 * answers the response whatever its status (the tests expect a refusal).
 */
export async function adminRequestWithoutToken(baseUrl: string, path: string): Promise<RawResponse> {
  return await rawRequest(baseUrl, path, { timeoutMs: adminTimeoutMsDefault });
}

/**
 * Each group's leader: the node whose replica leads and is named leader, in its own term, by a
 * majority of the group's replicas (or, `unanimous`, by every node asked, which must all answer).
 * Nodes that do not answer (killed, paused, cut off) simply do not count. Waits until every
 * group has one, or fails with what the nodes said.
 */
export async function leadersOf(
  cluster: ContainerCluster,
  options: { readonly asking?: readonly NodeContainer[]; readonly unanimous?: boolean } = {},
): Promise<Leaders> {
  const asked = options.asking ?? cluster.nodes;
  let leaders = new Map<string, NodeContainer>();
  await eventually(
    `a leader of every group that ${options.unanimous === true ? 'every node' : 'a majority'} agrees on`,
    async () => {
      const answers = await Promise.all(
        asked.map(async (node) => ({
          node,
          status: await nodeStatus(cluster, node, 1_000).catch(() => undefined),
        })),
      );
      const answered = answers.flatMap(({ node, status }) =>
        status === undefined ? [] : [{ node, status }],
      );
      if (options.unanimous === true && answered.length < asked.length) {
        return `${asked.length - answered.length} of ${asked.length} nodes did not answer`;
      }
      const found = new Map<string, NodeContainer>();
      for (const group of cluster.config.groups) {
        const reports = answered.flatMap(({ node, status }) =>
          status.replicas
            .filter((replica) => replica.groupId === group.id)
            .map((replica) => ({ node, replica })),
        );
        const majority = Math.floor(group.replicas.length / 2) + 1;
        const leader = reports.find(({ replica: candidate }) => {
          if (candidate.role !== 'leader') return false;
          const naming = reports.filter(
            ({ replica }) =>
              replica.term === candidate.term && replica.leaderReplicaId === candidate.replicaId,
          );
          return options.unanimous === true
            ? naming.length === reports.length && reports.length === asked.length
            : naming.length >= majority;
        });
        if (leader === undefined) {
          const said = reports.map(
            ({ node, replica }) =>
              `${node.nodeId}: ${replica.role ?? replica.health} term ${String(replica.term)} leader ${String(replica.leaderReplicaId)}`,
          );
          return `${group.id}: ${said.join('; ') || 'no answer'}`;
        }
        found.set(group.id, leader.node);
      }
      leaders = found;
      return true;
    },
    leaderTimeoutMs,
  );
  return leaders;
}

/** "g1: impulse-node-0, g2: ...", for fault descriptions. */
export function describeLeaders(leaders: Leaders): string {
  return [...leaders].map(([groupId, node]) => `${groupId}: ${node.nodeId}`).join(', ');
}

/** The node that leads the most groups (the first in the cluster's order on a tie). */
export function nodeLeadingMost(cluster: ContainerCluster, leaders: Leaders): NodeContainer {
  return groupsLedBy(cluster, leaders).sort((left, right) => right.groups.length - left.groups.length)[0]
    ?.node as NodeContainer;
}

/** Every node with the groups it leads, in the cluster's order. */
export function groupsLedBy(
  cluster: ContainerCluster,
  leaders: Leaders,
): { node: NodeContainer; groups: string[] }[] {
  return cluster.nodes.map((node) => ({
    node,
    groups: [...leaders].filter(([, leader]) => leader === node).map(([groupId]) => groupId),
  }));
}

/**
 * Hands the leadership of each group to a node chosen by the test: the i-th group's to the i-th
 * node (wrapping round), so that with 3 nodes and 3 groups each node leads one group, the same one
 * in every run. Answers the leaders once every node agrees on them.
 */
export async function spreadLeaders(cluster: ContainerCluster): Promise<Leaders> {
  const wanted = new Map(
    cluster.groupIds.map((groupId, index) => [
      groupId,
      cluster.nodes[index % cluster.nodes.length] as NodeContainer,
    ]),
  );
  for (const [groupId, target] of wanted) {
    await eventually(
      `${target.nodeId} leads ${groupId}`,
      async () => {
        const leader = (await leadersOf(cluster, { unanimous: true })).get(groupId);
        if (leader === target) return true;
        if (leader === undefined) return 'no leader';
        await adminRequest(cluster, cluster.urlOf(leader), '/admin/transfer-leadership', {
          method: 'POST',
          group: groupId,
          body: { to: cluster.replicaIdOn(target, groupId) },
          timeoutMs: 10_000,
        });
        return `asked ${leader.nodeId} to hand ${groupId} to ${target.nodeId}`;
      },
      leaderTimeoutMs,
    );
  }
  const leaders = await leadersOf(cluster, { unanimous: true });
  for (const [groupId, target] of wanted) {
    if (leaders.get(groupId) !== target) {
      throw new Error(`${groupId} moved away from ${target.nodeId}: ${describeLeaders(leaders)}`);
    }
  }
  return leaders;
}

/**
 * True once every node's replica of every group has applied as far as the others (nothing is
 * being written): every node caught up. Otherwise what it saw, for `eventually`.
 */
export async function everyNodeCaughtUp(cluster: ContainerCluster): Promise<true | string> {
  const statuses = await Promise.all(cluster.nodes.map((node) => nodeStatus(cluster, node)));
  for (const groupId of cluster.groupIds) {
    const applied = statuses.map(
      (status) => status.replicas.find((replica) => replica.groupId === groupId)?.appliedIndex,
    );
    if (!applied.every((index) => index !== undefined && index === applied[0])) {
      return `${groupId} applied ${applied.map(String).join(', ')}`;
    }
  }
  return true;
}
