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
  readBody,
  refuseBody,
  sendError,
  sendJson,
  toImpulseError,
  type Logger,
  type Registry,
} from '@impulse/common';
import { isEngineError, type Engine } from '../storage/index.js';
import type { ShardNodeConfig } from '../config.js';
import { dataKey } from '../state-machine/keyspace.js';
import { createStorageMetrics, type StorageMetrics } from './metrics.js';

export interface ShardAppContext {
  readonly config: ShardNodeConfig;
  readonly engine: Engine;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly startedAtMs: number;
  /** False while starting and once shutting down: /readyz answers 503 then. */
  readonly isReady: () => boolean;
}

const kvMethods = ['GET', 'HEAD', 'PUT', 'DELETE'] as const;
const routes = ['/kv/{key}', '/metrics', '/healthz', '/readyz', '/admin/status'];

/** The route label of a request for metrics: a fixed pattern, never the raw path. */
function routeOf(request: Request): string {
  const path = request.path;
  if (path.startsWith('/kv/')) return '/kv/{key}';
  if (routes.includes(path)) return path;
  return 'unmatched';
}

/** The client API of one replica: `/kv/{key}`, metrics, health, readiness and status. */
export function createShardApp(context: ShardAppContext): Express {
  const { config, engine, logger, registry } = context;
  const httpMetrics = createHttpMetrics(registry);
  const storageMetrics = createStorageMetrics(registry, engine);
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
      void engine.approximateKeyCount().then(
        (keyCount) =>
          sendJson(response, 200, {
            groupId: config.groupId,
            replicaId: config.replicaId,
            engine: engine.name,
            keyCount,
            pid: process.pid,
            uptimeSeconds: Math.round((Date.now() - context.startedAtMs) / 1000),
          }),
        (error: unknown) => sendError(response, storageError(error)),
      );
    }),
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
  const { config, engine } = context;
  const method = request.method;
  if (!(kvMethods as readonly string[]).includes(method)) {
    sendError(response, methodNotAllowed(method, kvMethods), { allow: kvMethods.join(', ') });
    return;
  }
  // Parse the raw URL: Express would decode the path itself and answer malformed escapes its own way.
  const key = parseKeyFromPath(request.originalUrl, config.keyBytesMax);
  const engineKey = dataKey(key);
  switch (method) {
    case 'GET':
    case 'HEAD': {
      const value = await storageMetrics
        .time('get', () => engine.get(engineKey))
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
    case 'PUT': {
      let value: Buffer;
      try {
        value = await readBody(request, config.valueBytesMax);
      } catch (error) {
        refuseBody(request, response, toImpulseError(error));
        return;
      }
      await storageMetrics
        .time('put', () => engine.put(engineKey, value))
        .catch((error: unknown) => {
          throw storageError(error);
        });
      response.writeHead(204).end();
      return;
    }
    case 'DELETE': {
      await storageMetrics
        .time('delete', () => engine.delete(engineKey))
        .catch((error: unknown) => {
          throw storageError(error);
        });
      response.writeHead(204).end();
      return;
    }
  }
}
