import express, { type Express, type Request, type Response } from 'express';
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
  parseRequestId,
  requestIdHeader,
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
import type { Command } from '../state-machine/index.js';
import type { MemberSpec, Replica } from '../replica/index.js';
import { isEngineError } from '../storage/index.js';
import { createStorageMetrics, type StorageMetrics } from './metrics.js';

export interface ShardAppContext {
  readonly config: ShardNodeConfig;
  readonly replica: Replica;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly startedAtMs: number;
  /** False while starting and once shutting down: /readyz answers 503 then. */
  readonly isReady: () => boolean;
}

const kvMethods = ['GET', 'HEAD', 'PUT', 'DELETE'] as const;
const routes = [
  '/kv/{key}',
  '/metrics',
  '/healthz',
  '/readyz',
  '/admin/status',
  '/admin/members',
  '/admin/members/{replicaId}/promote',
  '/admin/transfer-leadership',
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

/** The client API of one replica: `/kv/{key}`, metrics, health, readiness and status. */
export function createShardApp(context: ShardAppContext): Express {
  const { replica, logger, registry } = context;
  const httpMetrics = createHttpMetrics(registry);
  const storageMetrics = createStorageMetrics(registry, () => replica.engine);
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'simple');
  app.use(observeRequests(httpMetrics, (request) => routeOf(request as Request)));

  app.use('/kv/', (request, response, next) => {
    // Express mounts '/kv/' on '/kv' too; a bare '/kv' is not a key route.
    if (!request.originalUrl.startsWith('/kv/')) return next();
    void handleKv(request, response, context, storageMetrics).catch((error: unknown) => {
      const failure = toImpulseError(error);
      logIfUnexpected(logger, failure, { method: request.method, url: request.originalUrl });
      refuseBody(request, response, failure);
    });
  });

  app.all(
    '/healthz',
    allowMethods(readOnlyMethods, (_request, response) => sendJson(response, 200, { status: 'ok' })),
  );
  app.all(
    '/readyz',
    allowMethods(readOnlyMethods, (_request, response) => {
      if (context.isReady()) sendJson(response, 200, { status: 'ready' });
      else sendError(response, new ImpulseError('NOT_READY', 'the replica is starting or stopping'));
    }),
  );
  app.all('/metrics', metricsHandler(registry));
  app.all(
    '/admin/status',
    allowMethods(readOnlyMethods, (_request, response) => {
      void replica.countUserKeys().then(
        (keyCount) =>
          sendJson(response, 200, {
            ...replica.status(),
            engine: replica.engine.name,
            keyCount,
            pid: process.pid,
            uptimeSeconds: Math.round((Date.now() - context.startedAtMs) / 1000),
          }),
        (error: unknown) => sendError(response, storageError(error)),
      );
    }),
  );

  const admin =
    (handler: (request: Request, response: Response) => Promise<void>) =>
    (request: Request, response: Response) => {
      handler(request, response).catch((error: unknown) => {
        const failure = toImpulseError(error);
        logIfUnexpected(logger, failure, { method: request.method, url: request.originalUrl });
        refuseBody(request, response, failure);
      });
    };
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
  return app;
}

function storageError(error: unknown): ImpulseError {
  if (error instanceof ImpulseError) return error;
  if (isEngineError(error, 'ENGINE_CLOSED')) {
    return new ImpulseError('NOT_READY', 'the replica is stopping', { cause: error });
  }
  return new ImpulseError('STORAGE_ERROR', 'the storage engine failed the operation', { cause: error });
}

async function handleKv(
  request: Request,
  response: Response,
  context: ShardAppContext,
  storageMetrics: StorageMetrics,
): Promise<void> {
  const { config, replica } = context;
  const method = request.method;
  if (!(kvMethods as readonly string[]).includes(method)) {
    sendError(response, methodNotAllowed(method, kvMethods), { allow: kvMethods.join(', ') });
    return;
  }
  // Parse the raw URL: Express would decode the path itself and answer malformed escapes its own way.
  const key = parseKeyFromPath(request.originalUrl, config.keyBytesMax);
  switch (method) {
    case 'GET':
    case 'HEAD': {
      const consistency = consistencyOf(request.query['consistency']);
      const value = await storageMetrics
        .time('get', () => replica.read(key, consistency))
        .catch((error: unknown) => {
          throw storageError(error);
        });
      if (value === undefined) {
        sendError(response, new ImpulseError('NOT_FOUND', 'no such key'));
        return;
      }
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': value.length });
      response.end(method === 'HEAD' ? undefined : value);
      return;
    }
    case 'PUT':
    case 'DELETE': {
      const requestId = Buffer.from(parseRequestId(request.headers[requestIdHeader]) ?? '', 'latin1');
      let value: Buffer | undefined;
      if (method === 'PUT') {
        try {
          value = await readBody(request, config.valueBytesMax);
        } catch (error) {
          refuseBody(request, response, toImpulseError(error));
          return;
        }
      }
      const command: Command =
        value === undefined
          ? { operation: 'delete', requestId, key }
          : { operation: 'put', requestId, key, value };
      await storageMetrics
        .time(method === 'PUT' ? 'put' : 'delete', () => replica.write(command))
        .catch((error: unknown) => {
          throw storageError(error);
        });
      response.writeHead(204).end();
      return;
    }
  }
}

const adminBodyBytesMax = 64 * 1024;

async function readJson(request: Request): Promise<unknown> {
  const body = await readBody(request, adminBodyBytesMax);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new ImpulseError('INVALID_REQUEST', 'the body must be JSON');
  }
}

/** A new member from an admin request: `{replicaId, raftId, url, peerAddress}`. */
function memberOf(body: unknown): MemberSpec {
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

function consistencyOf(value: unknown): 'linearizable' | 'stale' {
  if (value === undefined || value === 'linearizable') return 'linearizable';
  if (value === 'stale') return 'stale';
  throw new ImpulseError('INVALID_REQUEST', 'consistency must be linearizable or stale', {
    details: { allowed: ['linearizable', 'stale'] },
  });
}
