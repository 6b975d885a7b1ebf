/**
 * What a node says of its replicas in `/admin/status` (the fields the node benchmarks read), and
 * waiting on it: every group has a leader, a restarted node has caught up.
 */

export interface HostedReplicaStatus {
  readonly groupId: string;
  readonly health: string;
  readonly role?: string;
  readonly term?: number;
  readonly commitIndex?: number;
  readonly appliedIndex?: number;
}

export interface NodeStatus {
  readonly nodeId: string;
  readonly replicas: readonly HostedReplicaStatus[];
}

export interface NodeAddress {
  readonly nodeId: string;
  readonly url: string;
}

/** The headers of a request to a node's admin routes: the cluster's admin token. */
export type AdminHeaders = Readonly<Record<string, string>>;

/**
 * A node's status, or undefined when it does not answer within `timeoutMs`. Throws when it refuses
 * the admin token: that is no node to wait for, but a benchmark to fix.
 */
export async function fetchNodeStatus(
  url: string,
  headers: AdminHeaders,
  timeoutMs = 1000,
): Promise<NodeStatus | undefined> {
  let response: Response;
  try {
    response = await fetch(`${url}/admin/status`, { headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    return undefined;
  }
  if (response.status === 401)
    throw new Error(`${url}/admin/status refused the admin token: ${(await response.text()).slice(0, 300)}`);
  if (response.status !== 200) return undefined;
  try {
    return (await response.json()) as NodeStatus;
  } catch {
    return undefined;
  }
}

/**
 * The node whose replica of each group says it leads, by group. Where two replicas of a group
 * both say so (an old leader not yet told), the one of the higher term wins.
 */
export function leadersByGroup(statuses: readonly NodeStatus[]): Map<string, string> {
  const leaders = new Map<string, { nodeId: string; term: number }>();
  for (const status of statuses) {
    for (const replica of status.replicas) {
      if (replica.role !== 'leader' || replica.health !== 'running') continue;
      const term = replica.term ?? 0;
      const known = leaders.get(replica.groupId);
      if (known === undefined || term > known.term)
        leaders.set(replica.groupId, { nodeId: status.nodeId, term });
    }
  }
  return new Map([...leaders].map(([groupId, leader]) => [groupId, leader.nodeId]));
}

/** The statuses of the nodes that answer. */
export async function fetchStatuses(
  nodes: readonly NodeAddress[],
  headers: AdminHeaders,
  timeoutMs = 1000,
): Promise<NodeStatus[]> {
  const statuses = await Promise.all(nodes.map((node) => fetchNodeStatus(node.url, headers, timeoutMs)));
  return statuses.filter((status): status is NodeStatus => status !== undefined);
}

const pollIntervalMs = 50;

/** Waits until every one of `groupIds` has a leader among `nodes`; answers the leaders by group. */
export async function waitForLeaders(
  nodes: readonly NodeAddress[],
  headers: AdminHeaders,
  groupIds: readonly string[],
  timeoutMs: number,
): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  let leaders = new Map<string, string>();
  while (Date.now() < deadline) {
    leaders = leadersByGroup(await fetchStatuses(nodes, headers));
    if (groupIds.every((groupId) => leaders.has(groupId))) return leaders;
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs));
  }
  const missing = groupIds.filter((groupId) => !leaders.has(groupId));
  throw new Error(
    `${missing.length} group(s) without a leader after ${timeoutMs} ms: ${missing.slice(0, 10).join(', ')}`,
  );
}

/**
 * The groups whose replica on `node` is not running, or has not applied what its group's leader
 * (found in `statuses`, every node's) has committed: empty once the node has caught up. A replica
 * that leads is caught up by definition; one whose group has no leader in sight is not.
 */
export function groupsBehind(node: NodeStatus, statuses: readonly NodeStatus[]): string[] {
  const committed = new Map<string, number>();
  for (const status of statuses) {
    for (const replica of status.replicas) {
      if (replica.role === 'leader') committed.set(replica.groupId, replica.commitIndex ?? 0);
    }
  }
  return node.replicas
    .filter((replica) => {
      if (replica.health !== 'running') return true;
      if (replica.role === 'leader') return false;
      const leaderCommit = committed.get(replica.groupId);
      return leaderCommit === undefined || (replica.appliedIndex ?? 0) < leaderCommit;
    })
    .map((replica) => replica.groupId);
}
