/**
 * Simulated time for the node simulator. One `SimTime` orders every timer and immediate of every
 * simulated node; each node incarnation sees it through a `NodeClock`, the `Scheduler` its
 * replicas are given. Nothing here reads a real clock: a run is a function of its seed.
 *
 * A paused node's callbacks that come due wait until it resumes (a stopped process runs nothing,
 * and its timers fire late); a crashed incarnation's callbacks never run again.
 */
import type { Scheduler, Timer } from '../../replica/index.js';

/** The bound on callbacks queued at once; the simulator fails loudly rather than grow without limit. */
const queuedCallbacksMax = 500_000;
/** Immediates run at most this many rounds in a row before time must move (a livelock guard). */
const immediateRoundsMax = 100_000;

interface Scheduled {
  readonly atMs: number;
  readonly sequence: number;
  readonly owner: NodeClock;
  readonly callback: () => void;
  cancelled: boolean;
}

export class SimTime {
  nowMs = 0;
  private readonly timers: Scheduled[] = [];
  private immediates: Scheduled[] = [];
  private sequence = 0;
  /** Errors thrown by callbacks: each one is a bug the run reports. */
  readonly errors: unknown[] = [];

  /** Queues `callback` for `owner` at `atMs`. */
  schedule(owner: NodeClock, atMs: number, callback: () => void): Scheduled {
    if (this.timers.length >= queuedCallbacksMax) throw new Error('sim: too many timers queued');
    const item: Scheduled = { atMs, sequence: this.sequence++, owner, callback, cancelled: false };
    heapPush(this.timers, item);
    return item;
  }

  immediate(owner: NodeClock, callback: () => void): void {
    if (this.immediates.length >= queuedCallbacksMax) throw new Error('sim: too many immediates queued');
    this.immediates.push({ atMs: this.nowMs, sequence: this.sequence++, owner, callback, cancelled: false });
  }

  /**
   * Runs every immediate, and every promise continuation they cause, until none is left. Each
   * round awaits one real `setImmediate`, which lets the microtask queue drain: the simulated
   * storage and network answer through promises only, so after it nothing is in flight.
   */
  async settle(): Promise<void> {
    for (let round = 0; ; round++) {
      await drainMicrotasks();
      if (this.immediates.length === 0) return;
      if (round >= immediateRoundsMax) throw new Error('sim: immediates never stop (livelock)');
      const batch = this.immediates;
      this.immediates = [];
      for (const item of batch) this.run(item);
    }
  }

  /** Runs everything due up to `untilMs`, in time order, then sets the clock to `untilMs`. */
  async runUntil(untilMs: number): Promise<void> {
    await this.settle();
    for (;;) {
      const next = this.timers[0];
      if (next === undefined || next.atMs > untilMs) break;
      heapPop(this.timers);
      this.nowMs = Math.max(this.nowMs, next.atMs);
      this.run(next);
      // Every timer due at the same moment runs before the continuations settle, as in one turn
      // of a real event loop.
      if (this.timers[0]?.atMs !== next.atMs) await this.settle();
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
    await this.settle();
  }

  private run(item: Scheduled): void {
    if (item.cancelled) return;
    const owner = item.owner;
    if (owner.dead) return;
    if (owner.paused) {
      owner.held.push(item.callback);
      return;
    }
    try {
      item.callback();
    } catch (error) {
      this.errors.push(error);
    }
  }
}

/** A node incarnation's view of simulated time: the `Scheduler` its replicas run on. */
export class NodeClock implements Scheduler {
  paused = false;
  dead = false;
  /** Callbacks that came due while paused, in order. */
  readonly held: (() => void)[] = [];

  constructor(
    private readonly time: SimTime,
    /** Wall-clock milliseconds at simulated time 0 (differs per incarnation, as a real clock would). */
    private readonly epochMs: number,
  ) {}

  nowMs(): number {
    return this.time.nowMs;
  }

  wallClockMs(): number {
    return this.epochMs + this.time.nowMs;
  }

  setTimeout(callback: () => void, delayMs: number): Timer {
    const item = this.time.schedule(this, this.time.nowMs + Math.max(0, delayMs), callback);
    return { cancel: () => (item.cancelled = true) };
  }

  setInterval(callback: () => void, intervalMs: number): Timer {
    let current: Scheduled;
    const period = Math.max(1, intervalMs);
    const arm = (): void => {
      current = this.time.schedule(this, this.time.nowMs + period, () => {
        arm();
        callback();
      });
    };
    arm();
    return { cancel: () => (current.cancelled = true) };
  }

  setImmediate(callback: () => void): void {
    this.time.immediate(this, callback);
  }

  /** Resumes a paused incarnation: what came due meanwhile runs now, in order. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held.splice(0);
    for (const callback of held) this.setImmediate(callback);
  }
}

function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.sequence < b.sequence);
}

function heapPush(heap: Scheduled[], item: Scheduled): void {
  heap.push(item);
  let index = heap.length - 1;
  while (index > 0) {
    const parent = (index - 1) >> 1;
    if (!before(heap[index] as Scheduled, heap[parent] as Scheduled)) break;
    [heap[index], heap[parent]] = [heap[parent] as Scheduled, heap[index] as Scheduled];
    index = parent;
  }
}

function heapPop(heap: Scheduled[]): Scheduled | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length === 0 || last === undefined) return top;
  heap[0] = last;
  let index = 0;
  for (;;) {
    const left = 2 * index + 1;
    const right = left + 1;
    let smallest = index;
    if (left < heap.length && before(heap[left] as Scheduled, heap[smallest] as Scheduled)) smallest = left;
    if (right < heap.length && before(heap[right] as Scheduled, heap[smallest] as Scheduled))
      smallest = right;
    if (smallest === index) break;
    [heap[index], heap[smallest]] = [heap[smallest] as Scheduled, heap[index] as Scheduled];
    index = smallest;
  }
  return top;
}
