import { ImpulseError } from '@impulse/common';
import type { NodeId, ReadState } from '../raft/index.js';
import type { Scheduler } from './scheduler.js';
import { fulfil, settle, type Waiter } from './waiter.js';

export interface ReadIndexBatcherOptions {
  readonly selfId: NodeId;
  /** How long a read may wait for its confirmation. */
  readonly timeoutMs: number;
  readonly scheduler: Scheduler;
  readonly isLeader: () => boolean;
  readonly notLeader: () => ImpulseError;
  /** Asks the core for a ReadIndex under `context` (a `readStates` entry answers it). */
  readonly requestReadIndex: (context: Buffer) => void;
}

/** Reads waiting for one ReadIndex round, then for the state machine to reach its index. */
interface ReadBatch {
  readonly waiters: Waiter[];
  index: number | undefined;
}

/**
 * Linearizable reads: every read of one round shares one ReadIndex request, and the core makes
 * every request of one Ready share one heartbeat round. A batch's reads are released once the
 * state machine has applied the index the core confirmed for it.
 */
export class ReadIndexBatcher {
  /** Reads of this round, sharing one ReadIndex request. */
  private batch: ReadBatch | undefined;
  /** ReadIndex requests in flight, by context (latin1). */
  private readonly inFlight = new Map<string, ReadBatch>();
  /** Reads whose index is known, waiting for the state machine to apply it. */
  private waitingForApply: ReadBatch[] = [];
  private contextCounter = 0;

  constructor(private readonly options: ReadIndexBatcherOptions) {}

  /** Resolves once this replica was confirmed leader after the call, and applied the read index. */
  barrier(): Promise<void> {
    if (!this.options.isLeader()) return Promise.reject(this.options.notLeader());
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: this.options.scheduler.setTimeout(() => {
          waiter.reject(new ImpulseError('COMMIT_TIMEOUT', 'the read could not be confirmed in time'));
        }, this.options.timeoutMs),
      };
      if (this.batch === undefined) {
        const batch: ReadBatch = { waiters: [], index: undefined };
        this.batch = batch;
        this.options.scheduler.setImmediate(() => this.request(batch));
      }
      this.batch.waiters.push(waiter);
    });
  }

  /** The core confirmed a ReadIndex: its batch waits for the state machine to apply the index. */
  handleReadState(readState: ReadState): void {
    const key = Buffer.from(readState.requestContext).toString('latin1');
    const batch = this.inFlight.get(key);
    if (batch === undefined) return;
    this.inFlight.delete(key);
    batch.index = readState.index;
    this.waitingForApply.push(batch);
  }

  /** Releases the reads whose index is at or below `appliedIndex`. */
  serveUpTo(appliedIndex: number): void {
    if (this.waitingForApply.length === 0) return;
    const waiting: ReadBatch[] = [];
    for (const batch of this.waitingForApply) {
      if ((batch.index ?? Infinity) <= appliedIndex) {
        for (const waiter of batch.waiters) fulfil(waiter, undefined);
      } else {
        waiting.push(batch);
      }
    }
    this.waitingForApply = waiting;
  }

  /** Answers every read confirmed or in flight with `error` (the reads of this round stay). */
  failAll(error: Error): void {
    for (const batch of this.inFlight.values()) for (const waiter of batch.waiters) settle(waiter, error);
    this.inFlight.clear();
    for (const batch of this.waitingForApply) for (const waiter of batch.waiters) settle(waiter, error);
    this.waitingForApply = [];
  }

  private request(batch: ReadBatch): void {
    if (this.batch === batch) this.batch = undefined;
    if (!this.options.isLeader()) {
      for (const waiter of batch.waiters) settle(waiter, this.options.notLeader());
      return;
    }
    const context = Buffer.allocUnsafe(12);
    context.writeUInt32BE(this.options.selfId, 0);
    context.writeUInt32BE(Math.floor(this.contextCounter / 2 ** 32), 4);
    context.writeUInt32BE(this.contextCounter % 2 ** 32, 8);
    this.contextCounter++;
    this.inFlight.set(context.toString('latin1'), batch);
    this.options.requestReadIndex(context);
  }
}
