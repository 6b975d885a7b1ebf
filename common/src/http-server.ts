import {
  STATUS_CODES,
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { option, type ConfigOf } from './config.js';
import { ImpulseError } from './errors.js';
import { closeLingering, refuseBody, toImpulseError } from './http.js';
import { checkRequestTarget } from './key.js';
import type { Logger } from './logger.js';
import { Counter, Gauge, metricPrefix, type Registry } from './metrics.js';

/**
 * The client-facing HTTP server of every process (the gateway's port and each shard-node's client
 * port), with the limits that keep slow, greedy or malformed clients from holding it: a header
 * timeout, a whole-request timeout, a maximum of open connections and of header bytes. Every
 * refusal is answered with the error registry's JSON body and a stable code where HTTP allows an
 * answer, and counted.
 */

/** The options of the client HTTP server, shared by the gateway and the shard-node. */
export const httpServerOptions = {
  headerTimeout: option.milliseconds({
    description:
      'How long a client may take to send the request line and headers (from its first byte, or from the connection); past it 408 REQUEST_TIMEOUT and the connection is closed.',
    default: 10_000,
    min: 100,
    max: 600_000,
  }),
  requestTimeout: option.milliseconds({
    description:
      'How long a client may take to send a whole request, body included (at least --header-timeout); past it 408 REQUEST_TIMEOUT and the connection is closed.',
    default: 30_000,
    min: 100,
    max: 3_600_000,
  }),
  connectionsMax: option.integer({
    description:
      'Client connections open at once at most; a connection past it is answered 503 TOO_MANY_CONNECTIONS and closed.',
    default: 4096,
    min: 1,
    max: 1_000_000,
  }),
};

export type HttpServerLimits = ConfigOf<typeof httpServerOptions>;

/** The request line and headers of one request at most (node's default, named and fixed). */
export const headerBytesMax = 16 * 1024;

/** Keep-alive idle timeout: longer than the gateway agent's (30 s), so a server never closes first. */
export const keepAliveTimeoutMs = 65_000;

/** Problems of a set of limits that each option's own range cannot see. */
export function httpServerLimitProblems(limits: HttpServerLimits): string[] {
  return limits.headerTimeout > limits.requestTimeout
    ? [
        `--header-timeout (${limits.headerTimeout} ms) must not exceed --request-timeout (${limits.requestTimeout} ms): the headers are part of the request`,
      ]
    : [];
}

/** Why a client's request or connection was refused before it reached a route. */
export type ClientRefusalReason =
  | 'malformed'
  | 'headers_too_large'
  | 'header_timeout'
  | 'request_timeout'
  | 'invalid_target'
  | 'too_many_connections';

export interface HttpServerMetrics {
  readonly connections: Gauge;
  readonly refusals: Counter<'reason'>;
}

export function createHttpServerMetrics(registry: Registry): HttpServerMetrics {
  return {
    connections: new Gauge({
      name: `${metricPrefix}http_connections`,
      help: 'Client connections open on the HTTP port (refused ones included until they close).',
      registers: [registry],
    }),
    refusals: new Counter({
      name: `${metricPrefix}http_refusals_total`,
      help: 'Client requests or connections refused before reaching a route, by reason: malformed, headers_too_large, header_timeout, request_timeout, invalid_target, too_many_connections.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
  };
}

export interface CreateHttpServerOptions {
  readonly limits: HttpServerLimits;
  readonly listener: (request: IncomingMessage, response: ServerResponse) => void;
  readonly registry: Registry;
  readonly logger: Logger;
}

/**
 * A node:http server with the limits above. Before `listener` sees a request, the request target
 * must be a path that names one thing to every parser (`checkRequestTarget`), and an HTTP/1.1
 * request must carry exactly one `Host`. Node's parser already refuses conflicting framing
 * (`Content-Length` with `Transfer-Encoding`, two `Content-Length`s, an unknown or obfuscated
 * `Transfer-Encoding`); those refusals are answered here as `400 MALFORMED_REQUEST` in JSON.
 */
export function createHttpServer(options: CreateHttpServerOptions): Server {
  const { limits, listener, logger } = options;
  const metrics = createHttpServerMetrics(options.registry);
  /**
   * The latest exchange of each connection: a timeout during its request's body is a request
   * timeout, and an answer under way on it cannot be followed by an error answer.
   */
  const latestExchanges = new WeakMap<Socket, { request: IncomingMessage; response: ServerResponse }>();
  let connectionsOpen = 0;
  /** Connections past `connectionsMax`, answered 503 and closing: their requests are not served. */
  const refusedSockets = new WeakSet<Socket>();

  function refuse(reason: ClientRefusalReason, error: ImpulseError, context: Record<string, unknown>): void {
    metrics.refusals.inc({ reason });
    logger.debug({ ...context, reason, code: error.code }, 'http: request refused');
  }

  function guarded(request: IncomingMessage, response: ServerResponse): void {
    const socket = request.socket;
    if (refusedSockets.has(socket)) {
      request.resume();
      return;
    }
    // node emits every pipelined request of a connection as soon as it is parsed, so their
    // handlers would run side by side: a `GET` sent after a `PUT` on one connection could read
    // before the write applied. RFC 9112 §9.3.2 allows parallel handling only of safe methods;
    // here a connection's requests run one after the other (their answers are in order anyway).
    const previous = latestExchanges.get(socket);
    latestExchanges.set(socket, { request, response });
    if (previous !== undefined && !isOver(previous.response)) {
      previous.response.once('close', () => dispatch(request, response));
      return;
    }
    dispatch(request, response);
  }

  function dispatch(request: IncomingMessage, response: ServerResponse): void {
    if (response.destroyed) return;
    try {
      checkRequestTarget(request.url ?? '');
      checkHost(request);
    } catch (error) {
      const failure = toImpulseError(error);
      refuse(failure.code === 'INVALID_TARGET' ? 'invalid_target' : 'malformed', failure, {
        method: request.method,
      });
      refuseBody(request, response, failure);
      return;
    }
    listener(request, response);
  }

  const server = createServer(
    {
      keepAliveTimeout: keepAliveTimeoutMs,
      headersTimeout: limits.headerTimeout,
      requestTimeout: limits.requestTimeout,
      // How often node looks for connections past a timeout: a timeout fires at most this late.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headerTimeout / 4))),
      maxHeaderSize: headerBytesMax,
      // Checked by `checkHost`, so that the answer is the registry's JSON like every other.
      requireHostHeader: false,
      insecureHTTPParser: false,
    },
    guarded,
  );

  server.on('connection', (socket: Socket) => {
    connectionsOpen++;
    metrics.connections.inc();
    socket.once('close', () => {
      connectionsOpen--;
      metrics.connections.dec();
    });
    // `server.maxConnections` would drop the connection without a word; a 503 tells the client why.
    if (connectionsOpen > limits.connectionsMax) {
      refusedSockets.add(socket);
      const error = new ImpulseError(
        'TOO_MANY_CONNECTIONS',
        `the server has ${limits.connectionsMax} client connections open (--connections-max); retry later`,
        { details: { connectionsMax: limits.connectionsMax } },
      );
      refuse('too_many_connections', error, { remoteAddress: socket.remoteAddress });
      socket.write(rawErrorResponse(error));
      closeLingering(socket);
    }
  });

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const latest = latestExchanges.get(socket);
    const refusal = refusalOf(error, latest?.request);
    if (refusal === undefined) {
      // The client reset or closed the connection: nobody is left to answer.
      socket.destroy();
      return;
    }
    refuse(refusal.reason, refusal.error, { err: error.message, remoteAddress: socket.remoteAddress });
    // An answer already under way on this connection cannot be followed by another one.
    const answering = latest !== undefined && latest.response.headersSent && !latest.response.writableEnded;
    if (!socket.writable || answering) {
      socket.destroy();
      return;
    }
    socket.write(rawErrorResponse(refusal.error));
    closeLingering(socket);
  });

  return server;
}

/** Whether an answer is complete, or can no longer be given (its connection is gone). */
function isOver(response: ServerResponse): boolean {
  return response.writableFinished || response.destroyed;
}

/** An HTTP/1.1 request names exactly one `Host` (RFC 9112 §3.2); HTTP/1.0 may name none. */
function checkHost(request: IncomingMessage): void {
  let hosts = 0;
  const raw = request.rawHeaders;
  for (let index = 0; index < raw.length; index += 2) {
    if ((raw[index] as string).length === 4 && (raw[index] as string).toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1 || (hosts === 0 && request.httpVersionMajor === 1 && request.httpVersionMinor >= 1)) {
    throw new ImpulseError('MALFORMED_REQUEST', 'an HTTP/1.1 request must carry exactly one Host header');
  }
}

function refusalOf(
  error: NodeJS.ErrnoException,
  latest: IncomingMessage | undefined,
): { reason: ClientRefusalReason; error: ImpulseError } | undefined {
  const code = error.code ?? '';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    const inBody = latest !== undefined && !latest.complete;
    return {
      reason: inBody ? 'request_timeout' : 'header_timeout',
      error: new ImpulseError(
        'REQUEST_TIMEOUT',
        inBody
          ? 'the request body did not arrive within --request-timeout'
          : 'the request line and headers did not arrive within --header-timeout',
      ),
    };
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    return {
      reason: 'headers_too_large',
      error: new ImpulseError(
        'HEADERS_TOO_LARGE',
        `the request line and headers are over ${headerBytesMax} bytes`,
        { details: { headerBytesMax } },
      ),
    };
  }
  if (code.startsWith('HPE_')) {
    return {
      reason: 'malformed',
      error: new ImpulseError('MALFORMED_REQUEST', `the request is not valid HTTP/1.1: ${error.message}`, {
        details: { parserError: code },
      }),
    };
  }
  return undefined;
}

/** A whole HTTP/1.1 answer, as bytes, for a connection that no `ServerResponse` can answer on. */
function rawErrorResponse(error: ImpulseError): string {
  const body = JSON.stringify(error.toBody());
  return (
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'connection: close\r\n\r\n' +
    body
  );
}
