import type { Logger } from '@impulse/common';
import type { Message, NodeId, SnapshotMetadata } from '../raft/index.js';
import type { ReplicaStateMachine, SnapshotInstall } from '../state-machine/index.js';
import type { SnapshotChunk } from '../transport/index.js';

/** A snapshot stream being received from the leader, and its fate. */
export interface IncomingSnapshot {
  readonly snapshotId: string;
  readonly from: NodeId;
  readonly install: SnapshotInstall;
  complete: boolean;
}

export interface SnapshotReceiverOptions {
  readonly logger: Logger;
  readonly stateMachine: ReplicaStateMachine;
  /** Why this replica takes no snapshot at all, if it takes none (stopping, a reused identity). */
  readonly refusal: () => string | undefined;
  /** Every chunk of a stream, before it is written: the rebuild watches its own stream arrive. */
  readonly onChunk: (snapshotId: string) => void;
  /** A stream arrived whole. Returns whether the caller took it (a rebuild stream). */
  readonly onComplete: (incoming: IncomingSnapshot) => boolean;
}

/**
 * The follower's side of snapshots. A stream is written into a new state machine generation as it
 * arrives (`beginInstall`); the leader's MsgSnap that follows it is stepped into the core only when
 * its stream arrived whole (else the leader sends again), and the Ready that carries the snapshot
 * installs that generation atomically. One stream at a time: a newer one replaces one that never
 * completed.
 */
export class SnapshotReceiver {
  private incoming: IncomingSnapshot | undefined;
  /** A received snapshot stepped into the core, waiting for its Ready. */
  private toInstall: IncomingSnapshot | undefined;
  /** A stream another part took (a rebuild), no longer this one's to abort. */
  private taken: IncomingSnapshot | undefined;

  constructor(private readonly options: SnapshotReceiverOptions) {}

  /** Takes one chunk; a rejection aborts the stream (the transport tells the sender). */
  async handleChunk(chunk: SnapshotChunk): Promise<void> {
    const refusal = this.options.refusal();
    if (refusal !== undefined) throw new Error(refusal);
    let incoming = this.incoming;
    if (incoming === undefined || incoming.snapshotId !== chunk.snapshotId) {
      if (chunk.sequence !== 0)
        throw new Error(`snapshot ${chunk.snapshotId}: chunk ${chunk.sequence} without its start`);
      // A newer stream replaces one that never completed.
      if (incoming !== undefined && incoming !== this.toInstall && incoming !== this.taken)
        await incoming.install.abort();
      incoming = {
        snapshotId: chunk.snapshotId,
        from: chunk.from,
        install: await this.options.stateMachine.beginInstall(),
        complete: false,
      };
      this.incoming = incoming;
    }
    this.options.onChunk(incoming.snapshotId);
    if (chunk.bytes.byteLength > 0) await incoming.install.write(chunk.bytes);
    if (!chunk.last) return;
    incoming.complete = true;
    if (this.options.onComplete(incoming)) this.taken = incoming;
  }

  /** The sender gave up on a stream: it is dropped unless it is already spoken for. */
  abort(snapshotId: string): void {
    const incoming = this.incoming;
    if (incoming?.snapshotId !== snapshotId || incoming === this.toInstall || incoming === this.taken) return;
    this.incoming = undefined;
    void incoming.install.abort();
  }

  /** Drops the stream being received, whatever it is (a replica that refuses snapshots for good). */
  abortIncoming(): void {
    const incoming = this.incoming;
    this.incoming = undefined;
    void incoming?.install.abort();
  }

  /**
   * Whether a MsgSnap may be stepped: only when its stream arrived whole. The stream is then the
   * core's next snapshot, which `install` makes live.
   */
  accept(message: Message): boolean {
    const snapshotId = Buffer.from(message.snapshot?.data ?? []).toString();
    const incoming = this.incoming;
    if (incoming === undefined || incoming.snapshotId !== snapshotId || !incoming.complete) {
      this.options.logger.warn(
        { snapshotId, from: message.from },
        'replica: snapshot message without its stream; dropped',
      );
      return false;
    }
    this.toInstall = incoming;
    return true;
  }

  /** Makes the snapshot the core installs at `index` the live state machine. */
  async install(index: number): Promise<SnapshotMetadata> {
    const incoming = this.toInstall;
    if (incoming === undefined)
      throw new Error(`replica: the core installs snapshot ${index}, which was never received`);
    const metadata = await this.options.stateMachine.install(incoming.install);
    if (metadata.index !== index) {
      throw new Error(`replica: received state is at ${metadata.index}, the core installs ${index}`);
    }
    // A newer snapshot may have been received and stepped while this one was being installed
    // (the install awaits; messages are stepped meanwhile): it is the core's next snapshot, so it
    // must stay. Clearing it unconditionally made the next Ready fail with "never received" and the
    // replica exit (found by the container linearizability run).
    if (this.toInstall === incoming) this.toInstall = undefined;
    if (this.incoming === incoming) this.incoming = undefined;
    return metadata;
  }

  /** A taken stream is done with (installed or abandoned by its taker). */
  release(incoming: IncomingSnapshot): void {
    if (this.taken === incoming) this.taken = undefined;
    if (this.incoming === incoming) this.incoming = undefined;
  }

  /** Stopping: a stream half received is dropped (its generation directory is removed). */
  async stop(): Promise<void> {
    await this.incoming?.install.abort();
  }
}
