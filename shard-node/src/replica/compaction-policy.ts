import type { Logger } from '@impulse/common';
import type { SnapshotMetadata } from '../raft/index.js';
import type { ReplicaLog } from '../raft-log/index.js';
import { StorageFault, type ReplicaStateMachine } from '../state-machine/index.js';

export interface CompactionPolicyOptions {
  readonly logger: Logger;
  readonly stateMachine: ReplicaStateMachine;
  readonly logStore: ReplicaLog;
  /** The memory engine's durable state is an image written in the background (see below). */
  readonly memoryEngine: boolean;
  /** Applied entries between two state machine snapshots (after which the log is compacted). */
  readonly snapshotEntries: number;
  /** Entries kept in the log behind a snapshot, so a slow follower catches up without one. */
  readonly snapshotCatchUpEntries: number;
  readonly onStorageFault: (fault: StorageFault) => void;
  /**
   * The highest committed index the core has handed to the host (`EntryApplier.handedOutIndex`).
   * After a start the core hands out again the entries after the log's snapshot, which the state
   * machine may already hold (it skips them, and follows their membership changes): until the
   * core has passed the state machine's applied index, it still reads those entries from the log,
   * so nothing is compacted.
   */
  readonly handedOutIndex: () => number;
  /**
   * How far a compaction through the index given may go (`SnapshotSender.compactionLimit`): not
   * as far while a follower sent a snapshot has yet to catch up from it, since it continues from
   * the entries after the snapshot.
   */
  readonly compactionLimit: (compactIndex: number) => number;
}

/**
 * How a compaction asked for out of turn (`requestCompaction`) ended:
 * - `compacted`: the log no longer holds any entry at or below the index asked;
 * - `behind`: the state machine has not applied that index, so the log must keep it (a follower
 *   that lags, a leader whose entries do not commit, or entries a new leader replaced that ran
 *   past the log it has now);
 * - `failed`: the state machine could not be made durable (a storage fault, a failed image
 *   write), so the log keeps everything;
 * - `stopped`: the replica stopped (or failed) first.
 */
export type RequestedCompactionOutcome = 'compacted' | 'behind' | 'failed' | 'stopped';

/** A compaction asked for out of turn, waiting for the Ready loop. */
interface RequestedCompaction {
  /** The highest index asked for by any caller still waiting. */
  throughIndex: number;
  readonly waiters: ((outcome: RequestedCompactionOutcome) => void)[];
}

/** Memory engine: an image of the state machine written in the background. */
interface PendingImage {
  readonly metadata: SnapshotMetadata;
  state: 'writing' | 'written' | 'failed';
}

/**
 * When the log may drop what the state machine holds: every `snapshotEntries` applied entries, the
 * state machine is made durable first (the engine's own sync), then the log records a snapshot at
 * the applied index and drops the entries behind it, but for `snapshotCatchUpEntries`. The order is
 * what keeps an acknowledged write through a power cut: compacting before the engine is durable
 * would delete the only durable copy of its tail.
 *
 * Not while a follower sent a snapshot has yet to catch up from it (`compactionLimit`): it
 * continues from the entries after the snapshot, and would need another snapshot as soon as it
 * installed this one. A compaction held back is looked at again after every Ready (not
 * `snapshotEntries` later), so that it runs once the follower has caught up.
 *
 * A host may also ask for a compaction through a given index out of turn (`requestCompaction`):
 * the node does, for a group that keeps the node log's oldest segments (`node/log-purge.ts`). It
 * keeps the same order, never drops an entry the state machine has not applied, and runs in the
 * Ready loop between two Readys (`maybeCompactRequested`), so that it never interleaves with a
 * Ready's writes to the log.
 */
export class CompactionPolicy {
  private lastSnapshotIndex: number;
  /** Memory engine: the image being written, or written and not yet compacted behind. */
  private memoryImage: PendingImage | undefined;
  private requested: RequestedCompaction | undefined;

  constructor(private readonly options: CompactionPolicyOptions) {
    this.lastSnapshotIndex = options.stateMachine.appliedIndex;
  }

  /** A snapshot replaced the state machine at `index`: the next compaction counts from there. */
  noteSnapshot(index: number): void {
    this.lastSnapshotIndex = index;
  }

  /** After a Ready: compacts when enough entries applied since the last snapshot. */
  async maybeCompact(): Promise<void> {
    if (this.coreReplaying()) return;
    if (this.options.memoryEngine) return this.maybeCompactBehindImage();
    const { stateMachine, logStore } = this.options;
    const applied = stateMachine.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.options.snapshotEntries) return;
    const compactIndex = applied - this.options.snapshotCatchUpEntries;
    // Held back while a follower catches up from a snapshot: looked at again after the next Ready.
    if (this.options.compactionLimit(compactIndex) < compactIndex) return;
    this.lastSnapshotIndex = applied;
    if (compactIndex <= logStore.firstIndex()) return;
    try {
      await stateMachine.sync();
    } catch (error) {
      if (!(error instanceof StorageFault)) throw error;
      this.options.onStorageFault(error);
      return;
    }
    await logStore.createSnapshot(applied, stateMachine.confState);
    await logStore.compact(compactIndex);
    this.options.logger.debug({ applied, compactIndex }, 'replica: log compacted');
  }

  /**
   * Asks for the log to be compacted through at least `throughIndex`, early: the state machine is
   * made durable and snapshotted at the applied index, and the log keeps `snapshotCatchUpEntries`
   * behind it only where that keeps nothing at or below `throughIndex`. The Ready loop runs it
   * (`maybeCompactRequested`); the promise says how it ended and never rejects. Requests that
   * overlap are served together, through the highest index asked.
   */
  requestCompaction(throughIndex: number): Promise<RequestedCompactionOutcome> {
    return new Promise((resolve) => {
      const requested = this.requested;
      if (requested === undefined) this.requested = { throughIndex, waiters: [resolve] };
      else {
        requested.throughIndex = Math.max(requested.throughIndex, throughIndex);
        requested.waiters.push(resolve);
      }
    });
  }

  /** Answers the requested compaction, if any, without compacting (the replica stops, or is faulted). */
  settleRequested(outcome: RequestedCompactionOutcome): void {
    const requested = this.requested;
    this.requested = undefined;
    for (const resolve of requested?.waiters ?? []) resolve(outcome);
  }

  /**
   * Between two Readys: runs the requested compaction, if any. On the memory engine it may have to
   * wait for an image (written in the background, as for `maybeCompact`), and answers once the
   * log is compacted behind it; the Ready loop looks again on every tick.
   */
  async maybeCompactRequested(): Promise<void> {
    const requested = this.requested;
    if (requested === undefined || this.coreReplaying()) return;
    const { stateMachine, logStore } = this.options;
    if (this.options.memoryEngine) return this.maybeCompactRequestedBehindImage(requested);
    const applied = stateMachine.appliedIndex;
    if (applied < requested.throughIndex) return this.settleRequested('behind');
    const compactIndex = this.requestedCompactIndex(requested, applied);
    if (compactIndex < logStore.firstIndex()) return this.settleRequested('compacted');
    try {
      await stateMachine.sync();
    } catch (error) {
      if (!(error instanceof StorageFault)) throw error;
      this.options.onStorageFault(error);
      return this.settleRequested('failed');
    }
    if (applied > logStore.snapshot().metadata.index)
      await logStore.createSnapshot(applied, stateMachine.confState);
    await logStore.compact(compactIndex);
    this.lastSnapshotIndex = applied;
    this.options.logger.debug(
      { applied, compactIndex, requestedThroughIndex: requested.throughIndex },
      'replica: log compacted on request',
    );
    this.settleRequested('compacted');
  }

  /** Whether the core has yet to hand out entries the state machine holds (see `handedOutIndex`). */
  private coreReplaying(): boolean {
    return this.options.handedOutIndex() < this.options.stateMachine.appliedIndex;
  }

  /**
   * Where a requested compaction of a log snapshotted at `snapshotIndex` stops: through the index
   * asked, or further to keep only `snapshotCatchUpEntries` behind the snapshot as far as
   * `compactionLimit` lets it. Never past the snapshot. The index asked wins over a follower
   * catching up from a snapshot: the node asks to free its disk.
   */
  private requestedCompactIndex(requested: RequestedCompaction, snapshotIndex: number): number {
    return Math.min(snapshotIndex, Math.max(requested.throughIndex, this.catchUpCompactIndex(snapshotIndex)));
  }

  /**
   * Through where the log is compacted behind a snapshot at `snapshotIndex`: keeping
   * `snapshotCatchUpEntries` behind it, and what a follower catching up from a snapshot needs.
   */
  private catchUpCompactIndex(snapshotIndex: number): number {
    return this.options.compactionLimit(snapshotIndex - this.options.snapshotCatchUpEntries);
  }

  /**
   * The memory engine's durable state is its image, a copy of the whole state: seconds at a million
   * keys, longer than an election timeout. So the image is written in the background from a
   * snapshot taken here (copy-on-write, at once), and a later Ready compacts the log behind it once
   * it is durable; until then the log keeps everything after the previous image.
   */
  private async maybeCompactBehindImage(): Promise<void> {
    const { stateMachine, logStore } = this.options;
    if (this.memoryImage !== undefined) return this.maybeFinishImage();
    const applied = stateMachine.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.options.snapshotEntries) return;
    this.lastSnapshotIndex = applied;
    if (applied - this.options.snapshotCatchUpEntries <= logStore.firstIndex()) return;
    await this.startImage();
  }

  /**
   * Memory engine, between two Readys: compacts behind an image that covers the request, the
   * log's own snapshot (an image already durable) or one written now in the background.
   */
  private async maybeCompactRequestedBehindImage(requested: RequestedCompaction): Promise<void> {
    const { stateMachine, logStore } = this.options;
    if (this.memoryImage !== undefined) {
      // An image in flight may cover the request; the next one is started once it is done.
      if (this.memoryImage.state === 'writing') return;
      await this.maybeFinishImage();
      if (this.requested !== requested) return;
    }
    const applied = stateMachine.appliedIndex;
    if (applied < requested.throughIndex) return this.settleRequested('behind');
    // The log's snapshot is always one the state machine made durable (an image behind which it
    // was compacted, or a snapshot installed after its image was written).
    const snapshotIndex = logStore.snapshot().metadata.index;
    if (snapshotIndex >= requested.throughIndex) {
      const compactIndex = this.requestedCompactIndex(requested, snapshotIndex);
      if (compactIndex >= logStore.firstIndex()) await logStore.compact(compactIndex);
      return this.settleRequested('compacted');
    }
    this.lastSnapshotIndex = applied;
    await this.startImage();
  }

  /**
   * Memory engine: once the image in flight is durable, the log records it as its snapshot and is
   * compacted behind it, through a requested index it covers too.
   */
  private async maybeFinishImage(): Promise<void> {
    const { logStore } = this.options;
    const image = this.memoryImage;
    if (image === undefined || image.state === 'writing') return;
    this.memoryImage = undefined;
    // A failed write was logged; the next one, snapshotEntries later, tries again.
    if (image.state === 'failed') return this.settleRequested('failed');
    const { index, confState } = image.metadata;
    // A snapshot installed from the leader meanwhile may have moved the log past this image.
    if (index <= logStore.snapshot().metadata.index) return;
    await logStore.createSnapshot(index, confState);
    const requested = this.requested;
    const covers = requested !== undefined && requested.throughIndex <= index;
    if (covers) {
      const compactIndex = this.requestedCompactIndex(requested, index);
      if (compactIndex >= logStore.firstIndex()) await logStore.compact(compactIndex);
    } else {
      const compactIndex = this.catchUpCompactIndex(index);
      if (compactIndex > logStore.firstIndex()) await logStore.compact(compactIndex);
    }
    this.options.logger.debug(
      { imageIndex: index, firstIndex: logStore.firstIndex(), requested: covers },
      'replica: log compacted behind the image',
    );
    if (covers) this.settleRequested('compacted');
  }

  /** Memory engine: starts writing an image of the state machine as it is now, in the background. */
  private async startImage(): Promise<void> {
    const { stateMachine } = this.options;
    // A state that cannot be read cannot be made durable: a storage fault, not a failed loop.
    const snapshot = await stateMachine.openSnapshot().catch((error: unknown) => {
      if (!(error instanceof StorageFault)) throw error;
      this.options.onStorageFault(error);
      return undefined;
    });
    if (snapshot === undefined) return this.settleRequested('failed');
    const pending: PendingImage = { metadata: snapshot.metadata, state: 'writing' };
    this.memoryImage = pending;
    stateMachine
      .writeImage(snapshot)
      .then(
        () => {
          pending.state = 'written';
        },
        (error: unknown) => {
          pending.state = 'failed';
          if (error instanceof StorageFault) this.options.onStorageFault(error);
          this.options.logger.warn(
            { index: pending.metadata.index, err: (error as Error).message },
            'replica: writing the memory-engine image failed; the log is kept',
          );
        },
      )
      .finally(() => void snapshot.close().catch(() => undefined));
  }
}
