/**
 * Group commit across groups: the writes queued during one event-loop round are flushed together
 * (one buffer, at most one datasync), after the round. While a flush is in progress the next batch
 * collects; it is flushed when that one ends, so a disk that syncs slowly gets larger batches
 * rather than a longer queue.
 *
 * The pending batch is bounded by `pendingBytesMax`: a write that does not fit waits (in call
 * order, behind any write already waiting) until the flush in progress takes the pending batch.
 * Its caller's promise is what waits, so the memory held is bounded by the callers, each of which
 * awaits its write (a replica's loop awaits each save before its next Ready).
 */
import { assert } from './errors.js';

/** What the queue needs to know of a write. */
export interface QueuedWrite {
  readonly bytes: number;
}

export interface GroupCommitOptions<W extends QueuedWrite> {
  readonly pendingBytesMax: number;
  /** Runs a function after the current round (`setImmediate`). */
  readonly schedule: (run: () => void) => void;
  /** Writes a batch, in order; the batch's writes settle with its outcome. */
  readonly flush: (writes: readonly W[]) => Promise<void>;
  /** A write waited for room (reported each time). */
  readonly onBackpressure: (pendingBytes: number) => void;
}

interface Waiter<W> {
  readonly write: W;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class GroupCommitQueue<W extends QueuedWrite> {
  /** Writes for the next flush, in call order. */
  private pending: Waiter<W>[] = [];
  private pendingBytes = 0;
  /** Writes waiting for room in `pending`, in call order. */
  private readonly waiting: Waiter<W>[] = [];
  private flushScheduled = false;
  private flushing = false;
  /** Resolved when nothing is pending, waiting or being flushed. */
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: GroupCommitOptions<W>) {}

  /** Queues `write` for the next flush; settles when the flush that carries it settles. */
  enqueue(write: W): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter = { write, resolve, reject };
      if (this.waiting.length === 0 && this.fits(write)) {
        this.admit(waiter);
      } else {
        this.waiting.push(waiter);
        this.options.onBackpressure(this.pendingBytes);
      }
      this.scheduleFlush();
    });
  }

  /** Settles once every write queued so far has been flushed (or has failed). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return !this.flushing && this.pending.length === 0 && this.waiting.length === 0;
  }

  /** A write fits when nothing is pending (so that a write over the limit still goes, alone) or it stays under the limit. */
  private fits(write: W): boolean {
    return this.pending.length === 0 || this.pendingBytes + write.bytes <= this.options.pendingBytesMax;
  }

  private admit(waiter: Waiter<W>): void {
    this.pending.push(waiter);
    this.pendingBytes += waiter.write.bytes;
  }

  private scheduleFlush(): void {
    if (this.flushing || this.flushScheduled || this.pending.length === 0) return;
    this.flushScheduled = true;
    this.options.schedule(() => {
      this.flushScheduled = false;
      void this.runFlush();
    });
  }

  private async runFlush(): Promise<void> {
    assert(!this.flushing, 'one flush at a time');
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.flushing = true;
    // The waiting writes take the room the flush just freed, in call order.
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.write)) {
      this.admit(this.waiting.shift()!);
    }
    try {
      await this.options.flush(batch.map((waiter) => waiter.write));
      for (const waiter of batch) waiter.resolve();
    } catch (error) {
      for (const waiter of batch) waiter.reject(error);
    } finally {
      this.flushing = false;
      this.scheduleFlush();
      if (this.isIdle()) {
        const idleWaiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const resolve of idleWaiters) resolve();
      }
    }
  }
}
