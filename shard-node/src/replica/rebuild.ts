import type { Logger } from '@impulse/common';
import type { ConfState, Entry, Message, NodeId, SnapshotMetadata } from '../raft/index.js';
import type { ReplicaLog } from '../raft-log/index.js';
import { StorageFault, type MemberRecords, type ReplicaStateMachine } from '../state-machine/index.js';
import type { Scheduler } from './scheduler.js';
import type { IncomingSnapshot } from './snapshot-receiver.js';

/** The first pause before a faulted replica asks its leader for a rebuild again; it doubles. */
export const rebuildRetryMinMs = 2_000;
/** The longest pause between two rebuild requests. */
export const rebuildRetryMaxMs = 60_000;

export interface RebuildOptions {
  readonly selfId: NodeId;
  readonly logger: Logger;
  readonly scheduler: Scheduler;
  readonly stateMachine: ReplicaStateMachine;
  readonly logStore: ReplicaLog;
  /** Sends the rebuild request (a peer message) to the leader. */
  readonly send: (message: Message) => void;
  /** Has the Ready loop run, which installs a stream that arrived whole (`complete`). */
  readonly scheduleReady: () => void;
}

/** What the rebuild needs to know of the replica when it acts. */
export interface RebuildView {
  readonly faulted: boolean;
  readonly leaderId: NodeId;
  readonly leaderReplicaId: string | null;
  readonly term: number;
}

/**
 * Rebuilding a faulted replica's state machine from its leader's snapshot (docs/replication.md).
 * While faulted, the replica asks the leader for a stream of its state machine, again after a
 * pause that doubles up to `rebuildRetryMaxMs` while no rebuild completes (a leader that is gone,
 * a stream that failed). Only the state machine is rebuilt: the Raft log is whole and keeps the
 * replica's votes and acknowledged entries, so the replica keeps its id.
 */
export class Rebuild {
  /** The rebuild stream last asked of the leader. */
  private snapshotId: string | undefined;
  private nextRequestAtMs = 0;
  private retryMs = rebuildRetryMinMs;
  private counter = 0;
  /** A rebuild stream received whole, for the Ready loop to install. */
  private toInstall: IncomingSnapshot | undefined;

  constructor(private readonly options: RebuildOptions) {}

  /** Whether a stream waits for the Ready loop (`complete`). */
  get pending(): IncomingSnapshot | undefined {
    return this.toInstall;
  }

  /** On every tick: asks the leader for a stream when one is due. */
  maybeRequest(view: RebuildView): void {
    if (!view.faulted || this.toInstall !== undefined) return;
    const nowMs = this.options.scheduler.nowMs();
    const leaderId = view.leaderId;
    if (nowMs < this.nextRequestAtMs || leaderId === 0 || leaderId === this.options.selfId) return;
    const snapshotId = `rebuild-${this.options.selfId}-${Math.floor(this.options.scheduler.wallClockMs())}-${this.counter++}`;
    this.snapshotId = snapshotId;
    this.nextRequestAtMs = nowMs + this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, rebuildRetryMaxMs);
    this.options.logger.info(
      { leaderId, leaderReplicaId: view.leaderReplicaId, snapshotId },
      'replica: asking the leader for a snapshot to rebuild the state machine from',
    );
    this.options.send({
      type: 'MsgRebuildRequest',
      from: this.options.selfId,
      to: leaderId,
      term: view.term,
      logTerm: 0,
      index: 0,
      entries: [],
      commit: 0,
      reject: false,
      rejectHint: 0,
      context: Buffer.from(snapshotId, 'latin1'),
    });
  }

  /** A chunk of some stream arrived: a rebuild stream that is still arriving is not asked for again. */
  onChunk(snapshotId: string): void {
    if (snapshotId === this.snapshotId) this.nextRequestAtMs = this.options.scheduler.nowMs() + this.retryMs;
  }

  /** A stream arrived whole: takes it when it is the rebuild's and the replica is still faulted. */
  onComplete(incoming: IncomingSnapshot, faulted: boolean): boolean {
    if (incoming.snapshotId !== this.snapshotId || !faulted) return false;
    this.toInstall = incoming;
    this.options.scheduleReady();
    return true;
  }

  /**
   * Installs the rebuild stream into the state machine, in the Ready loop (nothing else touches the
   * state machine meanwhile). The snapshot is at index S, committed; the log must hold what comes
   * after it, so S must not be behind the log's own snapshot (else: abort and ask later, once the
   * leader applied further). The entries the core handed out past S while the replica was faulted
   * (up to `handedOutIndex`) are then applied from the log, and later ones arrive as usual (those
   * up to S are skipped). `current` gives the configuration and member directory as they are now,
   * which is what the state machine would hold after those entries. Answers the snapshot's
   * metadata when the state machine was rebuilt, `undefined` when it must be asked for again.
   */
  async complete(
    faulted: boolean,
    handedOutIndex: number,
    current: () => { confState: ConfState; memberRecords: MemberRecords },
  ): Promise<SnapshotMetadata | undefined> {
    const incoming = this.toInstall;
    if (incoming === undefined) return undefined;
    this.toInstall = undefined;
    if (!faulted) {
      await incoming.install.abort();
      return undefined;
    }
    let metadata: SnapshotMetadata;
    try {
      metadata = await incoming.install.finish();
    } catch (error) {
      await incoming.install.abort();
      this.options.logger.warn(
        { err: error },
        'replica: the rebuild snapshot was refused; asking again later',
      );
      return undefined;
    }
    const logSnapshotIndex = this.options.logStore.snapshot().metadata.index;
    if (metadata.index < logSnapshotIndex) {
      await incoming.install.abort();
      this.options.logger.warn(
        { snapshotIndex: metadata.index, logSnapshotIndex },
        "replica: the leader's snapshot is behind this replica's log; asking again later",
      );
      return undefined;
    }
    try {
      await this.options.stateMachine.install(incoming.install);
      const replay: readonly Entry[] = this.options.logStore.entries(
        metadata.index + 1,
        handedOutIndex + 1,
        Number.MAX_SAFE_INTEGER,
      );
      if (replay.length > 0) {
        const lastChange = replay.findLast((entry) => entry.type !== 'normal');
        const confStates = new Map<number, ConfState>();
        const now = current();
        if (lastChange !== undefined) confStates.set(lastChange.index, now.confState);
        await this.options.stateMachine.apply(
          replay,
          confStates,
          lastChange === undefined ? undefined : now.memberRecords,
        );
      }
    } catch (error) {
      if (!(error instanceof StorageFault)) throw error;
      this.options.logger.warn(
        { err: error },
        'replica: rebuilding failed on a storage fault; asking again later',
      );
      return undefined;
    }
    return metadata;
  }

  /** The replica serves again: the next fault starts asking afresh. */
  reset(): void {
    this.snapshotId = undefined;
    this.nextRequestAtMs = 0;
    this.retryMs = rebuildRetryMinMs;
  }
}
