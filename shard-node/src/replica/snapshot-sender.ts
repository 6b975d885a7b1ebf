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
  /** Tells the core how a snapshot it asked for went (`RawNode.reportSnapshot`). */
  readonly reportSnapshot: (to: NodeId, succeeded: boolean) => void;
  /** Whether this replica leads, and its configuration: only a leader answers rebuild requests. */
  readonly leaderConfiguration: () => ConfState | undefined;
  readonly onStorageFault: (fault: StorageFault) => void;
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
  private counter = 0;

  constructor(private readonly options: SnapshotSenderOptions) {}

  /** Answers a MsgSnap of the core. Never rejects: it runs detached. */
  async send(message: Message): Promise<void> {
    const to = message.to;
    const snapshotId = `${this.options.selfId}-${this.options.scheduler.wallClockMs()}-${this.counter++}`;
    const metadata = await this.stream(to, snapshotId);
    if (metadata === 'busy') return;
    if (metadata !== undefined) {
      // The stream is acknowledged: the follower holds it, and can act on the message at once.
      this.options.transport()?.send([{ ...message, snapshot: { metadata, data: Buffer.from(snapshotId) } }]);
    }
    this.options.reportSnapshot(to, metadata !== undefined);
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
   * to `to` is already going. Never rejects.
   */
  private async stream(to: NodeId, snapshotId: string): Promise<SnapshotMetadata | undefined | 'busy'> {
    const transport = this.options.transport();
    if (this.sending.has(to) || transport === undefined) return 'busy';
    this.sending.add(to);
    let snapshot: Awaited<ReturnType<ReplicaStateMachine['openSnapshot']>> | undefined;
    try {
      snapshot = await this.options.stateMachine.openSnapshot();
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
