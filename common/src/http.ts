import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ImpulseError, errorBody, isErrorCode, type ErrorCode } from './errors.js';
import type { Logger } from './logger.js';
import type { HttpMetrics, Registry } from './metrics.js';
import { slotCount } from './slot.js';

export const valueBytesMaxDefault = 1024 * 1024;

/** Anything thrown, as an `ImpulseError`: unknown failures become `INTERNAL`. */
export function toImpulseError(error: unknown): ImpulseError {
  if (error instanceof ImpulseError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (isErrorCode(code)) return new ImpulseError(code, (error as Error).message, { cause: error });
  return new ImpulseError('INTERNAL', 'internal error', { cause: error });
}

/** Answers with the JSON error body and the code's status. Does nothing if headers are sent. */
export function sendError(
  response: ServerResponse,
  error: ImpulseError,
  extraHeaders: Readonly<Record<string, string>> = {},
): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = JSON.stringify(error.toBody());
  response.writeHead(error.status, {
    ...extraHeaders,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

export function sendErrorCode(response: ServerResponse, code: ErrorCode, message: string): void {
  sendError(response, new ImpulseError(code, message));
}

export function sendJson(response: ServerResponse, status: number, value: unknown): void {
  sendJsonText(response, status, JSON.stringify(value));
}

/** Sends JSON already serialised; a HEAD answer carries the headers (length included) only. */
export function sendJsonText(
  response: ServerResponse,
  status: number,
  body: string,
  method: string | undefined = undefined,
): void {
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  response.end(method === 'HEAD' ? undefined : body);
}

export { errorBody };

/**
 * Reads a request body of at most `valueBytesMax` bytes. A declared `content-length` over the
 * limit is refused before a byte is read; a chunked body is refused as soon as it crosses the
 * limit, so a huge body is never buffered. The caller answers 413 with `connection: close`,
 * which stops the client sending the rest.
 */
export function readBody(request: IncomingMessage, valueBytesMax: number): Promise<Buffer> {
  const declared = request.headers['content-length'];
  if (declared !== undefined) {
    const declaredBytes = Number(declared);
    if (!Number.isSafeInteger(declaredBytes) || declaredBytes < 0) {
      return Promise.reject(new ImpulseError('INVALID_REQUEST', 'invalid content-length'));
    }
    if (declaredBytes > valueBytesMax) return Promise.reject(valueTooLarge(declaredBytes, valueBytesMax));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let receivedBytes = 0;
    const cleanup = (): void => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      request.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer): void => {
      receivedBytes += chunk.length;
      if (receivedBytes > valueBytesMax) {
        cleanup();
        request.pause();
        reject(valueTooLarge(receivedBytes, valueBytesMax));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, receivedBytes));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(new ImpulseError('INVALID_REQUEST', 'the request body could not be read', { cause: error }));
    };
    const onAborted = (): void => onError(new Error('request aborted'));
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
    request.on('aborted', onAborted);
  });
}

function valueTooLarge(bytes: number, valueBytesMax: number): ImpulseError {
  return new ImpulseError('VALUE_TOO_LARGE', `the value is over the limit of ${valueBytesMax} bytes`, {
    details: { valueBytesMax, receivedBytesAtLeast: bytes },
  });
}

/** How long, and how many bytes, a refused body is read and discarded before the connection is cut. */
export const refusedBodyLingerMs = 2_000;
export const refusedBodyLingerBytesMax = 8 * 1024 * 1024;

/**
 * Answers a request whose body was refused (too large, unreadable) without reading the rest of it.
 *
 * Closing the socket at once would be wrong: the client is usually still sending, and a close with
 * unread data makes the kernel send a reset that can destroy our answer before the client reads
 * it. So the rest of the body is read and discarded for a short while ("lingering close", as
 * Apache and nginx do), and the connection is cut only past a time or byte limit.
 */
export function refuseBody(
  request: IncomingMessage,
  response: ServerResponse,
  error: ImpulseError,
  extraHeaders: Readonly<Record<string, string>> = {},
): void {
  if (!request.complete) {
    // Node closes a connection whose request body was not read once the answer is written, with
    // `destroySoon()`. Replace that, for this socket only, by a half-close that drains the rest.
    const socket = request.socket as Socket & { destroySoon?: () => void };
    socket.destroySoon = () => closeLingering(socket);
  }
  // Say so in the answer too: a keep-alive client would otherwise keep sending the rest of a
  // chunked body on a connection it believes stays open.
  sendError(response, error, request.complete ? extraHeaders : { ...extraHeaders, connection: 'close' });
}

/**
 * Closes a connection whose peer may still be sending: half-closes it (our answer, already
 * written, goes out before the FIN), then reads and discards what arrives for up to
 * `refusedBodyLingerMs` or `refusedBodyLingerBytesMax` bytes before cutting it. Closing at once
 * with unread bytes would make the kernel send a reset, which can destroy the answer before the
 * client reads it.
 */
export function closeLingering(socket: Socket): void {
  let discardedBytes = 0;
  const timer = setTimeout(() => socket.destroy(), refusedBodyLingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.removeAllListeners('data');
  socket.on('data', (chunk: Buffer) => {
    discardedBytes += chunk.length;
    if (discardedBytes > refusedBodyLingerBytesMax) socket.destroy();
  });
  socket.end();
  socket.resume();
}

/**
 * Refuses a body on a request that takes none (`GET`, `HEAD`, `DELETE`): a `Content-Length` other
 * than 0, or any `Transfer-Encoding`, gets `BODY_NOT_ALLOWED`. Such a body has no meaning here,
 * and refusing it (the caller answers with `refuseBody`, which closes the connection) leaves no
 * doubt about where the next request on the connection starts.
 */
export function refuseUnexpectedBody(request: IncomingMessage): void {
  const length = request.headers['content-length'];
  if ((length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined) {
    throw new ImpulseError('BODY_NOT_ALLOWED', `a ${request.method ?? ''} request takes no body`);
  }
}

/**
 * Reads a body with `readBody`; when it is refused (too large, malformed, cut off) answers the
 * refusal with `refuseBody` and resolves `undefined`, so the caller only has to stop.
 */
export async function readBodyOrRefuse(
  request: IncomingMessage,
  response: ServerResponse,
  valueBytesMax: number,
): Promise<Buffer | undefined> {
  try {
    return await readBody(request, valueBytesMax);
  } catch (error) {
    refuseBody(request, response, toImpulseError(error));
    return undefined;
  }
}

const observedSinceMs = Symbol('observedSinceMs');
type ObservedResponse = ServerResponse & { [observedSinceMs]?: number };

/**
 * Records every answered request in the HTTP metrics. `routeOf` names the route pattern (never the
 * raw path: one series per key would explode the metric's cardinality).
 *
 * One `finish` listener is shared by every request (it finds its request through `response.req`)
 * and the start time is a number kept on the response: no closure or bigint per request.
 */
export function observeRequests(
  metrics: HttpMetrics,
  routeOf: (request: IncomingMessage, response: ServerResponse) => string,
): (request: IncomingMessage, response: ServerResponse, next: () => void) => void {
  function onFinish(this: ObservedResponse): void {
    const request = this.req;
    const seconds = (performance.now() - (this[observedSinceMs] ?? 0)) / 1000;
    metrics.observe(routeOf(request, this), request.method ?? 'UNKNOWN', this.statusCode, seconds);
  }
  return (_request, response, next) => {
    (response as ObservedResponse)[observedSinceMs] = performance.now();
    // 'finish' is emitted at most once per response, so `on` is enough (and cheaper than `once`).
    response.on('finish', onFinish);
    next();
  };
}

/** How often each error code is logged at most (its other occurrences are counted in the next line). */
export const serverErrorLogIntervalMs = 10_000;

/**
 * Logs the errors a process answers that are not the client's fault (status 500 and above:
 * `INTERNAL`, `STORAGE_ERROR`, `COMMIT_TIMEOUT`, `GROUP_UNAVAILABLE`, ...) with their code and
 * cause, at most once per code per interval, so that a failing disk or a lost group is in the log
 * without one line per request. A line says how many of the same code went unlogged since the
 * previous one (`suppressed`). Client errors (4xx) are only counted, by the HTTP metrics.
 */
export class ServerErrorLog {
  readonly #lastLoggedAtMs = new Map<string, number>();
  readonly #suppressed = new Map<string, number>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number = serverErrorLogIntervalMs,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** Logs `error` if it is the server's fault and its code was not logged within the interval. */
  report(error: ImpulseError, context: Record<string, unknown>): void {
    if (error.status < 500) return;
    const now = this.nowMs();
    const last = this.#lastLoggedAtMs.get(error.code);
    if (last !== undefined && now - last < this.intervalMs) {
      this.#suppressed.set(error.code, (this.#suppressed.get(error.code) ?? 0) + 1);
      return;
    }
    const suppressed = this.#suppressed.get(error.code) ?? 0;
    this.#lastLoggedAtMs.set(error.code, now);
    this.#suppressed.delete(error.code);
    const fields = {
      ...context,
      code: error.code,
      status: error.status,
      err: error.cause ?? error,
      ...(suppressed > 0 ? { suppressed } : {}),
    };
    if (error.code === 'INTERNAL' || error.code === 'STORAGE_ERROR') {
      this.logger.error(fields, `http: answered ${error.code}: ${error.message}`);
    } else {
      this.logger.warn(fields, `http: answered ${error.code}: ${error.message}`);
    }
  }
}

export function methodNotAllowed(method: string, allowed: readonly string[]): ImpulseError {
  return new ImpulseError(
    'METHOD_NOT_ALLOWED',
    `${method} is not allowed here; allowed: ${allowed.join(', ')}`,
    {
      details: { allowed },
    },
  );
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** Wraps a handler so that other methods get 405 with `Allow`. */
export function allowMethods<Req extends IncomingMessage, Res extends ServerResponse>(
  allowed: readonly string[],
  handler: (request: Req, response: Res) => void,
): (request: Req, response: Res) => void {
  return (request, response) => {
    const method = request.method ?? '';
    if (!allowed.includes(method)) {
      sendError(response, methodNotAllowed(method, allowed), { allow: allowed.join(', ') });
      return;
    }
    handler(request, response);
  };
}

export const readOnlyMethods: readonly string[] = ['GET', 'HEAD'];

/** `GET /metrics`: the registry in Prometheus text format. */
export function metricsHandler(registry: Registry): Handler {
  return allowMethods(readOnlyMethods, (_request, response) => {
    registry.metrics().then(
      (text) => {
        response.setHeader('content-type', registry.contentType);
        response.end(text);
      },
      (error: unknown) => sendError(response, toImpulseError(error)),
    );
  });
}

/** The last handler of every app: unknown routes get a JSON 404 that lists the routes. */
export function routeNotFoundHandler(routes: readonly string[]): Handler {
  return (request, response) => {
    const path = (request.url ?? '').split('?')[0] ?? '';
    sendError(
      response,
      new ImpulseError('ROUTE_NOT_FOUND', `no route for ${request.method ?? ''} ${path}`, {
        details: { routes },
      }),
    );
  };
}

/** The header that carries a write's request id, from the client or the gateway to the replica. */
export const requestIdHeader = 'x-impulse-request-id';
const requestIdPattern = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The header that carries the slot the gateway routed a key request by. A replica hashes the key it
 * parsed and refuses the request (`SLOT_MISMATCH`) when the slots differ: the key changed on its
 * way, and writing it would put it in a group that may not own its slot.
 */
export const slotHeader = 'x-impulse-slot';

/**
 * The header that names the shard group a request is for. A node hosts replicas of many groups on
 * one client port and routes each request to its replica of this group; the gateway sends it on
 * every request to a replica, and a one-replica process refuses one that names another group
 * (`GROUP_NOT_HOSTED`), so that a request never reaches the wrong group's data.
 */
export const groupHeader = 'x-impulse-group';

/** The group named by `x-impulse-group`, or `undefined` when the header is absent. */
export function parseGroupHeader(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(header)) {
    throw new ImpulseError('INVALID_REQUEST', `${groupHeader} must be one group id`);
  }
  return header;
}

/** The slot named by `x-impulse-slot`, or `undefined` when the header is absent. */
export function parseSlotHeader(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const slot = typeof header === 'string' && /^\d{1,5}$/.test(header) ? Number(header) : Number.NaN;
  if (!(slot >= 0 && slot < slotCount)) {
    throw new ImpulseError(
      'INVALID_REQUEST',
      `${slotHeader} must be a slot, an integer from 0 to ${slotCount - 1}`,
    );
  }
  return slot;
}

/**
 * The request id of a write, or `undefined` when the header is absent. The gateway and the
 * shard-node both parse it here, so they can never disagree on what a valid id is.
 */
export function parseRequestId(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !requestIdPattern.test(header)) {
    throw new ImpulseError(
      'INVALID_REQUEST',
      `${requestIdHeader} must be 1 to 64 characters of [A-Za-z0-9_-]`,
    );
  }
  return header;
}

/**
 * Stops an HTTP server gracefully: no new connections, idle keep-alive connections closed at
 * once, requests in flight given up to `timeoutMs` to finish, then every connection closed.
 */
export async function closeServerGracefully(server: Server, timeoutMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref());
  await Promise.race([closed, timeout]);
  server.closeAllConnections();
}
