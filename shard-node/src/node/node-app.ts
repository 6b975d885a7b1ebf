import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import {
  AdminAuth,
  ImpulseError,
  allowMethods,
  createHttpMetrics,
  groupHeader,
  metricsHandler,
  observeRequests,
  readOnlyMethods,
  ServerErrorLog,
  refuseBody,
  routeNotFoundHandler,
  sendError,
  sendJson,
  type Logger,
  type Registry,
} from '@impulse/common';
import type { MemberSpec } from '../replica/index.js';
import { adminRoute, groupNamedBy, memberOf, readJson } from '../server/app.js';
import type { RequestListener } from '../server/kv.js';
import type { Node } from './node.js';

export interface NodeAppContext {
  readonly node: Node;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly startedAtMs: number;
  /** False while starting and once shutting down: /readyz answers 503 then. */
  readonly isReady: () => boolean;
  /**
   * The node's admin token: its admin routes, and a hosted replica's (`createShardApp`, given the
   * same), need it (docs/decisions/0017-admin-authentication.md). Undefined: none configured.
   */
  readonly adminToken: Uint8Array | undefined;
  /** The routes of the running replica of a group (`createShardApp`), if the node runs one. */
  readonly replicaListener: (groupId: string) => RequestListener | undefined;
  /** `POST /admin/replicas`: starts a replica here that joins its live group; answers its status. */
  readonly addReplica: (replica: ReplicaToAdd) => Promise<unknown>;
  /** `DELETE /admin/replicas/{group}`: stops the replica here and deletes its data. */
  readonly removeReplica: (groupId: string, force: boolean) => Promise<void>;
}

/** A replica to host at run time: its group, its ids, and the group's members as they are now. */
export interface ReplicaToAdd {
  readonly groupId: string;
  readonly replicaId: string;
  readonly raftId: number;
  readonly members: readonly MemberSpec[];
}

/** Routes the node answers itself: the same for every group it hosts. */
const nodeOnlyPaths = new Set(['/metrics', '/healthz', '/admin/replicas']);
/** Routes the node answers itself when no group is named, and a replica answers when one is. */
const nodeOrReplicaPaths = new Set(['/readyz', '/admin/status']);

const idPattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
/** At most this many members in a `POST /admin/replicas` body (a group has at most 7 voters). */
const addedMembersMax = 16;

/** The body of `POST /admin/replicas`, checked; throws `INVALID_REQUEST` naming the expected shape. */
function replicaToAddOf(body: unknown): ReplicaToAdd {
  const record = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const { groupId, replicaId, raftId, members } = record;
  const valid =
    typeof groupId === 'string' &&
    idPattern.test(groupId) &&
    typeof replicaId === 'string' &&
    idPattern.test(replicaId) &&
    typeof raftId === 'number' &&
    Number.isSafeInteger(raftId) &&
    raftId >= 1 &&
    raftId <= 0xffffffff &&
    Array.isArray(members) &&
    members.length >= 1 &&
    members.length <= addedMembersMax;
  if (!valid)
    throw new ImpulseError(
      'INVALID_REQUEST',
      'the body must be {"groupId": "g1", "replicaId": "g1-r4", "raftId": 4, "members": [{"replicaId", "raftId", "url", "peerAddress"}, ...]} with the group\'s current members',
    );
  return { groupId, replicaId, raftId, members: members.map((member) => memberOf(member)) };
}

/** The node's routes, as metrics label them: a fixed set, never a raw path (whose values are unbounded). */
const nodeRoutes = new Set(['/metrics', '/healthz', '/readyz', '/admin/status', '/admin/replicas']);

function routeOf(path: string): string {
  if (nodeRoutes.has(path)) return path;
  if (path.startsWith('/admin/replicas/')) return '/admin/replicas/{groupId}';
  return 'unmatched';
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * The client API of a node: every request for a group's data or a group's admin routes goes to the
 * node's replica of the group that `x-impulse-group` names (`createShardApp`'s routes); metrics,
 * health, and readiness and status without a group are the node's own.
 *
 * - No replica of the named group here: `GROUP_NOT_HOSTED` (421), with the groups it hosts.
 * - The replica failed and was stopped: `REPLICA_FAILED` (503); the group's other replicas serve.
 * - No header: a node that hosts exactly one group serves it (as a one-replica process does);
 *   otherwise `GROUP_NOT_HOSTED`, naming the groups to choose from.
 */
export function createNodeApp(context: NodeAppContext): RequestListener {
  const { node, registry } = context;
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  app.use(
    observeRequests(createHttpMetrics(registry), (request) => routeOf((request as express.Request).path)),
  );
  // The node's admin routes need the admin token, as its replicas' do (createShardApp, given the
  // same token); docs/decisions/0017-admin-authentication.md. Refusals are counted as requests.
  const adminAuth = new AdminAuth(context.adminToken);
  app.use(adminAuth.middleware());

  app.all(
    '/healthz',
    allowMethods(readOnlyMethods, (_request, response) => sendJson(response, 200, { status: 'ok' })),
  );
  app.all('/metrics', metricsHandler(registry));
  app.all(
    '/readyz',
    allowMethods(readOnlyMethods, (_request, response) => {
      if (!context.isReady()) {
        sendError(response, new ImpulseError('NOT_READY', 'the node is starting or stopping'));
        return;
      }
      // Ready while the node serves: a failed replica or one with a damaged state takes only its
      // own group's requests out (they answer REPLICA_FAILED / STORAGE_FAULT, and the gateway
      // tries the group's other replicas); taking the node out of a load balancer would take every
      // other group it hosts out with it. Ask with `x-impulse-group` for one replica's readiness.
      const failed = node.failedReplicas().map((failure) => failure.groupId);
      const faulted = [...node.runningReplicas()]
        .filter(([, replica]) => replica.fault !== undefined)
        .map(([groupId]) => groupId);
      sendJson(response, 200, {
        status: failed.length + faulted.length === 0 ? 'ready' : 'degraded',
        replicas: node.runningReplicas().size,
        failedGroups: failed,
        storageFaultGroups: faulted,
      });
    }),
  );
  app.all(
    '/admin/status',
    allowMethods(readOnlyMethods, (_request, response) => {
      sendJson(response, 200, nodeStatus(context));
    }),
  );

  const serverErrors = new ServerErrorLog(context.logger);
  const admin = adminRoute(serverErrors);
  app.all(
    '/admin/replicas',
    allowMethods(
      ['POST'],
      admin(async (request, response) => {
        const replica = replicaToAddOf(await readJson(request));
        sendJson(response, 200, await context.addReplica(replica));
      }),
    ),
  );
  app.all(
    '/admin/replicas/:groupId',
    allowMethods(
      ['DELETE'],
      admin(async (request, response) => {
        const groupId = String(request.params['groupId']);
        if (!idPattern.test(groupId)) throw new ImpulseError('INVALID_REQUEST', 'not a group id');
        await context.removeReplica(groupId, request.query['force'] === 'true');
        sendJson(response, 200, nodeStatus(context));
      }),
    ),
  );
  app.use(routeNotFoundHandler(['/metrics', '/healthz', '/readyz', '/admin/status', '/admin/replicas']));

  return function handle(request: IncomingMessage, response: ServerResponse): void {
    const url = request.url ?? '';
    const path = pathOf(url);
    // An admin request that fails the check is refused by the node's express before any routing:
    // it learns nothing else, not even which groups the node hosts.
    if (!adminAuth.permits(request)) return void app(request, response);
    if (nodeOnlyPaths.has(path) || path.startsWith('/admin/replicas/')) return void app(request, response);
    const named = groupNamedBy(request, response);
    if (named === null) return;
    if (named === undefined && nodeOrReplicaPaths.has(path)) return void app(request, response);
    const groupId = named ?? soleGroup(node);
    if (groupId === undefined) {
      refuseBody(
        request,
        response,
        new ImpulseError(
          'GROUP_NOT_HOSTED',
          `this node hosts replicas of several groups: name one in ${groupHeader}`,
          { details: { hostedGroups: hostedGroups(node) } },
        ),
      );
      return;
    }
    const listener = context.replicaListener(groupId);
    if (listener !== undefined) return void listener(request, response);
    const failure = node.failedReplicas().find((candidate) => candidate.groupId === groupId);
    refuseBody(
      request,
      response,
      failure !== undefined
        ? new ImpulseError(
            'REPLICA_FAILED',
            `this node's replica of ${groupId} failed and is stopped until the node restarts: ${failure.message}`,
            { details: { group: groupId, failureCode: failure.code } },
          )
        : new ImpulseError('GROUP_NOT_HOSTED', `this node hosts no replica of ${groupId}`, {
            details: { hostedGroups: hostedGroups(node) },
          }),
    );
  };
}

/** Every group the node hosts a replica of, running or failed, sorted. */
function hostedGroups(node: Node): string[] {
  return [
    ...new Set([
      ...node.runningReplicas().keys(),
      ...node.failedReplicas().map((failure) => failure.groupId),
    ]),
  ].sort();
}

/** The one group a node hosts, when it hosts exactly one. */
function soleGroup(node: Node): string | undefined {
  const groups = hostedGroups(node);
  return groups.length === 1 ? groups[0] : undefined;
}

/** What the node's `/admin/status` answers: each hosted replica with its role, indexes and health. */
function nodeStatus(context: NodeAppContext): Record<string, unknown> {
  const { node } = context;
  const replicas = [...node.runningReplicas().values()].map((replica) => {
    const status = replica.status();
    return {
      groupId: status.groupId,
      replicaId: status.replicaId,
      raftId: status.raftId,
      health: status.storageFault === null ? 'running' : 'storage-fault',
      role: status.role,
      term: status.term,
      leaderReplicaId: status.leaderReplicaId,
      commitIndex: status.commitIndex,
      appliedIndex: status.appliedIndex,
      snapshotIndex: status.snapshotIndex,
      lastIndex: status.lastIndex,
      voters: status.voters,
      learners: status.learners,
      pendingProposals: status.pendingProposals,
      storageFault: status.storageFault,
    };
  });
  const failed = node.failedReplicas().map((failure) => ({
    groupId: failure.groupId,
    health: 'failed',
    message: failure.message,
    code: failure.code,
    failedAt: new Date(failure.atMs).toISOString(),
  }));
  return {
    nodeId: node.nodeId,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - context.startedAtMs) / 1000),
    replicas: [...replicas, ...failed].sort((left, right) => left.groupId.localeCompare(right.groupId)),
    leaders: replicas.filter((replica) => replica.role === 'leader').length,
  };
}
