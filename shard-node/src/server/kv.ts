import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerErrorLog } from '@impulse/common';
import {
  Counter,
  ImpulseError,
  allowMethods,
  metricPrefix,
  parseKeyRequest,
  parseRequestId,
  parseSlotHeader,
  readBodyOrRefuse,
  refuseBody,
  refuseUnexpectedBody,
  requestIdHeader,
  sendError,
  slotForKey,
  slotHeader,
  toImpulseError,
  type Logger,
  type Registry,
} from '@impulse/common';
import type { ShardNodeConfig } from '../config.js';
import type { Replica } from '../replica/index.js';
import { StorageFault, type Command } from '../state-machine/index.js';
import { isEngineError } from '../storage/index.js';
import type { StorageMetrics } from './metrics.js';

/** A plain node:http request listener. */
export type RequestListener = (request: IncomingMessage, response: ServerResponse) => void;

export interface KvRouteContext {
  readonly config: ShardNodeConfig;
  readonly replica: Replica;
  readonly logger: Logger;
  readonly storageMetrics: StorageMetrics;
  readonly registry: Registry;
  /** Errors answered that are not the client's fault (a storage failure, a commit timeout). */
  readonly serverErrors: ServerErrorLog;
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
  const { config, replica, logger, storageMetrics, serverErrors } = context;
  const slotMismatchFamily =
    (context.registry.getSingleMetric(`${metricPrefix}kv_slot_mismatches_total`) as
      Counter<'group'> | undefined) ??
    new Counter({
      name: `${metricPrefix}kv_slot_mismatches_total`,
      help: 'Key requests refused (SLOT_MISMATCH), by group, because the key does not hash to the slot the gateway routed it by: the key changed on its way.',
      labelNames: ['group'] as const,
      registers: [context.registry],
    });
  // One series per group, created at once so that it reads 0 before the first mismatch.
  slotMismatchFamily.inc({ group: config.groupId }, 0);
  const slotMismatches = slotMismatchFamily.labels({ group: config.groupId });

  async function serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? '';
    // The raw URL is parsed here, as the gateway does, so both agree on which key a path names.
    const { key, consistency } = parseKeyRequest(request.url ?? '', config.keyBytesMax);
    checkSlot(request, key);
    if (method !== 'PUT') refuseUnexpectedBody(request);
    switch (method) {
      case 'GET':
      case 'HEAD': {
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

  /**
   * The first line of defence against a key that changed between the gateway and here: the slot
   * the gateway routed by (when a gateway sent the request) must be the slot of the key parsed
   * here. A client that calls a replica directly sends no slot, and is not checked.
   */
  function checkSlot(request: IncomingMessage, key: string): void {
    const routed = parseSlotHeader(request.headers[slotHeader]);
    if (routed === undefined) return;
    const slot = slotForKey(key);
    if (slot === routed) return;
    slotMismatches.inc();
    logger.warn(
      { routedSlot: routed, keySlot: slot, method: request.method, url: request.url },
      'kv: refused a key that does not hash to the slot it was routed by',
    );
    throw new ImpulseError(
      'SLOT_MISMATCH',
      `the key hashes to slot ${slot}, not to slot ${routed} named in ${slotHeader}`,
      {
        details: { routedSlot: routed, keySlot: slot },
      },
    );
  }

  return allowMethods(kvMethods, function handleKv(request, response) {
    serve(request, response).catch((error: unknown) => {
      const failure = toImpulseError(error);
      serverErrors.report(failure, { method: request.method, url: request.url });
      refuseBody(request, response, failure);
    });
  });
}

/**
 * What an engine's failure means to a client: stopping is NOT_READY, a storage fault (the replica
 * found its state damaged) STORAGE_FAULT, anything else STORAGE_ERROR.
 */
export function storageError(error: unknown): ImpulseError {
  if (error instanceof ImpulseError) return error;
  if (error instanceof StorageFault) {
    return new ImpulseError('STORAGE_FAULT', 'this replica found its stored state damaged', {
      details: { faultKind: error.kind, faultFile: error.file ?? null },
      cause: error,
    });
  }
  if (isEngineError(error, 'ENGINE_CLOSED')) {
    return new ImpulseError('NOT_READY', 'the replica is stopping', { cause: error });
  }
  return new ImpulseError('STORAGE_ERROR', 'the storage engine failed the operation', { cause: error });
}

function rethrowAsStorageError(error: unknown): never {
  throw storageError(error);
}
