import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Request, type Response } from 'express';
import {
  AdminAuth,
  ImpulseError,
  allowMethods,
  isScanPath,
  metricsHandler,
  readOnlyMethods,
  routeNotFoundHandler,
  createHttpMetrics,
  ServerErrorLog,
  groupHeader,
  observeRequests,
  parseGroupHeader,
  parsePeerAddress,
  readBody,
  refuseBody,
  sendError,
  sendJson,
  toImpulseError,
  type Logger,
  type Registry,
} from '@impulse/common';
import type { ShardNodeConfig } from '../config.js';
import type { MemberSpec, Replica } from '../replica/index.js';
import { consistencyHashAnswer, type ConsistencyChecker } from './consistency.js';
import { createKvRoute, type RequestListener } from './kv.js';
import { createStorageMetrics } from './metrics.js';
import { createScanRoute } from './scan.js';

export interface ShardAppContext {
  readonly config: ShardNodeConfig;
  readonly replica: Replica;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly startedAtMs: number;
  /** False while starting and once shutting down: /readyz answers 503 then. */
  readonly isReady: () => boolean;
  /** Runs `POST /admin/consistency-check` (and the periodic checks the node starts). */
  readonly consistencyChecker: ConsistencyChecker;
}

const routes = [
  '/kv',
  '/kv/{key}',
  '/metrics',
  '/healthz',
  '/readyz',
  '/admin/status',
  '/admin/members',
  '/admin/members/{replicaId}/promote',
  '/admin/transfer-leadership',
  '/admin/consistency',
  '/admin/consistency-check',
];

/** The route label of a request for metrics: a fixed pattern, never the raw path. */
function routeOf(request: Request): string {
  const path = request.path;
  if (path.startsWith('/kv/')) return '/kv/{key}';
  if (routes.includes(path)) return path;
  if (path.startsWith('/admin/members/'))
    return path.endsWith('/promote') ? '/admin/members/{replicaId}/promote' : '/admin/members/{replicaId}';
  return 'unmatched';
}

const noop = (): void => {};

/**
 * The client API of one replica, as the server's request listener: `/kv/{key}`, the scan route
 * `/kv?...`, metrics, health, readiness, status and the admin routes.
 *
 * A request whose URL starts with `/kv/` goes straight to the key route, and one whose path is `/kv`
 * to the scan route; everything else (health, readiness, metrics, `/admin/...`, and the JSON 404 for
 * `/KV/...` or an absolute-form URL) goes through express. The data path skips express's router:
 * its layer walk, prefix trimming and per-request prototype swaps cost more than the key route's
 * own work (docs/benchmarks.md).
 */
export function createShardApp(context: ShardAppContext): RequestListener {
  const { config, replica, logger, registry } = context;
  const httpMetrics = createHttpMetrics(registry);
  const storageMetrics = createStorageMetrics(
    registry,
    config.groupId,
    () => replica.engine,
    () => replica.userKeyCount,
  );
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  app.use(observeRequests(httpMetrics, (request) => routeOf(request as Request)));
  // Every admin route needs the admin token (docs/decisions/0017-admin-authentication.md); the
  // data path, health, readiness and metrics never reach this. Refusals are counted as requests.
  const adminAuth = new AdminAuth(config.adminToken);
  app.use(adminAuth.middleware());

  // The data path: the same HTTP metrics as express's routes, under the route `/kv/{key}`.
  const observeKv = observeRequests(httpMetrics, () => '/kv/{key}');
  const serverErrors = new ServerErrorLog(logger);
  const handleKv = createKvRoute({ config, replica, logger, storageMetrics, registry, serverErrors });
  // The scan route, `/kv` with a query, takes the same path: plain listener, its own route label.
  const observeScan = observeRequests(httpMetrics, () => '/kv');
  const handleScan = createScanRoute({ config, replica, logger, storageMetrics, registry, serverErrors });
  function handle(request: IncomingMessage, response: ServerResponse): void {
    // An admin request that fails the check goes straight to express, which refuses it: it learns
    // nothing else (not even the group served here from a GROUP_NOT_HOSTED).
    if (!adminAuth.permits(request)) return void app(request, response);
    const named = groupNamedBy(request, response);
    if (named === null) return;
    if (named !== undefined && named !== config.groupId) {
      refuseBody(
        request,
        response,
        new ImpulseError('GROUP_NOT_HOSTED', `this replica is of group ${config.groupId}, not ${named}`, {
          details: { hostedGroups: [config.groupId] },
        }),
      );
      return;
    }
    const url = request.url ?? '';
    // Only a URL that starts with '/kv/' exactly is a key route, as when express routed it: express
    // matched '/KV/...' too, and passed it on to its 404.
    if (url.startsWith('/kv/')) {
      observeKv(request, response, noop);
      handleKv(request, response);
      return;
    }
    if (isScanPath(url)) {
      observeScan(request, response, noop);
      handleScan(request, response);
      return;
    }
    app(request, response);
  }

  app.all(
    '/healthz',
    allowMethods(readOnlyMethods, (_request, response) => sendJson(response, 200, { status: 'ok' })),
  );
  app.all(
    '/readyz',
    allowMethods(readOnlyMethods, (_request, response) => {
      const fault = replica.fault;
      if (fault !== undefined) {
        // Not ready, and not for a moment: a load balancer or orchestrator must route around it.
        sendError(
          response,
          new ImpulseError(
            'STORAGE_FAULT',
            'this replica found its stored state damaged; it serves nothing until it is rebuilt',
            {
              details: {
                faultKind: fault.kind,
                faultKey: fault.key ?? null,
                faultKeyRangeStart: fault.keyRange?.start ?? null,
                faultKeyRangeEnd: fault.keyRange?.end ?? null,
                faultFile: fault.file ?? null,
                faultMessage: fault.message,
              },
            },
          ),
        );
      } else if (replica.identityRefusal !== undefined) {
        sendError(response, new ImpulseError('NOT_READY', replica.identityRefusal));
      } else if (context.isReady()) sendJson(response, 200, { status: 'ready' });
      else sendError(response, new ImpulseError('NOT_READY', 'the replica is starting or stopping'));
    }),
  );
  app.all('/metrics', metricsHandler(registry));
  app.all(
    '/admin/status',
    allowMethods(readOnlyMethods, (_request, response) => {
      sendJson(response, 200, {
        ...replica.status(),
        engine: replica.engine.name,
        // A count kept by the state machine (user keys only), not a scan; null while faulted.
        keyCount: replica.userKeyCount ?? null,
        pid: process.pid,
        uptimeSeconds: Math.round((Date.now() - context.startedAtMs) / 1000),
      });
    }),
  );

  const admin = adminRoute(serverErrors);
  app.all(
    '/admin/members',
    allowMethods(
      ['POST'],
      admin(async (request, response) => {
        const body = await readJson(request);
        const member = memberOf(body);
        await replica.changeMembership({ type: 'addLearner', member });
        sendJson(response, 200, replica.status());
      }),
    ),
  );
  app.all(
    '/admin/members/:replicaId/promote',
    allowMethods(
      ['POST'],
      admin(async (request, response) => {
        await replica.changeMembership({
          type: 'promote',
          raftId: raftIdOf(replica, paramOf(request, 'replicaId')),
        });
        sendJson(response, 200, replica.status());
      }),
    ),
  );
  app.all(
    '/admin/members/:replicaId',
    allowMethods(
      ['DELETE'],
      admin(async (request, response) => {
        await replica.changeMembership({
          type: 'remove',
          raftId: raftIdOf(replica, paramOf(request, 'replicaId')),
        });
        sendJson(response, 200, replica.status());
      }),
    ),
  );
  // This replica's newest consistency hash; the leader polls it during a check.
  app.all(
    '/admin/consistency',
    allowMethods(readOnlyMethods, (_request, response) =>
      sendJson(response, 200, consistencyHashAnswer(replica)),
    ),
  );
  const { consistencyChecker } = context;
  app.all(
    '/admin/consistency-check',
    allowMethods(
      ['POST'],
      admin(async (_request, response) => {
        sendJson(response, 200, await consistencyChecker.run());
      }),
    ),
  );
  app.all(
    '/admin/transfer-leadership',
    allowMethods(
      ['POST'],
      admin(async (request, response) => {
        const body = await readJson(request);
        const to =
          typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['to'] : undefined;
        if (typeof to !== 'string')
          throw new ImpulseError('INVALID_REQUEST', 'the body must be {"to": "<replica id>"}');
        await replica.transferLeadership(raftIdOf(replica, to));
        sendJson(response, 200, replica.status());
      }),
    ),
  );

  app.use(routeNotFoundHandler(routes));
  return handle;
}

/**
 * An express handler from an async admin handler: a failure is answered with its code (the body
 * left unread is drained) and reported to the server error log.
 */
export function adminRoute(
  serverErrors: ServerErrorLog,
): (
  handler: (request: Request, response: Response) => Promise<void>,
) => (request: Request, response: Response) => void {
  return (handler) => (request, response) => {
    handler(request, response).catch((error: unknown) => {
      const failure = toImpulseError(error);
      serverErrors.report(failure, { method: request.method, url: request.originalUrl });
      refuseBody(request, response, failure);
    });
  };
}

/**
 * The group a request names in `x-impulse-group`: undefined when it names none, null when the
 * header is malformed (the request was refused here).
 */
export function groupNamedBy(request: IncomingMessage, response: ServerResponse): string | undefined | null {
  try {
    return parseGroupHeader(request.headers[groupHeader]);
  } catch (error) {
    refuseBody(request, response, toImpulseError(error));
    return null;
  }
}

const adminBodyBytesMax = 64 * 1024;

export async function readJson(request: Request | IncomingMessage): Promise<unknown> {
  const body = await readBody(request, adminBodyBytesMax);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new ImpulseError('INVALID_REQUEST', 'the body must be JSON');
  }
}

/** A new member from an admin request: `{replicaId, raftId, url, peerAddress}`. */
export function memberOf(body: unknown): MemberSpec {
  const record = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const { replicaId, raftId, url, peerAddress } = record;
  const address = typeof peerAddress === 'string' ? parsePeerAddress(peerAddress) : undefined;
  const validUrl = typeof url === 'string' && /^http:\/\/[^/\s]+:\d+\/?$/.test(url);
  if (
    typeof replicaId !== 'string' ||
    !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(replicaId) ||
    typeof raftId !== 'number' ||
    !Number.isSafeInteger(raftId) ||
    raftId < 1 ||
    raftId > 0xffffffff ||
    !validUrl ||
    address === undefined
  ) {
    throw new ImpulseError(
      'INVALID_REQUEST',
      'the body must be {"replicaId": "g1-r4", "raftId": 4, "url": "http://host:port", "peerAddress": "host:port"}',
    );
  }
  return { replicaId, raftId, url: url.replace(/\/+$/, ''), peerHost: address.host, peerPort: address.port };
}

function paramOf(request: Request, name: string): string | undefined {
  const value: unknown = (request.params as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

function raftIdOf(replica: Replica, replicaId: string | undefined): number {
  const member = replicaId === undefined ? undefined : replica.memberByReplicaId(replicaId);
  if (member === undefined)
    throw new ImpulseError('MEMBERSHIP_CHANGE_REFUSED', `no member ${replicaId ?? ''} in this group`);
  return member.raftId;
}
