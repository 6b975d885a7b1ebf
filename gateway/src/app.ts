import { Agent, type ClientRequest, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import express, { type Express, type Request, type Response } from 'express';
import httpProxy from 'http-proxy';
import {
  ImpulseError,
  allowMethods,
  methodNotAllowed,
  metricsHandler,
  readOnlyMethods,
  routeNotFoundHandler,
  createHttpMetrics,
  logIfUnexpected,
  observeRequests,
  parseKeyFromPath,
  readBody,
  refuseBody,
  sendError,
  sendJson,
  slotCount,
  toImpulseError,
  type Logger,
  type Registry,
} from '@impulse/common';
import type { GatewayConfig } from './config.js';
import { createGatewayMetrics, type UpstreamErrorReason } from './metrics.js';
import type { ClusterRouter, Route } from './router.js';

export interface GatewayContext {
  readonly config: GatewayConfig;
  readonly router: ClusterRouter;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly isReady: () => boolean;
}

const kvMethods = ['GET', 'HEAD', 'PUT', 'DELETE'] as const;
const routes = ['/kv/{key}', '/metrics', '/healthz', '/readyz', '/admin/cluster'];

function routeOf(request: Request): string {
  const path = request.path;
  if (path.startsWith('/kv/')) return '/kv/{key}';
  if (routes.includes(path)) return path;
  return 'unmatched';
}

/** Idle keep-alive sockets close before the shard-node's 65 s server timeout, never after. */
const agentIdleTimeoutMs = 30_000;

export interface GatewayApp {
  readonly app: Express;
  /** Closes the keep-alive connections to the shard groups. */
  close(): void;
}

export function createGatewayApp(context: GatewayContext): GatewayApp {
  const { config, router, logger, registry } = context;
  const httpMetrics = createHttpMetrics(registry);
  const metrics = createGatewayMetrics(registry);
  const agent = new Agent({
    keepAlive: true,
    maxSockets: config.upstreamSocketsMax,
    timeout: agentIdleTimeoutMs,
    scheduling: 'lifo',
  });
  const proxy = httpProxy.createProxyServer({ agent, xfwd: false, ws: false });

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  app.use(observeRequests(httpMetrics, (request) => routeOf(request as Request)));

  app.use('/kv/', (request, response, next) => {
    // Express mounts '/kv/' on '/kv' too; a bare '/kv' is not a key route.
    if (!request.originalUrl.startsWith('/kv/')) return next();
    void proxyKv(request, response).catch((error: unknown) => {
      const failure = toImpulseError(error);
      logIfUnexpected(logger, failure, { method: request.method, url: request.originalUrl });
      refuseBody(request, response, failure);
    });
  });

  async function proxyKv(request: Request, response: Response): Promise<void> {
    const method = request.method;
    if (!(kvMethods as readonly string[]).includes(method)) {
      sendError(response, methodNotAllowed(method, kvMethods), { allow: kvMethods.join(', ') });
      return;
    }
    const key = parseKeyFromPath(request.originalUrl, config.keyBytesMax);
    const route = router.route(key);
    let body: Buffer | undefined;
    if (method === 'PUT') {
      try {
        // The body is read (up to the limit) before the shard group is contacted, so that a
        // refused body changes nothing, and so that it can be sent again on a retry.
        body = await readBody(request, config.valueBytesMax);
      } catch (error) {
        refuseBody(request, response, toImpulseError(error));
        return;
      }
    }
    forward(request, response, route, body);
  }

  /** Per proxied request: when it was sent, and what to do when the shard group answers. */
  interface InFlight {
    readonly startedAt: bigint;
    readonly groupId: string;
    upstreamRequest: ClientRequest | undefined;
    finish(): void;
  }
  const inFlight = new WeakMap<IncomingMessage, InFlight>();
  // http-proxy makes the upstream request once it has a socket; keep it so a deadline can abort it.
  proxy.on('proxyReq', (upstreamRequest, request) => {
    const state = inFlight.get(request);
    if (state !== undefined) state.upstreamRequest = upstreamRequest;
  });
  proxy.on('proxyRes', (upstreamResponse, request) => {
    const state = inFlight.get(request);
    if (state === undefined) return;
    state.finish();
    metrics.upstreamDurationSeconds.observe(
      {
        group: state.groupId,
        method: request.method ?? '',
        status: String(upstreamResponse.statusCode ?? 0),
      },
      Number(process.hrtime.bigint() - state.startedAt) / 1e9,
    );
  });

  function forward(request: Request, response: Response, route: Route, body: Buffer | undefined): void {
    const groupId = route.group.id;
    let timedOut = false;
    let finished = false;
    const timer = setTimeout(() => {
      timedOut = true;
      state.upstreamRequest?.destroy(new Error('upstream timeout'));
    }, config.upstreamTimeout);
    const state: InFlight = {
      startedAt: process.hrtime.bigint(),
      groupId,
      upstreamRequest: undefined,
      finish() {
        finished = true;
        clearTimeout(timer);
      },
    };
    inFlight.set(request, state);
    response.once('close', () => {
      if (!finished) {
        // The client went away before the answer: stop waiting for the shard group.
        state.finish();
        state.upstreamRequest?.destroy();
      }
    });
    request.url = request.originalUrl;
    proxy.web(
      request,
      response,
      {
        target: route.replica.url,
        // The body was already consumed from the client socket; send the buffered copy.
        ...(body === undefined ? {} : { buffer: Readable.from([body]) }),
        headers: { 'x-impulse-slot': String(route.slot) },
      },
      (error: Error) => {
        if (finished) return;
        state.finish();
        const reason = upstreamErrorReason(error, timedOut);
        metrics.upstreamErrors.inc({ group: groupId, reason });
        logger.warn(
          { group: groupId, replica: route.replica.id, reason, err: error.message },
          'proxy: upstream failed',
        );
        sendError(
          response,
          reason === 'timeout'
            ? new ImpulseError(
                'UPSTREAM_TIMEOUT',
                `shard group ${groupId} did not answer within ${config.upstreamTimeout} ms`,
                { details: { group: groupId } },
              )
            : new ImpulseError('GROUP_UNAVAILABLE', `shard group ${groupId} is unavailable (${reason})`, {
                details: { group: groupId },
              }),
        );
      },
    );
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
      const slotsByGroup = router.slotTable.slotCountsByGroup();
      sendJson(response, 200, {
        epoch: router.slotTable.epoch,
        slotCount,
        groups: router.cluster.groups.map((group) => ({
          id: group.id,
          slots: slotsByGroup[group.id] ?? 0,
          replicas: group.replicas.map((replica) => ({ id: replica.id, url: replica.url })),
        })),
      });
    }),
  );

  app.use(routeNotFoundHandler(routes));

  return {
    app,
    close() {
      proxy.close();
      agent.destroy();
    },
  };
}

function upstreamErrorReason(error: Error, timedOut: boolean): UpstreamErrorReason {
  if (timedOut) return 'timeout';
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED') return 'reset';
  return 'other';
}
