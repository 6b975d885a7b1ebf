import type { Logger } from '@impulse/common';
import type { ConfState, Message, NodeId, SnapshotMetadata } from '../raft/index.js';
import { StorageFault, type ReplicaStateMachine } from '../state-machine/index.js';
import type { ReplicaMetrics } from './metrics.js';
import type { ReplicaTransport } from './replica-transport.js';
import type { Scheduler } from './scheduler.js';

export interface SnapshotSenderOptions {
  readonly selfId: NodeId;
  readonly logger: Logger;
  readonly scheduler: Scheduler;
  readonly stateMachine: ReplicaStateMachine;
  readonly transport: () => ReplicaTransport | undefined;
  readonly metrics: Pick<ReplicaMetrics, 'snapshotsSent'>;
  /**
   * Tells the core how a snapshot it asked for went, and the index of the one sent, which may be
   * newer than the one asked for (`RawNode.reportSnapshot`).
   */
  readonly reportSnapshot: (to: NodeId, succeeded: boolean, snapshotIndex?: number) => void;
  /** Whether this replica leads, and its configuration: only a leader answers rebuild requests. */
  readonly leaderConfiguration: () => ConfState | undefined;
  readonly onStorageFault: (fault: StorageFault) => void;
  /**
   * How long, once a stream is acknowledged, the log keeps the entries its follower needs to catch
   * up from it (see `compactionLimit`). Default `snapshotHoldAfterSendMs`.
   */
  readonly holdAfterSendMs?: number;
}

/**
 * How long the log keeps the entries a follower sent a snapshot needs, for it to install the
 * snapshot and catch up from it: then the hold goes whatever happened (a follower that died
 * meanwhile must not keep the leader's log from compacting for ever). etcd keeps its compaction
 * paused as long after sending a snapshot (`releaseDelayAfterSnapshot`, 30 s).
 */
export const snapshotHoldAfterSendMs = 30_000;

/**
 * How long after its stream was acknowledged a follower sent a snapshot keeps its hold without a
 * word to the leader (the core's `recentActive`, which CheckQuorum clears every election
 * timeout): a follower installs the snapshot in its Ready loop, and answers nothing meanwhile, so
 * silence is allowed this long. A follower silent past it has died or been cut off: its hold goes,
 * or a follower that caught up long ago and was then killed would keep the leader's log from
 * compacting for the rest of `snapshotHoldAfterSendMs`.
 */
export const snapshotHoldSilenceMs = 10_000;

/**
 * A follower sent a snapshot at `index`: the leader's log keeps the entries after it, and after
 * what the follower holds as it catches up, until it has (`compactionLimit`).
 */
interface SnapshotHold {
  readonly index: number;
  /** When the hold goes on its own (monotonic ms): never while the stream is going. */
  releaseAtMs: number;
  /** When a silent follower's hold goes (monotonic ms): never while the stream is going. */
  silenceAllowedUntilMs: number;
}

/** What a rebuild request's context must be: the stream's name, made by the faulted replica. */
export const rebuildSnapshotIdPattern = /^rebuild-\d{1,10}-\d{1,16}-\d{1,16}$/;

/**
 * The leader's side of snapshots. The core asks for a snapshot with a MsgSnap; the host streams its
 * state machine (a consistent engine snapshot) on a connection of its own, and only once the
 * follower holds the whole stream sends the MsgSnap, with the streamed state's own index and term
 * (never older than what the core asked for). One stream per follower at a time.
 */
export class SnapshotSender {
  private readonly sending = new Set<NodeId>();
  private readonly holds = new Map<NodeId, SnapshotHold>();
  private counter = 0;

  constructor(private readonly options: SnapshotSenderOptions) {}

  /** Answers a MsgSnap of the core. Never rejects: it runs detached. */
  async send(message: Message): Promise<void> {
    const to = message.to;
    const snapshotId = `${this.options.selfId}-${this.options.scheduler.wallClockMs()}-${this.counter++}`;
    let hold: SnapshotHold | undefined;
    const metadata = await this.stream(to, snapshotId, (opened) => {
      hold = {
        index: opened.index,
        releaseAtMs: Number.POSITIVE_INFINITY,
        silenceAllowedUntilMs: Number.POSITIVE_INFINITY,
      };
      this.holds.set(to, hold);
    });
    if (metadata === 'busy') return;
    if (hold !== undefined && this.holds.get(to) === hold) {
      if (metadata === undefined) this.holds.delete(to);
      else {
        const nowMs = this.options.scheduler.nowMs();
        hold.releaseAtMs = nowMs + this.holdAfterSendMs();
        hold.silenceAllowedUntilMs = nowMs + snapshotHoldSilenceMs;
      }
    }
    if (metadata !== undefined) {
      // The stream is acknowledged: the follower holds it, and can act on the message at once.
      this.options.transport()?.send([{ ...message, snapshot: { metadata, data: Buffer.from(snapshotId) } }]);
    }
    this.options.reportSnapshot(to, metadata !== undefined, metadata?.index);
  }

  /**
   * How far a compaction that would drop the log through `compactIndex` may go while followers
   * catch up from snapshots sent to them: never past a snapshot being streamed, nor past what a
   * follower sent one holds since (`matchOf`: what the core knows it holds; `undefined` when this
   * replica no longer leads or the follower left the configuration).
   *
   * Without it a slow follower under load never caught up: streaming and installing the snapshot
   * took longer than the leader took to apply `snapshotEntries` entries and compact its log past
   * the snapshot, so the follower's first append after it found its entries gone and needed
   * another snapshot, larger, and so on (the member-directory integration test timed out on it,
   * after 34 snapshots to the same follower). etcd pauses its log compaction while a snapshot is
   * in flight, and for 30 s after it is sent, for the same reason.
   *
   * A hold goes once its follower holds the snapshot and everything through `compactIndex` (it has
   * caught up to where the log keeps entries anyway), when this replica no longer leads or the
   * follower left, `holdAfterSendMs` after its stream was acknowledged whatever the follower
   * did (one that has not caught up by then is too slow to, and is sent a snapshot again), or once
   * the follower has been silent (`activeOf` false) past `snapshotHoldSilenceMs` after it.
   */
  compactionLimit(
    compactIndex: number,
    matchOf: (to: NodeId) => number | undefined,
    activeOf: (to: NodeId) => boolean = () => true,
  ): number {
    if (this.holds.size === 0) return compactIndex;
    let limit = compactIndex;
    const nowMs = this.options.scheduler.nowMs();
    for (const [to, hold] of this.holds) {
      const match = matchOf(to);
      const silent = nowMs >= hold.silenceAllowedUntilMs && !activeOf(to);
      if (match === undefined || nowMs >= hold.releaseAtMs || silent) {
        this.holds.delete(to);
        this.options.logger.info(
          { to, index: hold.index, match: match ?? null, silent },
          'replica: the log no longer keeps the entries a follower sent a snapshot needs (it did not catch up in time, fell silent or left, or this replica no longer leads)',
        );
        continue;
      }
      if (match >= hold.index && match >= compactIndex) {
        this.holds.delete(to);
        this.options.logger.debug(
          { to, index: hold.index, match },
          'replica: a follower caught up from its snapshot',
        );
        continue;
      }
      limit = Math.min(limit, Math.max(hold.index, match));
    }
    return limit;
  }

  /**
   * Lets go of the holds whose followers have caught up: they hold the snapshot, and the log up to
   * `caughtUpIndex()` (the leader's last index less the entries a compaction keeps anyway), so a
   * compaction would keep what they need without a hold. Called after every Ready, so that a
   * hold ends when its follower catches up rather than at the next compaction: a follower that
   * caught up, and was then killed before the log came due for compaction, kept its hold, and the
   * log uncompacted, for `snapshotHoldSilenceMs` and more. Costs nothing while no hold is held.
   */
  releaseCaughtUp(caughtUpIndex: () => number, matchOf: (to: NodeId) => number | undefined): void {
    if (this.holds.size === 0) return;
    const index = caughtUpIndex();
    for (const [to, hold] of this.holds) {
      // While it streams, the follower has not even got the snapshot.
      if (hold.releaseAtMs === Number.POSITIVE_INFINITY) continue;
      const match = matchOf(to);
      if (match === undefined || match < hold.index || match < index) continue;
      this.holds.delete(to);
      this.options.logger.debug(
        { to, index: hold.index, match },
        'replica: a follower caught up from its snapshot',
      );
    }
  }

  private holdAfterSendMs(): number {
    return this.options.holdAfterSendMs ?? snapshotHoldAfterSendMs;
  }

  /**
   * A faulted follower asks for a snapshot to rebuild its state machine from (`MsgRebuildRequest`,
   * its context naming the stream). Only a leader answers, and only a member of its configuration:
   * the stream goes out as any snapshot does, and no MsgSnap follows it, since the follower's core
   * and log are not concerned: the follower installs the stream into its state machine alone.
   */
  async sendRebuild(message: Message): Promise<void> {
    const snapshotId = Buffer.from(message.context).toString('latin1');
    const config = this.options.leaderConfiguration();
    const member =
      config !== undefined &&
      (config.voters.includes(message.from) || config.learners.includes(message.from));
    if (!member || !rebuildSnapshotIdPattern.test(snapshotId)) {
      this.options.logger.debug(
        { from: message.from, leader: config !== undefined, member },
        'replica: rebuild request ignored (not the leader, not a member, or malformed)',
      );
      return;
    }
    this.options.logger.info(
      { to: message.from, snapshotId },
      'replica: a faulted member asks for a rebuild',
    );
    await this.stream(message.from, snapshotId);
  }

  /**
   * Streams the state machine to `to` under `snapshotId`. Answers the snapshot's metadata once the
   * follower acknowledged the whole stream, `undefined` when it failed, and `busy` when a stream
   * to `to` is already going. `onOpened` learns the snapshot's metadata before anything is sent.
   * Never rejects.
   */
  private async stream(
    to: NodeId,
    snapshotId: string,
    onOpened?: (metadata: SnapshotMetadata) => void,
  ): Promise<SnapshotMetadata | undefined | 'busy'> {
    const transport = this.options.transport();
    if (this.sending.has(to) || transport === undefined) return 'busy';
    this.sending.add(to);
    let snapshot: Awaited<ReturnType<ReplicaStateMachine['openSnapshot']>> | undefined;
    try {
      snapshot = await this.options.stateMachine.openSnapshot();
      onOpened?.(snapshot.metadata);
      this.options.logger.info(
        { to, index: snapshot.metadata.index, snapshotId },
        'replica: sending snapshot',
      );
      await transport.sendSnapshotChunks(to, snapshotId, snapshot.chunks());
      this.options.metrics.snapshotsSent.inc();
      return snapshot.metadata;
    } catch (error) {
      // A record that failed its checksum on the way out is this replica's fault, not the stream's.
      if (error instanceof StorageFault) this.options.onStorageFault(error);
      this.options.logger.warn({ to, err: (error as Error).message }, 'replica: sending snapshot failed');
      return undefined;
    } finally {
      this.sending.delete(to);
      await snapshot?.close().catch((error: unknown) => {
        this.options.logger.warn(
          { to, err: (error as Error).message },
          'replica: closing a sent snapshot failed',
        );
      });
    }
  }
}
