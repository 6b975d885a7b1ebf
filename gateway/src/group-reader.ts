import { request as httpRequest, type Agent } from 'node:http';
import {
  ImpulseError,
  groupHeader,
  isErrorCode,
  type ErrorDetails,
  type GroupSpec,
  type Logger,
  type ReplicaSpec,
} from '@impulse/common';
import type { GatewayConfig } from './config.js';
import {
  replicaElsewhereReason,
  retryBackoffMs,
  upstreamErrorReason,
  type ErrorBodyShape,
} from './forwarder.js';
import type { LeaderCache } from './leader-cache.js';
import type { GatewayMetrics, UpstreamErrorReason } from './metrics.js';

/** One read of a group, as the scan's scatter-gather asks it. */
export interface GroupRead {
  readonly group: GroupSpec;
  /** The path and query sent to the group's leader, as is. */
  readonly path: string;
  /** `Date.now()` past which no attempt starts: the request's deadline, shared by every group. */
  readonly deadlineMs: number;
  /** Stops the read at once: the client went away, or another group of the same scan failed. */
  readonly signal: AbortSignal;
  /** The largest answer read; a larger one fails the read (the replica broke its page bound). */
  readonly bodyBytesMax: number;
}

type AttemptOutcome =
  | { readonly kind: 'answer'; readonly status: number; readonly body: Buffer }
  | { readonly kind: 'failure'; readonly reason: UpstreamErrorReason; readonly error: Error }
  | { readonly kind: 'oversized'; readonly error: ImpulseError };

/** What to do after a failed attempt: the error to answer if no retry is left, and the retry. */
interface Judgement {
  readonly failure: ImpulseError;
  readonly retry: { readonly reason: string; readonly immediately: boolean } | undefined;
}

/**
 * GETs a JSON answer from the leader of a group, for requests that gather answers from many groups
 * (scans) where the `Forwarder` pipes one group's answer to the client. It follows the Forwarder's
 * rules, with its keep-alive agent and leader cache: a `NOT_LEADER` answer updates the leader guess
 * and the read goes again (at once when the leader is named), as does one that found the replica
 * not ready, a read barrier that timed out, a refused or reset connection, or (on another replica)
 * a replica that did not answer in time; at most `retryAttemptsMax` attempts, within the deadline,
 * each attempt within `upstreamTimeout`. Reads change nothing, so retrying them is always safe.
 */
export class GroupReader {
  constructor(
    private readonly config: GatewayConfig,
    private readonly leaders: LeaderCache,
    private readonly agent: Agent,
    private readonly logger: Logger,
    private readonly metrics: GatewayMetrics,
  ) {}

  /** Resolves to the body of the group's `200` answer; rejects with the error the client should get. */
  async get(read: GroupRead): Promise<Buffer> {
    const { group, signal } = read;
    // Replicas that refused the connection during this read: all of them means the group is down.
    const refusedBy = new Set<string>();
    for (let attempts = 1; ; attempts++) {
      signal.throwIfAborted();
      const replica = this.leaders.leaderOf(group);
      const startedAtMs = performance.now();
      const outcome = await this.attempt(replica, read);
      signal.throwIfAborted();
      if (outcome.kind === 'oversized') throw outcome.error;
      if (outcome.kind === 'answer') {
        this.metrics.upstreamDurationSeconds
          .labels({ group: group.id, method: 'GET', status: String(outcome.status) })
          .observe((performance.now() - startedAtMs) / 1000);
        if (outcome.status === 200) return outcome.body;
      }
      const { failure, retry } =
        outcome.kind === 'answer'
          ? this.judgeAnswer(group, replica, outcome.status, outcome.body)
          : this.judgeFailure(group, replica, outcome.reason, outcome.error, refusedBy);
      const backoffMs = retry === undefined || retry.immediately ? 0 : retryBackoffMs(attempts);
      if (
        retry === undefined ||
        attempts >= this.config.retryAttemptsMax ||
        Date.now() + backoffMs >= read.deadlineMs
      ) {
        throw failure;
      }
      this.metrics.retries.inc({ group: group.id, reason: retry.reason });
      if (backoffMs > 0) await delay(backoffMs, signal);
    }
  }

  /** A connection that failed: move the leader guess on, and try again unless the group is down. */
  private judgeFailure(
    group: GroupSpec,
    replica: ReplicaSpec,
    reason: UpstreamErrorReason,
    error: Error,
    refusedBy: Set<string>,
  ): Judgement {
    this.metrics.upstreamErrors.inc({ group: group.id, reason });
    this.logger.debug(
      { group: group.id, replica: replica.id, reason, err: error.message },
      'scan: upstream failed',
    );
    if (reason === 'refused') refusedBy.add(replica.id);
    this.leaders.rotate(group, replica);
    const failure =
      reason === 'timeout'
        ? new ImpulseError('UPSTREAM_TIMEOUT', `shard group ${group.id} did not answer within the deadline`, {
            details: { group: group.id },
          })
        : new ImpulseError('GROUP_UNAVAILABLE', `shard group ${group.id} is unavailable (${reason})`, {
            details: { group: group.id },
          });
    // A timeout is worth another try only on another replica; a group every replica of which
    // refused the connection is down.
    const everyReplicaRefused = refusedBy.size >= group.replicas.length;
    const retryable = !everyReplicaRefused && (reason !== 'timeout' || group.replicas.length > 1);
    return { failure, retry: retryable ? { reason, immediately: false } : undefined };
  }

  /** An answer other than 200: a redirect caused by the group's own state is tried again. */
  private judgeAnswer(group: GroupSpec, replica: ReplicaSpec, status: number, body: Buffer): Judgement {
    const error = errorBodyOf(body)?.error;
    if (status === 421 && error?.code === 'NOT_LEADER') {
      const hint = error.leaderHint;
      const learned =
        typeof hint === 'string' &&
        hint !== replica.id &&
        this.leaders.learn(group.id, hint, error['leaderUrl']);
      if (!learned) this.leaders.rotate(group, replica);
      // A named leader is tried at once; without one, an election is under way: wait a little.
      return {
        failure: new ImpulseError('GROUP_UNAVAILABLE', `shard group ${group.id} has no leader`, {
          details: { group: group.id },
        }),
        retry: { reason: 'not_leader', immediately: learned },
      };
    }
    const failure = replayedError(group.id, error);
    if (status === 503 && error?.code === 'NOT_READY') {
      this.leaders.rotate(group, replica);
      return { failure, retry: { reason: 'not_ready', immediately: false } };
    }
    // A replica that found its state damaged serves nothing, and has stepped down if it led: its
    // group's other replicas serve, and one of them is (or soon is) the leader.
    if (status === 503 && error?.code === 'STORAGE_FAULT') {
      this.leaders.rotate(group, replica);
      return { failure, retry: { reason: 'storage_fault', immediately: true } };
    }
    const elsewhere = replicaElsewhereReason(error?.code);
    if (elsewhere !== undefined) {
      this.leaders.rotate(group, replica);
      return { failure, retry: { reason: elsewhere, immediately: true } };
    }
    // The leader could not confirm its leadership in time (a read barrier): ask again.
    if (status === 503 && error?.code === 'COMMIT_TIMEOUT') {
      return { failure, retry: { reason: 'commit_timeout', immediately: false } };
    }
    return { failure, retry: undefined };
  }

  /** One GET to one replica, within the attempt's share of the deadline, body read in full. */
  private attempt(replica: ReplicaSpec, read: GroupRead): Promise<AttemptOutcome> {
    return new Promise((resolve) => {
      const target = new URL(replica.url);
      const attemptTimeoutMs = Math.max(
        1,
        Math.min(this.config.upstreamTimeout, read.deadlineMs - Date.now()),
      );
      let timedOut = false;
      let settled = false;
      const upstream = httpRequest({
        agent: this.agent,
        host: target.hostname,
        port: target.port,
        method: 'GET',
        path: read.path,
        headers: { accept: 'application/json', [groupHeader]: read.group.id },
      });
      const settle = (outcome: AttemptOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        read.signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const fail = (error: Error): void =>
        settle({ kind: 'failure', reason: upstreamErrorReason(error, timedOut), error });
      const timer = setTimeout(() => {
        timedOut = true;
        upstream.destroy(new Error('upstream timeout'));
      }, attemptTimeoutMs);
      const onAbort = (): void => {
        upstream.destroy(new Error('the read was aborted'));
      };
      read.signal.addEventListener('abort', onAbort, { once: true });
      upstream.on('error', fail);
      upstream.on('response', (response) => {
        const status = response.statusCode ?? 502;
        const chunks: Buffer[] = [];
        let receivedBytes = 0;
        response.on('data', (chunk: Buffer) => {
          receivedBytes += chunk.length;
          if (receivedBytes > read.bodyBytesMax) {
            upstream.destroy();
            settle({
              kind: 'oversized',
              error: new ImpulseError(
                'INTERNAL',
                `shard group ${read.group.id} answered over ${read.bodyBytesMax} bytes`,
                { details: { group: read.group.id } },
              ),
            });
            return;
          }
          chunks.push(chunk);
        });
        response.once('error', fail);
        // A connection cut in the middle of the body (or a timeout's destroy) ends the attempt.
        response.once('close', () => {
          if (!response.complete) fail(new Error('the answer was cut off'));
        });
        response.once('end', () =>
          settle({ kind: 'answer', status, body: Buffer.concat(chunks, receivedBytes) }),
        );
      });
      if (read.signal.aborted) onAbort();
      upstream.end();
    });
  }
}

function errorBodyOf(body: Buffer): ErrorBodyShape | undefined {
  try {
    return JSON.parse(body.toString('utf8')) as ErrorBodyShape;
  } catch {
    return undefined;
  }
}

/** The error a replica answered, as the gateway's own: same code, message and details. */
function replayedError(groupId: string, error: ErrorBodyShape['error']): ImpulseError {
  if (error === undefined || !isErrorCode(error.code)) {
    return new ImpulseError('INTERNAL', `unreadable answer from shard group ${groupId}`, {
      details: { group: groupId },
    });
  }
  const details: Record<string, ErrorDetails[string]> = {};
  for (const [name, value] of Object.entries(error)) {
    if (name === 'code' || name === 'message') continue;
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) {
      details[name] = value as string | number | boolean | null;
    } else if (Array.isArray(value) && value.every((element) => typeof element === 'string')) {
      details[name] = value as string[];
    }
  }
  const message = typeof error.message === 'string' ? error.message : error.code;
  return new ImpulseError(error.code, message, { details: { ...details, group: groupId } });
}

/** Waits `ms`, or less if the signal aborts (the caller then checks the signal). */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
