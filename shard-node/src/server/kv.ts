import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQueryString } from 'node:querystring';
import {
  ImpulseError,
  allowMethods,
  logIfUnexpected,
  parseKeyFromPath,
  parseRequestId,
  readBodyOrRefuse,
  refuseBody,
  requestIdHeader,
  sendError,
  toImpulseError,
  type Logger,
} from '@impulse/common';
import type { ShardNodeConfig } from '../config.js';
import type { Replica } from '../replica/index.js';
import type { Command } from '../state-machine/index.js';
import { isEngineError } from '../storage/index.js';
import type { StorageMetrics } from './metrics.js';

/** A plain node:http request listener. */
export type RequestListener = (request: IncomingMessage, response: ServerResponse) => void;

export interface KvRouteContext {
  readonly config: ShardNodeConfig;
  readonly replica: Replica;
  readonly logger: Logger;
  readonly storageMetrics: StorageMetrics;
}

const kvMethods = ['GET', 'HEAD', 'PUT', 'DELETE'] as const;
// A write without an id carries an empty one (the replica then makes one up); one empty buffer
// serves every such write, since it has no bytes to change.
const emptyRequestId = Buffer.alloc(0);

/**
 * The `/kv/{key}` route: GET and HEAD read a key, PUT writes one, DELETE removes one. It is a plain
 * request listener, called for every request whose URL starts with `/kv/`, so that the data path
 * does not pay for express's router and its per-request prototype swaps (see docs/benchmarks.md).
 * Errors are answered with the error registry's JSON body; unexpected ones are logged.
 */
export function createKvRoute(context: KvRouteContext): RequestListener {
  const { config, replica, logger, storageMetrics } = context;

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? '';
    // The raw URL is parsed here, as the gateway does, so both agree on which key a path names.
    const url = request.url ?? '';
    const key = parseKeyFromPath(url, config.keyBytesMax);
    switch (method) {
      case 'GET':
      case 'HEAD': {
        const consistency = consistencyOf(queryParameter(url, 'consistency'));
        const value = await storageMetrics
          .time('get', () => replica.read(key, consistency))
          .catch(rethrowAsStorageError);
        if (value === undefined) {
          sendError(response, new ImpulseError('NOT_FOUND', 'no such key'));
          return;
        }
        response.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': value.length,
        });
        response.end(method === 'HEAD' ? undefined : value);
        return;
      }
      case 'PUT':
      case 'DELETE': {
        const given = parseRequestId(request.headers[requestIdHeader]);
        const requestId = given === undefined ? emptyRequestId : Buffer.from(given, 'latin1');
        let value: Buffer | undefined;
        if (method === 'PUT') {
          value = await readBodyOrRefuse(request, response, config.valueBytesMax);
          if (value === undefined) return;
        }
        const command: Command =
          value === undefined
            ? { operation: 'delete', requestId, key }
            : { operation: 'put', requestId, key, value };
        await storageMetrics
          .time(method === 'PUT' ? 'put' : 'delete', () => replica.write(command))
          .catch(rethrowAsStorageError);
        response.writeHead(204).end();
        return;
      }
    }
  }

  return allowMethods(kvMethods, function handleKv(request, response) {
    serve(request, response).catch((error: unknown) => {
      const failure = toImpulseError(error);
      logIfUnexpected(logger, failure, { method: request.method, url: request.url });
      refuseBody(request, response, failure);
    });
  });
}

/** What an engine's failure means to a client: stopping is NOT_READY, anything else STORAGE_ERROR. */
export function storageError(error: unknown): ImpulseError {
  if (error instanceof ImpulseError) return error;
  if (isEngineError(error, 'ENGINE_CLOSED')) {
    return new ImpulseError('NOT_READY', 'the replica is stopping', { cause: error });
  }
  return new ImpulseError('STORAGE_ERROR', 'the storage engine failed the operation', { cause: error });
}

function rethrowAsStorageError(error: unknown): never {
  throw storageError(error);
}

/**
 * One query parameter of a URL, as express's `simple` query parser gave it to this route before it
 * left express: node's querystring on the query that parseurl finds. That query runs from the first
 * `?` to the end, or to a `#` (node's HTTP parser lets a fragment through, and url.parse, which
 * parseurl falls back to then, cuts it off); a `?` after a `#` starts no query. A parameter given
 * twice is an array.
 */
export function queryParameter(url: string, name: string): string | string[] | undefined {
  const queryAt = url.indexOf('?');
  if (queryAt === -1) return undefined;
  const fragmentAt = url.indexOf('#');
  if (fragmentAt !== -1 && fragmentAt < queryAt) return undefined;
  return parseQueryString(url.slice(queryAt + 1, fragmentAt === -1 ? undefined : fragmentAt))[name];
}

function consistencyOf(value: unknown): 'linearizable' | 'stale' {
  if (value === undefined || value === 'linearizable') return 'linearizable';
  if (value === 'stale') return 'stale';
  throw new ImpulseError('INVALID_REQUEST', 'consistency must be linearizable or stale', {
    details: { allowed: ['linearizable', 'stale'] },
  });
}
