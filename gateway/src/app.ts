import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express, type Request } from 'express';
import {
  AdminAuth,
  ImpulseError,
  adminHeaders,
  groupHeader,
  allowMethods,
  isScanPath,
  metricsHandler,
  readOnlyMethods,
  routeNotFoundHandler,
  createHttpMetrics,
  ServerErrorLog,
  observeRequests,
  parseKeyRequest,
  parseRequestId,
  requestIdHeader,
  readBodyOrRefuse,
  refuseBody,
  refuseUnexpectedBody,
  sendError,
  sendJson,
  slotCount,
  toImpulseError,
  type Logger,
  type Registry,
} from '@impulse/common';
import type { GatewayConfig } from './config.js';
import { Forwarder } from './forwarder.js';
import { GroupReader } from './group-reader.js';
import { createGatewayMetrics } from './metrics.js';
import type { ClusterRouter } from './router.js';
import { createScanRoute } from './scan.js';
import type { KeyMethod } from './upstream-request.js';

export interface GatewayContext {
  readonly config: GatewayConfig;
  readonly router: ClusterRouter;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly isReady: () => boolean;
}

const kvMethods = ['GET', 'HEAD', 'PUT', 'DELETE'] as const;
const routes = ['/kv', '/kv/{key}', '/metrics', '/healthz', '/readyz', '/admin/cluster'];

function routeOf(request: Request): string {
  const path = request.path;
  if (path.startsWith('/kv/')) return '/kv/{key}';
  if (routes.includes(path)) return path;
  return 'unmatched';
}

const emptyBody = Buffer.alloc(0);
const arrivedAtMs = Symbol('arrivedAtMs');
type ArrivedRequest = IncomingMessage & { [arrivedAtMs]?: number };
const noop = (): void => {};

export interface GatewayApp {
  /** The admin and ops routes (health, readiness, metrics, cluster, the 404 for the rest). */
  readonly app: Express;
  /**
   * The server's request listener: `/kv/` requests are proxied straight from here and `/kv?...`
   * scans gathered from every group; everything else goes through `app`. The data path skips express's router, whose layer walk and prototype
   * swaps cost more than the proxying itself on small requests.
   */
  readonly handle: (request: IncomingMessage, response: ServerResponse) => void;
  /** Closes the keep-alive connections to the shard groups. */
  close(): void;
}

/**
 * Status fields of a replica's `/admin/status` (asked with the gateway's admin token, the
 * cluster's), `reachable: false` when it does not answer, or the error it answered.
 */
async function replicaStatus(
  url: string,
  groupId: string,
  adminToken: Uint8Array | undefined,
): Promise<Record<string, unknown>> {
  try {
    const response = await fetch(`${url}/admin/status`, {
      headers: { [groupHeader]: groupId, ...adminHeaders(adminToken) },
      signal: AbortSignal.timeout(adminStatusTimeoutMs),
    });
    const status = (await response.json()) as Record<string, unknown>;
    if (!response.ok) {
      // An answer with an error: a replica given another admin token than the gateway's answers
      // 401 ADMIN_UNAUTHORIZED; one that failed, REPLICA_FAILED. Said, never taken for a status.
      const error = (status['error'] ?? {}) as Record<string, unknown>;
      return { reachable: true, httpStatus: response.status, error: error['code'] ?? null };
    }
    return {
      reachable: true,
      replicaId: status['replicaId'],
      role: status['role'],
      term: status['term'],
      leaderReplicaId: status['leaderReplicaId'],
      commitIndex: status['commitIndex'],
      appliedIndex: status['appliedIndex'],
      snapshotIndex: status['snapshotIndex'],
    };
  } catch (error) {
    return { reachable: false, error: (error as Error).message };
  }
}

const adminStatusTimeoutMs = 1000;

export function createGatewayApp(context: GatewayContext): GatewayApp {
  const { config, router, logger, registry } = context;
  const httpMetrics = createHttpMetrics(registry);
  const metrics = createGatewayMetrics(registry);
  const serverErrors = new ServerErrorLog(logger);
  const forwarder = new Forwarder(
    config,
    new Map(router.cluster.groups.map((group) => [group.id, group])),
    logger,
    metrics,
    serverErrors,
  );

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  app.use(observeRequests(httpMetrics, (request) => routeOf(request as Request)));
  // /admin/cluster needs the admin token (docs/decisions/0017-admin-authentication.md).
  app.use(new AdminAuth(config.adminToken).middleware());

  // The data path: the same metrics as express's routes, under the route `/kv/{key}`.
  const observeKv = observeRequests(httpMetrics, () => '/kv/{key}');
  // Scans gather from every group with the forwarder's keep-alive agent and leader guesses.
  const observeScan = observeRequests(httpMetrics, () => '/kv');
  const handleScan = createScanRoute({
    config,
    groups: router.cluster.groups,
    reader: new GroupReader(config, forwarder.leaders, forwarder.agent, logger, metrics),
    serverErrors,
    inFlight: metrics.requestsInFlight.labels({ route: '/kv' }),
    refusals: metrics.overloadRefusals.labels({ route: '/kv' }),
  });

  // Each key request may hold a value in memory (a PUT's body, read whole before it goes to the
  // group), from its arrival until it is answered: a bound on them is a bound on that memory.
  let keyRequestsInFlight = 0;
  const keyRequestsGauge = metrics.requestsInFlight.labels({ route: '/kv/{key}' });
  const keyRequestRefusals = metrics.overloadRefusals.labels({ route: '/kv/{key}' });
  function releaseKeyRequest(): void {
    keyRequestsInFlight--;
    keyRequestsGauge.dec();
  }

  const handleKv = allowMethods(kvMethods, (request, response) => {
    proxyKv(request as ArrivedRequest, response).catch((error: unknown) => {
      const failure = toImpulseError(error);
      serverErrors.report(failure, { method: request.method, url: request.url });
      refuseBody(request, response, failure);
    });
  });

  function handle(request: IncomingMessage, response: ServerResponse): void {
    const url = request.url ?? '';
    // Only a path that starts with '/kv/' exactly is a key route, and only the path '/kv' the scan
    // route; '/KV/x' and an absolute-form URL go to express and its 404, as they did when express
    // routed '/kv/'.
    if (url.startsWith('/kv/')) {
      observeKv(request, response, noop);
      if (keyRequestsInFlight >= config.keyRequestsMax) {
        keyRequestRefusals.inc();
        // Its body, if any, is not read: refuseBody drains it briefly and closes the connection.
        refuseBody(
          request,
          response,
          new ImpulseError(
            'TOO_MANY_REQUESTS',
            `${config.keyRequestsMax} key requests are in flight already (--key-requests-max); retry later`,
          ),
        );
        return;
      }
      keyRequestsInFlight++;
      keyRequestsGauge.inc();
      // 'close' comes once per response: after its last byte, or when its connection goes first.
      response.once('close', releaseKeyRequest);
      // The request deadline counts from here, so that a slow body spends it too.
      (request as ArrivedRequest)[arrivedAtMs] = Date.now();
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

  /**
   * Checks a key request and forwards it to the key's group. Nothing of the client's request but
   * what is parsed here (method, key, read consistency, request id, body) reaches the replica: the
   * forwarder builds the upstream request itself (see `UpstreamRequest`).
   */
  async function proxyKv(request: ArrivedRequest, response: ServerResponse): Promise<void> {
    const method = request.method as KeyMethod;
    const target = parseKeyRequest(request.url ?? '', config.keyBytesMax);
    const route = router.route(target.key);
    let requestId: string | undefined;
    if (method === 'PUT' || method === 'DELETE') {
      // A write gets an id once, here, and keeps it across retries: the group applies it once.
      requestId = parseRequestId(request.headers[requestIdHeader]) ?? randomBytes(16).toString('base64url');
    }
    let body: Buffer | undefined;
    if (method === 'PUT') {
      // The body is read (up to the limit) before the shard group is contacted, so that a
      // refused body changes nothing, and so that it can be sent again on a retry.
      body = await readBodyOrRefuse(request, response, config.valueBytesMax);
      if (body === undefined) return;
    } else {
      refuseUnexpectedBody(request);
    }
    forwarder.forward({
      method,
      target,
      response,
      route,
      body: body ?? emptyBody,
      requestId,
      arrivedAtMs: request[arrivedAtMs] ?? Date.now(),
    });
  }

  app.all(
    '/healthz',
    allowMethods(readOnlyMethods, (_request, response) => sendJson(response, 200, { status: 'ok' })),
  );
  app.all(
    '/readyz',
    allowMethods(readOnlyMethods, (_request, response) => {
      if (context.isReady()) sendJson(response, 200, { status: 'ready', epoch: router.cluster.epoch });
      else sendError(response, new ImpulseError('NOT_READY', 'the gateway is starting or stopping'));
    }),
  );
  app.all('/metrics', metricsHandler(registry));
  app.all(
    '/admin/cluster',
    allowMethods(readOnlyMethods, (_request, response) => {
      void describeCluster().then(
        (description) => sendJson(response, 200, description),
        (error: unknown) => sendError(response, toImpulseError(error)),
      );
    }),
  );

  /** The cluster map with every replica's live Raft state (unreachable replicas say so). */
  async function describeCluster(): Promise<unknown> {
    const slotsByGroup = router.slotTable.slotCountsByGroup();
    const groups = await Promise.all(
      router.cluster.groups.map(async (group) => {
        const replicas = await Promise.all(
          group.replicas.map((replica) => replicaStatus(replica.url, group.id, config.adminToken)),
        );
        const leader = replicas.find((status) => status.role === 'leader');
        return {
          id: group.id,
          slots: slotsByGroup[group.id] ?? 0,
          leader: leader?.replicaId ?? null,
          term: Math.max(0, ...replicas.map((status) => (typeof status.term === 'number' ? status.term : 0))),
          gatewayLeaderGuess: forwarder.leaders.leaderOf(group).id,
          replicas: group.replicas.map((replica, index) => ({
            id: replica.id,
            url: replica.url,
            raftId: replica.raftId,
            ...replicas[index],
          })),
        };
      }),
    );
    return { epoch: router.slotTable.epoch, slotCount, groups };
  }

  app.use(routeNotFoundHandler(routes));

  return {
    app,
    handle,
    close() {
      forwarder.close();
    },
  };
}
