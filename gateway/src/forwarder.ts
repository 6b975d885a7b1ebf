import {
  Agent,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { Stream } from 'node:stream';
import { parse as parseUrl, type Url } from 'node:url';
import httpProxy from 'http-proxy';
import type { ServerErrorLog } from '@impulse/common';
import {
  ImpulseError,
  isErrorCode,
  sendError,
  type GroupSpec,
  type KeyRequest,
  type Logger,
  type ReplicaSpec,
} from '@impulse/common';
import type { GatewayConfig } from './config.js';
import { LeaderCache } from './leader-cache.js';
import type { GatewayMetrics, UpstreamErrorReason } from './metrics.js';
import type { Route } from './router.js';
import { UpstreamRequest, type KeyMethod } from './upstream-request.js';

/** Idle keep-alive sockets close before the shard-node's 65 s server timeout, never after. */
const agentIdleTimeoutMs = 30_000;
/** The largest error body read from a replica to decide on a retry. */
const errorBodyBytesMax = 64 * 1024;
/** Answers up to this size (declared by the replica) are gathered and sent in one write; larger ones stream. */
const wholeBodyBytesMax = 64 * 1024;
const retryBackoffMsMin = 20;
const retryBackoffMsMax = 500;
/** Headers that describe one hop of a connection, never forwarded (RFC 9110 §7.6.1). */
const hopByHopHeaders = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'te',
  'trailer',
]);

export interface ForwardRequest {
  readonly method: KeyMethod;
  /** The key and read consistency parsed from the client's target: all the replica is told of it. */
  readonly target: KeyRequest;
  readonly response: ServerResponse;
  readonly route: Route;
  /** The request body, kept so that a retry can send it again; empty for reads and deletes. */
  readonly body: Buffer;
  /** Sent with writes: the state machine applies a request id once, however often it is retried. */
  readonly requestId: string | undefined;
  /** `Date.now()` when the client's request arrived: `--request-deadline` counts from it. */
  readonly arrivedAtMs: number;
}

/** The state of one client request across its attempts. */
interface Forwarding extends ForwardRequest {
  readonly deadlineMs: number;
  attempts: number;
  /** Replicas that refused the connection during this request: all of them means the group is down. */
  readonly refusedBy: Set<string>;
  replica: ReplicaSpec;
  upstreamRequest: ClientRequest | undefined;
  /** `performance.now()` when the current attempt started. */
  attemptStartedAtMs: number;
  timer: NodeJS.Timeout | undefined;
  timedOut: boolean;
  /** Set once the client has its answer or went away: no further attempt starts. */
  done: boolean;
}

/**
 * Proxies `/kv/` requests to the leader of the key's group with http-proxy, and hides leader
 * changes from the client: a `NOT_LEADER` answer updates the leader cache and the request is sent
 * again, as is a request whose replica refused the connection, reset it or did not answer in
 * time, a bounded number of times and within a deadline. Retrying a write is safe because it
 * carries a request id that the state machine applies at most once.
 */
export class Forwarder {
  readonly leaders: LeaderCache;
  /** The keep-alive agent to the replicas, shared with the scan's scatter-gather (`GroupReader`). */
  readonly agent: Agent;
  private readonly proxy: httpProxy;
  /** Each attempt's upstream request, to the forwarding it belongs to (http-proxy's events give the request). */
  private readonly inFlight = new WeakMap<UpstreamRequest, Forwarding>();
  /**
   * Each replica's URL parsed once. http-proxy parses a string target on every request (with the
   * legacy `url.parse`, which it then reads fields of); given the parsed form it uses it as is.
   */
  private readonly targets = new Map<string, Url>();
  /** The upstream latency histogram's child per group, method and status, resolved once. */
  private readonly upstreamDurations = new Map<string, { observe(seconds: number): void }>();

  constructor(
    private readonly config: GatewayConfig,
    groups: ReadonlyMap<string, GroupSpec>,
    private readonly logger: Logger,
    private readonly metrics: GatewayMetrics,
    /** Errors the gateway answers that are not the client's fault: the group down, a timeout. */
    private readonly serverErrors: ServerErrorLog,
  ) {
    this.leaders = new LeaderCache(groups);
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: config.upstreamSocketsMax,
      timeout: agentIdleTimeoutMs,
      scheduling: 'lifo',
    });
    this.proxy = httpProxy.createProxyServer({
      agent: this.agent,
      xfwd: false,
      ws: false,
      selfHandleResponse: true,
    });
    // http-proxy creates the upstream request once it has a socket; keep it so a deadline can abort it.
    this.proxy.on('proxyReq', (upstreamRequest, request) => {
      const forwarding = this.inFlight.get(request as unknown as UpstreamRequest);
      if (forwarding !== undefined) forwarding.upstreamRequest = upstreamRequest;
    });
    this.proxy.on('proxyRes', (upstreamResponse, request) => {
      const forwarding = this.inFlight.get(request as unknown as UpstreamRequest);
      if (forwarding === undefined) {
        upstreamResponse.resume();
        return;
      }
      this.handleResponse(forwarding, upstreamResponse);
    });
  }

  forward(request: ForwardRequest): void {
    const forwarding: Forwarding = {
      ...request,
      deadlineMs: request.arrivedAtMs + this.config.requestDeadline,
      attempts: 0,
      refusedBy: new Set(),
      replica: this.leaders.leaderOf(request.route.group),
      upstreamRequest: undefined,
      attemptStartedAtMs: 0,
      timer: undefined,
      timedOut: false,
      done: false,
    };
    request.response.once('close', () => {
      if (forwarding.done) return;
      // The client went away: stop waiting for the group, and start no further attempt.
      forwarding.done = true;
      clearTimeout(forwarding.timer);
      forwarding.upstreamRequest?.destroy();
    });
    if (Date.now() >= forwarding.deadlineMs) {
      // The client took the whole deadline to send its request: no time is left to ask the group.
      this.finishWithError(forwarding, deadlineExceeded(request.route.group.id));
      return;
    }
    this.attempt(forwarding);
  }

  private attempt(forwarding: Forwarding): void {
    if (forwarding.done) return;
    const { response, route } = forwarding;
    forwarding.attempts++;
    forwarding.replica = this.leaders.leaderOf(route.group);
    forwarding.upstreamRequest = undefined;
    forwarding.timedOut = false;
    forwarding.attemptStartedAtMs = performance.now();
    const attemptTimeoutMs = Math.max(
      1,
      Math.min(this.config.upstreamTimeout, forwarding.deadlineMs - Date.now()),
    );
    forwarding.timer = setTimeout(() => {
      forwarding.timedOut = true;
      forwarding.upstreamRequest?.destroy(new Error('upstream timeout'));
    }, attemptTimeoutMs);
    const target = this.targetOf(forwarding.replica.url);
    const group = route.group;
    const upstream = new UpstreamRequest({
      method: forwarding.method,
      target: forwarding.target,
      slot: route.slot,
      groupId: group.id,
      requestId: forwarding.requestId,
      bodyBytes: forwarding.body.length,
      authority: target.host ?? '',
    });
    this.inFlight.set(upstream, forwarding);
    this.proxy.web(
      upstream as unknown as IncomingMessage,
      response,
      {
        target,
        // The upstream request's `url` is sent as is: the replica URL's path is not joined to it, and
        // http-proxy does not re-parse it (it would collapse `//` and rewrite `http:/`).
        toProxy: true,
        prependPath: false,
        // Always send the kept copy: the client's stream was read once and cannot be read again.
        buffer: new KeptBody(forwarding.body) as unknown as Stream,
      },
      (error: Error) => this.handleError(forwarding, error),
    );
  }

  private upstreamDurationOf(
    groupId: string,
    method: string,
    status: number,
  ): { observe(seconds: number): void } {
    const key = `${groupId} ${method} ${status}`;
    let child = this.upstreamDurations.get(key);
    if (child === undefined) {
      child = this.metrics.upstreamDurationSeconds.labels({ group: groupId, method, status: String(status) });
      this.upstreamDurations.set(key, child);
    }
    return child;
  }

  private targetOf(url: string): Url {
    let target = this.targets.get(url);
    if (target === undefined) {
      target = parseUrl(url);
      this.targets.set(url, target);
    }
    return target;
  }

  private handleError(forwarding: Forwarding, error: Error): void {
    if (forwarding.done) return;
    clearTimeout(forwarding.timer);
    const group = forwarding.route.group;
    const reason = upstreamErrorReason(error, forwarding.timedOut);
    this.metrics.upstreamErrors.inc({ group: group.id, reason });
    this.logger.debug(
      { group: group.id, replica: forwarding.replica.id, reason, err: error.message },
      'proxy: upstream failed',
    );
    if (reason === 'refused') forwarding.refusedBy.add(forwarding.replica.id);
    // A timeout is worth another try only on another replica; a group every replica of which
    // refused the connection is down, and the client learns it at once.
    const everyReplicaRefused = forwarding.refusedBy.size >= group.replicas.length;
    const retryable = !everyReplicaRefused && (reason !== 'timeout' || group.replicas.length > 1);
    this.leaders.rotate(group, forwarding.replica);
    if (retryable && this.retry(forwarding, reason, false)) return;
    this.finishWithError(
      forwarding,
      reason === 'timeout'
        ? deadlineExceeded(group.id)
        : new ImpulseError('GROUP_UNAVAILABLE', `shard group ${group.id} is unavailable (${reason})`, {
            details: { group: group.id },
          }),
    );
  }

  private handleResponse(forwarding: Forwarding, upstreamResponse: IncomingMessage): void {
    if (forwarding.done) {
      upstreamResponse.resume();
      return;
    }
    clearTimeout(forwarding.timer);
    const status = upstreamResponse.statusCode ?? 502;
    const group = forwarding.route.group;
    this.upstreamDurationOf(group.id, forwarding.method, status).observe(
      (performance.now() - forwarding.attemptStartedAtMs) / 1000,
    );
    if (status !== 421 && status !== 503) {
      this.pipeResponse(forwarding, upstreamResponse, status);
      return;
    }
    // A redirect caused by the cluster's own state: read why, and decide whether to try again.
    void readErrorBody(upstreamResponse).then((body) => {
      if (forwarding.done) return;
      const code = body?.error?.code;
      if (code === 'NOT_LEADER') {
        const hint = body?.error?.leaderHint;
        const learned =
          typeof hint === 'string' &&
          hint !== forwarding.replica.id &&
          this.leaders.learn(group.id, hint, body?.error?.leaderUrl);
        if (!learned) this.leaders.rotate(group, forwarding.replica);
        // A named leader is tried at once; without one, an election is under way: wait a little.
        if (this.retry(forwarding, 'not_leader', learned)) return;
        this.finishWithError(
          forwarding,
          new ImpulseError('GROUP_UNAVAILABLE', `shard group ${group.id} has no leader`, {
            details: { group: group.id },
          }),
        );
        return;
      }
      if (code === 'NOT_READY') {
        this.leaders.rotate(group, forwarding.replica);
        if (this.retry(forwarding, 'not_ready', false)) return;
      }
      // A replica that found its state damaged serves nothing, and has stepped down if it led; its
      // group's other replicas serve. A write it refused was never proposed, or was failed while
      // in flight and may still commit: sending it again with the same request id is safe.
      if (code === 'STORAGE_FAULT') {
        this.leaders.rotate(group, forwarding.replica);
        if (this.retry(forwarding, 'storage_fault', true)) return;
      }
      // The node named no longer hosts the group's replica, or its replica failed and stopped:
      // nothing was proposed there, and the group's other replicas serve.
      const elsewhere = replicaElsewhereReason(code);
      if (elsewhere !== undefined) {
        this.leaders.rotate(group, forwarding.replica);
        if (this.retry(forwarding, elsewhere, true)) return;
      }
      // A write that did not apply in time may still apply: sending it again with the same request
      // id either applies it once or finds it applied.
      if (code === 'COMMIT_TIMEOUT' && this.retry(forwarding, 'commit_timeout', false)) return;
      this.replayError(forwarding, status, upstreamResponse.headers, body);
    });
  }

  /** Starts another attempt if the budget allows; answers whether it did. */
  private retry(forwarding: Forwarding, reason: string, immediately: boolean): boolean {
    const backoffMs = immediately ? 0 : retryBackoffMs(forwarding.attempts);
    if (
      forwarding.attempts >= this.config.retryAttemptsMax ||
      Date.now() + backoffMs >= forwarding.deadlineMs
    ) {
      return false;
    }
    this.metrics.retries.inc({ group: forwarding.route.group.id, reason });
    if (backoffMs === 0) this.attempt(forwarding);
    else setTimeout(() => this.attempt(forwarding), backoffMs);
    return true;
  }

  private pipeResponse(forwarding: Forwarding, upstreamResponse: IncomingMessage, status: number): void {
    forwarding.done = true;
    const { response } = forwarding;
    if (response.headersSent) {
      upstreamResponse.resume();
      return;
    }
    response.writeHead(status, forwardableHeaders(upstreamResponse.headers));
    upstreamResponse.once('error', () => response.destroy());
    const declaredBytes = Number(upstreamResponse.headers['content-length']);
    if (!(declaredBytes <= wholeBodyBytesMax)) {
      upstreamResponse.pipe(response);
      return;
    }
    // A small answer (every one but large values) is gathered and sent with one `end`: headers and
    // body leave in one write, without a pipe's listeners and its separate write and end.
    const chunks: Buffer[] = [];
    upstreamResponse.on('data', (chunk: Buffer) => chunks.push(chunk));
    upstreamResponse.once('end', () => {
      if (chunks.length === 0) response.end();
      else response.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    });
  }

  private replayError(
    forwarding: Forwarding,
    status: number,
    headers: IncomingHttpHeaders,
    body: ErrorBodyShape | undefined,
  ): void {
    forwarding.done = true;
    const code = body?.error?.code;
    if (status >= 500) {
      // A replica's own failure (STORAGE_ERROR, COMMIT_TIMEOUT, ...) passed on to the client.
      this.serverErrors.report(
        new ImpulseError(
          isErrorCode(code) ? code : 'INTERNAL',
          `replica ${forwarding.replica.id} answered ${status}`,
        ),
        { method: forwarding.method, group: forwarding.route.group.id, replica: forwarding.replica.id },
      );
    }
    const text = JSON.stringify(
      body ?? { error: { code: 'INTERNAL', message: 'unreadable answer from a replica' } },
    );
    forwarding.response.writeHead(status, {
      ...forwardableHeaders(headers),
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
    });
    forwarding.response.end(text);
  }

  private finishWithError(forwarding: Forwarding, error: ImpulseError): void {
    forwarding.done = true;
    this.serverErrors.report(error, {
      method: forwarding.method,
      group: forwarding.route.group.id,
      replica: forwarding.replica.id,
      attempts: forwarding.attempts,
    });
    sendError(forwarding.response, error);
  }

  close(): void {
    this.proxy.close();
    this.agent.destroy();
  }
}

/**
 * The kept body in the one shape http-proxy asks of its `buffer` option: `pipe(upstreamRequest)`.
 * Ending the upstream request with the whole body at once lets node write its headers and body in
 * one system call, where a stream would add a tick, a write and an end per request.
 */
class KeptBody {
  constructor(private readonly body: Buffer) {}

  pipe<Destination extends NodeJS.WritableStream>(destination: Destination): Destination {
    if (this.body.length > 0) destination.end(this.body);
    else destination.end();
    return destination;
  }
}

function deadlineExceeded(groupId: string): ImpulseError {
  return new ImpulseError('UPSTREAM_TIMEOUT', `shard group ${groupId} did not answer within the deadline`, {
    details: { group: groupId },
  });
}

/** How long to wait before the attempt after `attempts` attempts: doubling, from 20 ms to 500 ms. */
export function retryBackoffMs(attempts: number): number {
  return Math.min(retryBackoffMsMax, retryBackoffMsMin * 2 ** Math.max(0, attempts - 1));
}

export interface ErrorBodyShape {
  readonly error?: {
    readonly code?: unknown;
    readonly leaderHint?: unknown;
    readonly [field: string]: unknown;
  };
}

export function readErrorBody(response: IncomingMessage): Promise<ErrorBodyShape | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    response.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes <= errorBodyBytesMax) chunks.push(chunk);
    });
    response.once('error', () => resolve(undefined));
    response.once('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ErrorBodyShape);
      } catch {
        resolve(undefined);
      }
    });
  });
}

function forwardableHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const result: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !hopByHopHeaders.has(name)) result[name] = value;
  }
  return result;
}

export function upstreamErrorReason(error: Error, timedOut: boolean): UpstreamErrorReason {
  if (timedOut) return 'timeout';
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED') return 'reset';
  return 'other';
}

/**
 * The retry reason of an answer that says the group is served elsewhere than the node asked:
 * `GROUP_NOT_HOSTED` (the node hosts no replica of it, or no longer) or `REPLICA_FAILED` (its
 * replica there failed and stopped). Neither proposed anything: another replica is tried at once.
 */
export function replicaElsewhereReason(code: unknown): string | undefined {
  if (code === 'GROUP_NOT_HOSTED') return 'group_not_hosted';
  if (code === 'REPLICA_FAILED') return 'replica_failed';
  return undefined;
}
