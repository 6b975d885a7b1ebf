import { ImpulseError } from '@impulse/common';
import { RaftError } from '../raft/index.js';
import type { AppliedEntry } from '../state-machine/index.js';
import type { ReplicaMetrics } from './metrics.js';
import type { Scheduler } from './scheduler.js';
import { fulfil, settle, type Waiter } from './waiter.js';

export interface ProposalTrackerOptions {
  readonly groupId: string;
  /** How long a proposal may wait for its entry to apply. */
  readonly proposalTimeoutMs: number;
  /** Commands proposed at most per round (one Raft append, one fsync). */
  readonly proposalBatchMax: number;
  readonly scheduler: Scheduler;
  readonly metrics: Pick<ReplicaMetrics, 'proposalsFailed' | 'proposalsBatched'>;
  /** Hands a batch to the core; throws the core's `RaftError` when it refuses the batch. */
  readonly proposeBatch: (batch: Uint8Array[]) => void;
  /** The answer to proposals the core refused because this replica no longer leads. */
  readonly notLeader: () => ImpulseError;
}

/** An encoded command waiting for the end of the round, with its request id (latin1). */
interface QueuedCommand {
  readonly idKey: string;
  readonly data: Uint8Array;
}

/**
 * Client writes between their arrival and the application of their entry. Writes of one round are
 * proposed together at its end (one Raft append, so one fsync); each waits, by its request id,
 * until an entry with that id applies here, and a retry of a request still in flight waits with
 * the first one instead of proposing it again.
 */
export class ProposalTracker {
  /** Proposals of this round, proposed together at the end of it. */
  private queue: QueuedCommand[] = [];
  private flushScheduled = false;
  /** Proposals waiting for their entry to apply, by request id (latin1); resolved with its index. */
  private readonly waiting = new Map<string, Waiter<number>[]>();

  constructor(private readonly options: ProposalTrackerOptions) {}

  /** Writes waiting for their entry (a request retried while in flight counts once). */
  get pendingCount(): number {
    return this.waiting.size;
  }

  /**
   * Proposes the encoded command `data` under `requestId`, and resolves with its entry's index
   * once it applied here; rejects with COMMIT_TIMEOUT when it did not in time (it may still apply).
   */
  propose(requestId: Uint8Array, data: Uint8Array): Promise<number> {
    const idKey = Buffer.from(requestId).toString('latin1');
    return new Promise<number>((resolve, reject) => {
      const waiter: Waiter<number> = {
        resolve,
        reject,
        timer: this.options.scheduler.setTimeout(() => {
          this.removeWaiter(idKey, waiter);
          this.options.metrics.proposalsFailed.inc({ reason: 'timeout' });
          reject(
            new ImpulseError(
              'COMMIT_TIMEOUT',
              `the write did not apply within ${this.options.proposalTimeoutMs} ms`,
              { details: { group: this.options.groupId } },
            ),
          );
        }, this.options.proposalTimeoutMs),
      };
      const waiters = this.waiting.get(idKey);
      if (waiters !== undefined) {
        // The same request is already in flight (a client retried while it waited): wait with it.
        waiters.push(waiter);
        return;
      }
      this.waiting.set(idKey, [waiter]);
      this.queue.push({ idKey, data });
      if (this.queue.length >= this.options.proposalBatchMax) this.flush();
      else this.scheduleFlush();
    });
  }

  /** Proposes this round's writes now (the core takes them in one append). */
  flush(): void {
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    try {
      this.options.proposeBatch(batch.map((command) => command.data));
      this.options.metrics.proposalsBatched.observe(batch.length);
    } catch (error) {
      // Dropped before it entered the log: certainly not applied, so the client may go elsewhere.
      const code = error instanceof RaftError ? error.code : 'unknown';
      this.options.metrics.proposalsFailed.inc({ reason: code }, batch.length);
      const failure =
        code === 'RAFT_UNCOMMITTED_LIMIT'
          ? new ImpulseError('TOO_MANY_REQUESTS', 'the group is overloaded')
          : this.options.notLeader();
      for (const command of batch) this.rejectWaiters(command.idKey, failure);
    }
  }

  /** An entry applied: the writes waiting for its request id get its index. */
  resolveApplied(result: AppliedEntry): void {
    if (result.requestId === undefined) return;
    const idKey = result.requestId.toString('latin1');
    const waiters = this.waiting.get(idKey);
    if (waiters === undefined) return;
    this.waiting.delete(idKey);
    for (const waiter of waiters) fulfil(waiter, result.index);
  }

  /** Answers every waiting write with `error`, and drops the writes not yet proposed. */
  failAll(error: Error): void {
    for (const waiters of this.waiting.values()) for (const waiter of waiters) settle(waiter, error);
    this.waiting.clear();
    this.queue = [];
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.options.scheduler.setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private removeWaiter(idKey: string, waiter: Waiter<number>): void {
    const waiters = this.waiting.get(idKey);
    if (waiters === undefined) return;
    const remaining = waiters.filter((candidate) => candidate !== waiter);
    if (remaining.length === 0) this.waiting.delete(idKey);
    else this.waiting.set(idKey, remaining);
  }

  private rejectWaiters(idKey: string, error: Error): void {
    const waiters = this.waiting.get(idKey) ?? [];
    this.waiting.delete(idKey);
    for (const waiter of waiters) settle(waiter, error);
  }
}
