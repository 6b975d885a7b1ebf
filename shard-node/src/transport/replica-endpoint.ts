/**
 * One hosted replica's view of its node's transport: the `ReplicaTransport` that
 * `NodeTransport.openReplica` hands a `Replica`. The replica keeps addressing its peers by Raft id,
 * as its core and member directory do; the endpoint maps each id to the peer's node address (from
 * the directory: `peerHost:peerPort`, the node's peer address, shared by every group the node
 * hosts) and queues the message, tagged with the group, on the node's one connection to that
 * address. Drops are reported back to this replica only, from a later event-loop turn.
 *
 * Stopping an endpoint releases its share of the node's connections (a connection closes only
 * when no hosted replica needs that node any more), aborts its own snapshot streams and ends the
 * inbound streams addressed to it; the other replicas' traffic carries on.
 */
import type { Message, NodeId } from '../raft/index.js';
import type { ReplicaTransport, ReplicaTransportHandlers } from '../replica/index.js';
import { isNetworkMessageType, messageEncodedBytesBound } from './codec.js';
import { addressKey, type PeerAddress } from './context.js';
import { assert, TransportError } from './errors.js';
import type { InboundConnection } from './inbound-connection.js';
import type { DropReason, TransportMetrics } from './metrics.js';
import type { OutboundConnection } from './outbound-connection.js';
import type { QueuedMessage } from './send-queue.js';
import { snapshotIdBytesMax } from './snapshot-chunk.js';
import type { SnapshotSendResult } from './snapshot-sender.js';

/** A message queued on a node connection, with the endpoint that sent it (to report drops to). */
export interface NodeQueuedMessage extends QueuedMessage {
  readonly endpoint: ReplicaEndpoint;
}

/** What an endpoint needs of its node transport. */
export interface EndpointHost {
  readonly port: number;
  readonly metrics: TransportMetrics;
  /** Takes a share of the node's connection to `address`, dialling it if it is the first. */
  acquire(address: PeerAddress): void;
  /** Gives a share back; the connection closes with its last share. */
  release(address: PeerAddress): void;
  /** The node's connection to `address`, which exists while a share of it is held. */
  connectionTo(address: PeerAddress): OutboundConnection<NodeQueuedMessage> | undefined;
  /** Streams a snapshot of `endpoint`'s group to `to` at `address`, on a connection of its own. */
  sendSnapshot(
    endpoint: ReplicaEndpoint,
    to: NodeId,
    address: PeerAddress,
    snapshotId: string,
    chunks: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
  ): Promise<SnapshotSendResult>;
  /** The endpoint stopped: the node forgets it (and stops dispatching to it). */
  onStopped(endpoint: ReplicaEndpoint): void;
}

export class ReplicaEndpoint implements ReplicaTransport {
  private readonly peers = new Map<NodeId, PeerAddress>();
  private readonly snapshotSends = new Set<AbortController>();
  /** Inbound snapshot streams addressed to this replica: ended when it stops. */
  readonly inboundStreams = new Set<InboundConnection>();
  private readonly unreachablePeers = new Set<NodeId>();
  private droppedSnapshotMessages: NodeId[] = [];
  private notifyImmediate: NodeJS.Immediate | undefined;
  private stopped = false;

  constructor(
    private readonly host: EndpointHost,
    readonly groupId: string,
    readonly raftId: NodeId,
    readonly handlers: ReplicaTransportHandlers,
    peers: ReadonlyMap<NodeId, PeerAddress>,
  ) {
    for (const [id, address] of peers) this.addPeer(id, address);
  }

  get port(): number {
    return this.host.port;
  }

  /**
   * Queues each message on the connection to its receiver's node; they leave at the end of this
   * event-loop turn, in one frame per node with every other hosted group's. Local message types,
   * messages not from this replica and messages to itself are programmer errors.
   */
  send(messages: readonly Message[]): void {
    if (this.stopped) return;
    for (const message of messages) {
      assert(isNetworkMessageType(message.type), `${message.type} is a local message and is never sent`);
      assert(message.from === this.raftId, `a message to send is from this replica (${message.from})`);
      assert(message.to !== this.raftId, 'a message to send is not addressed to this replica');
      const address = this.peers.get(message.to);
      if (address === undefined) {
        this.host.metrics.messagesDropped.inc({
          peer: 'unknown',
          group: this.groupId,
          type: message.type,
          reason: 'unknownPeer',
        });
        this.noteDropped(message, 'unknownPeer');
        continue;
      }
      const connection = this.host.connectionTo(address);
      assert(connection !== undefined, 'a peer holds a share of its node connection');
      connection.enqueue({
        groupId: this.groupId,
        message,
        encodedBytesBound: messageEncodedBytesBound(message),
        endpoint: this,
      });
    }
  }

  async sendSnapshotChunks(
    to: NodeId,
    snapshotId: string,
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<SnapshotSendResult> {
    assert(Buffer.byteLength(snapshotId) <= snapshotIdBytesMax, 'the snapshot id fits in a chunk header');
    if (this.stopped) throw new TransportError('TRANSPORT_STOPPED');
    const address = this.peers.get(to);
    if (address === undefined) {
      throw new TransportError('PEER_UNKNOWN', `transport: ${to} is not a peer of group ${this.groupId}`);
    }
    const controller = new AbortController();
    this.snapshotSends.add(controller);
    try {
      return await this.host.sendSnapshot(this, to, address, snapshotId, chunks, controller.signal);
    } finally {
      this.snapshotSends.delete(controller);
    }
  }

  hasPeer(raftId: NodeId): boolean {
    return this.peers.has(raftId);
  }

  /** Reaches a new member at its node's address (dialling that node if no replica here does yet). */
  addPeer(raftId: NodeId, address: PeerAddress): void {
    assert(
      Number.isSafeInteger(raftId) && raftId > 0 && raftId !== this.raftId,
      `peer id ${raftId} is valid`,
    );
    assert(!this.peers.has(raftId), `peer ${raftId} is not added twice`);
    if (this.stopped) return;
    this.peers.set(raftId, address);
    this.host.acquire(address);
  }

  /** Follows a member to another node address; the connection to the old one may close. */
  updatePeer(raftId: NodeId, address: PeerAddress): void {
    const previous = this.peers.get(raftId);
    assert(previous !== undefined, `peer ${raftId} exists`);
    if (this.stopped || addressKey(previous) === addressKey(address)) return;
    this.peers.set(raftId, address);
    this.host.acquire(address);
    this.host.release(previous);
  }

  /** Forgets a removed member. Its node's connection stays while other replicas here need it. */
  removePeer(raftId: NodeId): void {
    const address = this.peers.get(raftId);
    if (address === undefined) return;
    this.peers.delete(raftId);
    this.host.release(address);
  }

  /** Stops this replica's traffic only. Idempotent. */
  stop(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    // Streams in first, while the replica still takes their abort (see Replica.stop's order).
    for (const stream of [...this.inboundStreams]) stream.close();
    this.stopped = true;
    clearImmediate(this.notifyImmediate);
    for (const controller of this.snapshotSends) controller.abort();
    for (const address of this.peers.values()) this.host.release(address);
    this.peers.clear();
    this.host.onStopped(this);
    return Promise.resolve();
  }

  /**
   * A message of this replica was dropped before it reached the socket: the replica hears of it
   * (`onUnreachable`, and `onSnapshotMessageDropped` for a MsgSnap) from a later turn, at most
   * once per peer per turn, never from inside `send`.
   */
  noteDropped(message: Message, reason: DropReason): void {
    if (reason === 'stopped' || this.stopped) return;
    this.unreachablePeers.add(message.to);
    if (message.type === 'MsgSnap') this.droppedSnapshotMessages.push(message.to);
    this.notifyImmediate ??= setImmediate(() => {
      this.notifyImmediate = undefined;
      const peers = [...this.unreachablePeers];
      const snapshots = this.droppedSnapshotMessages;
      this.unreachablePeers.clear();
      this.droppedSnapshotMessages = [];
      if (this.stopped) return;
      for (const peerId of peers) this.handlers.onUnreachable(peerId);
      for (const peerId of snapshots) this.handlers.onSnapshotMessageDropped(peerId);
    });
  }
}
