import { groupHeader } from '@impulse/common';
import type { ManagedProcess } from './supervisor.js';

/**
 * The launcher's requests to the shard-nodes' admin routes, in one place: this module is the one
 * that knows how to make one (the admin token, the group header, a JSON body, the answer it must
 * get).
 */

/**
 * The headers that carry the cluster's admin token (`ProcessCluster.adminHeaders()`): every admin
 * route refuses a request without them (docs/decisions/0017-admin-authentication.md).
 */
export type AdminHeaders = Readonly<Record<string, string>>;

export interface AdminRequest {
  readonly method?: 'GET' | 'POST' | 'DELETE';
  /** The group whose replica answers (`x-impulse-group`); none: the process itself answers. */
  readonly group?: string;
  readonly body?: unknown;
  readonly timeoutMs: number;
}

/** An admin request that must answer 200: answers its JSON body, or throws with the status and the answer. */
export async function adminRequest(
  target: ManagedProcess,
  adminHeaders: AdminHeaders,
  path: string,
  request: AdminRequest,
): Promise<unknown> {
  const method = request.method ?? 'GET';
  const headers: Record<string, string> = { ...adminHeaders };
  if (request.group !== undefined) headers[groupHeader] = request.group;
  if (request.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${target.url}${path}`, {
    method,
    headers,
    ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
    signal: AbortSignal.timeout(request.timeoutMs),
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`${method} ${path} on ${target.name}: ${response.status} ${text.slice(0, 300)}`);
  }
  return JSON.parse(text) as unknown;
}

/** A node's `/admin/status`: each replica it hosts, running or failed. */
export interface NodeStatusAnswer {
  readonly replicas?: readonly {
    groupId: string;
    health: string;
    message?: string;
    code?: string | null;
  }[];
}

/** The role a replica reports in its `/admin/status` (a node's replica of `groupId`, or a one-replica process). */
export async function replicaRole(
  target: ManagedProcess,
  adminHeaders: AdminHeaders,
  groupId: string,
  timeoutMs: number,
): Promise<string | undefined> {
  const status = (await adminRequest(target, adminHeaders, '/admin/status', {
    group: groupId,
    timeoutMs,
  })) as {
    role?: string;
  };
  return status.role;
}

export async function nodeStatus(
  target: ManagedProcess,
  adminHeaders: AdminHeaders,
  timeoutMs: number,
): Promise<NodeStatusAnswer> {
  return (await adminRequest(target, adminHeaders, '/admin/status', { timeoutMs })) as NodeStatusAnswer;
}
