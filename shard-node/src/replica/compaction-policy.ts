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
 */
export class CompactionPolicy {
  private lastSnapshotIndex: number;
  /** Memory engine: the image being written, or written and not yet compacted behind. */
  private memoryImage: PendingImage | undefined;

  constructor(private readonly options: CompactionPolicyOptions) {
    this.lastSnapshotIndex = options.stateMachine.appliedIndex;
  }

  /** A snapshot replaced the state machine at `index`: the next compaction counts from there. */
  noteSnapshot(index: number): void {
    this.lastSnapshotIndex = index;
  }

  /** After a Ready: compacts when enough entries applied since the last snapshot. */
  async maybeCompact(): Promise<void> {
    if (this.options.memoryEngine) return this.maybeCompactBehindImage();
    const { stateMachine, logStore } = this.options;
    const applied = stateMachine.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.options.snapshotEntries) return;
    const compactIndex = applied - this.options.snapshotCatchUpEntries;
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
   * The memory engine's durable state is its image, a copy of the whole state: seconds at a million
   * keys, longer than an election timeout. So the image is written in the background from a
   * snapshot taken here (copy-on-write, at once), and a later Ready compacts the log behind it once
   * it is durable; until then the log keeps everything after the previous image.
   */
  private async maybeCompactBehindImage(): Promise<void> {
    const { stateMachine, logStore } = this.options;
    const image = this.memoryImage;
    if (image !== undefined) {
      if (image.state === 'writing') return;
      this.memoryImage = undefined;
      // A failed write was logged; the next one, snapshotEntries later, tries again.
      if (image.state === 'failed') return;
      const { index, confState } = image.metadata;
      // A snapshot installed from the leader meanwhile may have moved the log past this image.
      if (index <= logStore.snapshot().metadata.index) return;
      await logStore.createSnapshot(index, confState);
      const compactIndex = index - this.options.snapshotCatchUpEntries;
      if (compactIndex > logStore.firstIndex()) await logStore.compact(compactIndex);
      this.options.logger.debug(
        { imageIndex: index, compactIndex },
        'replica: log compacted behind the image',
      );
      return;
    }
    const applied = stateMachine.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.options.snapshotEntries) return;
    this.lastSnapshotIndex = applied;
    if (applied - this.options.snapshotCatchUpEntries <= logStore.firstIndex()) return;
    const snapshot = await stateMachine.openSnapshot();
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
