/**
 * The leader's view of one follower: how far its log matches, what to send next, and in which
 * replication state the follower is.
 *
 * - probe: the leader does not know where the logs match; it sends one MsgApp at a time and waits
 *   for the answer (or a heartbeat response) before sending again, backing off on rejections.
 * - replicate: the logs match up to `match`; the leader streams entries optimistically, advancing
 *   `next` on send, limited by the inflight window.
 * - snapshot: the entries the follower needs are compacted; a snapshot is in flight and nothing
 *   else is sent until it is reported.
 */
import { fail } from './errors.js';
import type { Inflights } from './inflights.js';
import type { ProgressState, ProgressStatus } from './types.js';

export class Progress {
  /** The highest index known to be replicated on the follower. */
  match: number;
  /** The index of the next entry to send. Invariant: match < next. */
  next: number;
  state: ProgressState = 'probe';
  /** In snapshot state: the index of the snapshot in flight. */
  pendingSnapshot = 0;
  /**
   * Whether the follower was heard from since the last CheckQuorum round. A new follower counts as
   * active so that it can be sent a snapshot at once.
   */
  recentActive: boolean;
  /** In probe state: whether a probe is in flight, which pauses sending until an answer. */
  probeSent = false;
  inflights: Inflights;
  isLearner: boolean;

  constructor(options: {
    next: number;
    match?: number;
    inflights: Inflights;
    isLearner: boolean;
    recentActive?: boolean;
  }) {
    this.next = options.next;
    this.match = options.match ?? 0;
    this.inflights = options.inflights;
    this.isLearner = options.isLearner;
    this.recentActive = options.recentActive ?? false;
  }

  /** A copy for a configuration change, which builds the new progress map on copies. */
  clone(): Progress {
    const copy = new Progress({
      next: this.next,
      match: this.match,
      inflights: this.inflights.clone(),
      isLearner: this.isLearner,
      recentActive: this.recentActive,
    });
    copy.state = this.state;
    copy.pendingSnapshot = this.pendingSnapshot;
    copy.probeSent = this.probeSent;
    return copy;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /**
   * Enters probe state. After a snapshot the follower is known to hold at least the snapshot, so
   * probing starts after it.
   */
  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /**
   * Records a MsgApp just sent with `entryCount` entries starting at `nextIndex`. In replicate
   * state `next` advances optimistically (pipelining); in probe state sending pauses until the
   * follower answers.
   */
  updateOnEntriesSend(entryCount: number, bytes: number, nextIndex: number): void {
    switch (this.state) {
      case 'replicate':
        if (entryCount > 0) {
          const last = nextIndex + entryCount - 1;
          this.optimisticUpdate(last);
          this.inflights.add(last, bytes);
        }
        break;
      case 'probe':
        this.probeSent = true;
        break;
      case 'snapshot':
        throw new Error(`raft: sending append in unhandled state ${this.state}`);
    }
  }

  /**
   * Records an acknowledgement of `index`. Returns false if it was stale (an older ack arriving
   * late). It also unpauses probing, since the follower answered.
   */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  optimisticUpdate(index: number): void {
    this.next = index + 1;
  }

  /**
   * Handles a rejection of the MsgApp at `rejected`, where the follower hints that its log may
   * match up to `matchHint`. Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      // In replicate state a rejection at or below match is a stale duplicate.
      if (rejected <= this.match) {
        return false;
      }
      // Go back to the last known match; the caller switches to probe state.
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the answer to the probe in flight (at next - 1) counts.
    if (this.next - 1 !== rejected) {
      return false;
    }
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader must not send MsgApp to this follower right now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  toStatus(): ProgressStatus {
    if (this.match >= this.next) fail(`progress invariant match(${this.match}) < next(${this.next})`);
    return {
      match: this.match,
      next: this.next,
      state: this.state,
      isLearner: this.isLearner,
      recentActive: this.recentActive,
      paused: this.isPaused(),
      inflightMessages: this.inflights.count,
      inflightBytes: this.inflights.bytes,
      pendingSnapshot: this.pendingSnapshot,
    };
  }

  /** A compact description for transcripts, e.g. `StateReplicate match=5 next=6`. */
  toString(): string {
    let text = `${this.state} match=${this.match} next=${this.next}`;
    if (this.isLearner) text += ' learner';
    if (this.isPaused()) text += ' paused';
    if (this.pendingSnapshot > 0) text += ` pendingSnap=${this.pendingSnapshot}`;
    if (!this.recentActive) text += ' inactive';
    if (this.inflights.count > 0) text += ` inflight=${this.inflights.count}`;
    if (this.inflights.full()) text += '[full]';
    return text;
  }
}
