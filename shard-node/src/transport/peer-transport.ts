/**
 * The peer transport of one replica: a TCP server on its peer port that accepts the connections of
 * the other replicas of its Raft group, and one persistent outbound connection per peer.
 *
 * The host loop hands it the `messages` of each Ready (`send`); they are queued per peer and
 * written once per event-loop turn, so that a Ready's many messages leave as one frame per peer
 * and one syscall. Inbound messages reach the host through `onMessages`, one call per frame.
 * Failures never throw out of the transport: dropped messages are counted and reported through
 * `onUnreachable`, so the host can tell Raft (`RawNode.reportUnreachable`).
 *
 * Host callbacks are called from the event loop, never from inside `send`, so the host can step
 * the RawNode in them without re-entering its own Ready handling.
 */
import type { Server, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

import type { Logger, Registry } from '@impulse/common';

import type { Message, NodeId } from '../raft/index.js';
import { BufferReader } from './buffer-reader.js';
import {
  decodeMessageBatch,
  fillMessagesFrame,
  isNetworkMessageType,
  messageEncodedBytesBound,
} from './codec.js';
import type { PeerAddress, TransportContext } from './context.js';
import { assert, PeerFrameMalformedError, TransportError } from './errors.js';
import type { Frame } from './frame.js';
import { helloIdBytesMax } from './hello.js';
import {
  InboundConnection,
  type InboundHandlers,
  type SnapshotAbort,
  type SnapshotChunk,
} from './inbound-connection.js';
import { resolveTransportLimits, type TransportLimits } from './limits.js';
import { listenForPeers } from './peer-server.js';
import { createTransportMetrics, type DropReason, type TransportMetrics } from './metrics.js';
import { OutboundConnection, type FrameFiller, type PeerStatus } from './outbound-connection.js';
import {
  replicaAcceptorHandshake,
  replicaDiallerHandshake,
  type ReplicaIdentity,
} from './replica-handshake.js';
import { snapshotIdBytesMax } from './snapshot-chunk.js';
import { sendSnapshotStream, type SnapshotSendResult } from './snapshot-sender.js';
import { WarningLimiter } from './warning-limiter.js';

/** A replica's messages travel in `messages` frames: the handshake fixed who sends to whom. */
const messagesFraming: FrameFiller = { kind: 'messages', fill: fillMessagesFrame };

export interface PeerTransportOptions {
  /** The address the peer server listens on. */
  readonly listenHost: string;
  /** The peer port; 0 picks a free one (see `port`). */
  readonly listenPort: number;
  /** This replica's Raft id (positive). */
  readonly selfId: NodeId;
  /** The cluster and group ids every hello must match (at most 256 bytes of UTF-8 each). */
  readonly clusterId: string;
  readonly groupId: string;
  /**
   * The cluster secret that authenticates peers to each other in the handshake (`peer-auth.ts`).
   * Absent: peers without one understand each other, and nothing is authenticated.
   */
  readonly secret?: Uint8Array;
  /** The other replicas of the group (never `selfId`). */
  readonly peers: ReadonlyMap<NodeId, PeerAddress>;
  /** Inbound Raft messages, one call per frame, all from `from` and addressed to this replica. */
  readonly onMessages: (messages: Message[], from: NodeId) => void;
  /**
   * Chunks of inbound snapshot streams, in order. Returning a promise stops reading that stream
   * until it settles (backpressure); a rejection aborts the stream. Without a handler, snapshot
   * streams are refused.
   */
  readonly onSnapshotChunk?: (chunk: SnapshotChunk) => void | Promise<void>;
  /** An inbound snapshot stream ended before its last chunk was handled. */
  readonly onSnapshotAborted?: (abort: SnapshotAbort) => void;
  /** Messages to `peerId` were dropped; called at most once per peer per event-loop turn. */
  readonly onUnreachable?: (peerId: NodeId) => void;
  /**
   * A MsgSnap to `peerId` was dropped: the host should call `RawNode.reportSnapshot(peerId, false)`
   * so that the leader does not wait for a snapshot that never left.
   */
  readonly onSnapshotMessageDropped?: (peerId: NodeId, message: Message) => void;
  readonly logger: Logger;
  /** Where the transport's metrics are registered (one transport per registry). */
  readonly registry: Registry;
  readonly limits?: Partial<TransportLimits>;
  /** A number in [0, 1) for reconnect jitter; defaults to Math.random. */
  readonly random?: () => number;
  /** A monotonic clock in milliseconds; defaults to performance.now. */
  readonly nowMs?: () => number;
}

export interface SendSnapshotOptions {
  /** Aborts the stream (the returned promise rejects with TRANSPORT_STOPPED). */
  readonly signal?: AbortSignal;
}

export class PeerTransport {
  private readonly context: TransportContext;
  private readonly identity: ReplicaIdentity;
  private readonly inboundHandlers: InboundHandlers;
  private readonly metrics: TransportMetrics;
  private readonly peers = new Map<NodeId, OutboundConnection>();
  private readonly inbound = new Set<InboundConnection>();
  /** The accepted messages connection of each peer: a newer one replaces an older one. */
  private readonly inboundMessagesByPeer = new Map<NodeId, InboundConnection>();
  private readonly snapshotSends = new Set<AbortController>();
  private readonly dirtyPeers = new Set<OutboundConnection>();
  private flushImmediate: NodeJS.Immediate | undefined;
  private readonly unreachablePeers = new Set<NodeId>();
  private droppedSnapshotMessages: Array<{ peerId: NodeId; message: Message }> = [];
  private notifyImmediate: NodeJS.Immediate | undefined;
  private stopping: Promise<void> | undefined;
  private readonly listenPort: number;

  private constructor(
    private readonly options: PeerTransportOptions,
    private readonly server: Server,
    limits: TransportLimits,
  ) {
    assert(Number.isSafeInteger(options.selfId) && options.selfId > 0, 'selfId is a positive integer');
    assert(Buffer.byteLength(options.clusterId) <= helloIdBytesMax, 'clusterId fits in a hello');
    assert(Buffer.byteLength(options.groupId) <= helloIdBytesMax, 'groupId fits in a hello');
    // Checked before any peer is dialled, so that a bad one cannot leave half the others dialling.
    for (const id of options.peers.keys()) {
      assert(Number.isSafeInteger(id) && id > 0 && id !== options.selfId, `peer id ${id} is valid`);
    }
    // The queue gauges are set when metrics are collected, not on every message.
    this.metrics = createTransportMetrics(options.registry, () => {
      for (const peer of this.peers.values()) {
        peer.observeQueue();
      }
    });
    const logger = options.logger.child({ component: 'transport' });
    const nowMs = options.nowMs ?? (() => performance.now());
    this.context = {
      limits,
      metrics: this.metrics,
      logger,
      warnings: new WarningLimiter(logger, limits.warningIntervalMs, nowMs),
      random: options.random ?? Math.random,
      nowMs,
    };
    this.identity = {
      clusterId: options.clusterId,
      groupId: options.groupId,
      selfId: options.selfId,
      secret: options.secret ?? new Uint8Array(0),
    };
    this.inboundHandlers = this.makeInboundHandlers();
    const address = server.address();
    assert(address !== null && typeof address === 'object', 'the server listens on TCP');
    this.listenPort = address.port;
    server.on('connection', (socket: Socket) => this.accept(socket));
    for (const [id, peerAddress] of options.peers) {
      this.addPeer(id, peerAddress);
    }
    logger.info({ port: this.listenPort, peers: [...options.peers.keys()] }, 'transport: listening');
  }

  /** Listens on the peer port, starts dialling every peer, and resolves once listening. */
  static async start(options: PeerTransportOptions): Promise<PeerTransport> {
    const limits = resolveTransportLimits(options.limits);
    const server = await listenForPeers(limits, options.listenPort, options.listenHost);
    try {
      return new PeerTransport(options, server, limits);
    } catch (error: unknown) {
      server.close();
      throw error;
    }
  }

  /** The port the peer server listens on (the real one when started with port 0). */
  get port(): number {
    return this.listenPort;
  }

  /**
   * Queues `messages` for their peers (`message.to`); they are written at the end of this
   * event-loop turn. Messages to unknown peers, over the queue limits or to a peer that has been
   * unreachable for `disconnectedBufferMs` are dropped and counted (Raft retransmits).
   * Local message types, messages to self and messages not from self are programmer errors.
   */
  send(messages: readonly Message[]): void {
    if (this.stopping !== undefined) {
      return;
    }
    const selfId = this.identity.selfId;
    const groupId = this.identity.groupId;
    for (const message of messages) {
      assert(isNetworkMessageType(message.type), `${message.type} is a local message and is never sent`);
      assert(message.from === selfId, `a message to send is from this replica (${message.from})`);
      assert(message.to !== selfId, 'a message to send is not addressed to this replica');
      const peer = this.peers.get(message.to);
      if (peer === undefined) {
        this.metrics.messagesDropped.inc({
          peer: String(message.to),
          group: groupId,
          type: message.type,
          reason: 'unknownPeer',
        });
        this.onDropped(message.to, message, 'unknownPeer');
        continue;
      }
      peer.enqueue({ groupId, message, encodedBytesBound: messageEncodedBytesBound(message) });
    }
  }

  /** Starts connecting to a new member. */
  addPeer(id: NodeId, address: PeerAddress): void {
    assert(Number.isSafeInteger(id) && id > 0 && id !== this.identity.selfId, `peer id ${id} is valid`);
    assert(!this.peers.has(id), `peer ${id} is not added twice`);
    if (this.stopping !== undefined) {
      return;
    }
    this.peers.set(
      id,
      new OutboundConnection(
        this.context,
        String(id),
        address,
        () => replicaDiallerHandshake(this.identity, id, 'messages'),
        messagesFraming,
        {
          onDropped: (item, reason) => this.onDropped(item.message.to, item.message, reason),
          onWritable: (peer) => this.scheduleFlush(peer),
        },
      ),
    );
  }

  /** Forgets a removed member: closes its connections both ways and drops what is queued for it. */
  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (peer === undefined) {
      return;
    }
    this.peers.delete(id);
    this.dirtyPeers.delete(peer);
    peer.close();
    for (const connection of [...this.inbound]) {
      if (connection.peerId === id) {
        connection.close();
      }
    }
  }

  /** Points a member at a new address: its outbound connection is replaced at once. */
  updatePeer(id: NodeId, address: PeerAddress): void {
    const peer = this.peers.get(id);
    assert(peer !== undefined, `peer ${id} exists`);
    peer.updateAddress(address);
  }

  /** The outbound state and queue of a peer, or undefined for an unknown one. */
  peerStatus(id: NodeId): PeerStatus | undefined {
    return this.peers.get(id)?.status();
  }

  /**
   * Streams a snapshot to `to` on a connection of its own, chunk by chunk, waiting whenever the
   * socket buffer is full. Resolves once the receiver's handler took the last chunk; rejects with a
   * `TransportError` when the peer is unknown, refuses, disconnects or times out. Chunks larger
   * than a frame are split; the stream ends with an empty chunk flagged last.
   */
  async sendSnapshotChunks(
    to: NodeId,
    snapshotId: string,
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: SendSnapshotOptions = {},
  ): Promise<SnapshotSendResult> {
    assert(Buffer.byteLength(snapshotId) <= snapshotIdBytesMax, 'the snapshot id fits in a chunk header');
    if (this.stopping !== undefined) {
      throw new TransportError('TRANSPORT_STOPPED');
    }
    const peer = this.peers.get(to);
    if (peer === undefined) {
      throw new TransportError('PEER_UNKNOWN', `transport: ${to} is not a peer`);
    }
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted === true) {
      controller.abort();
    }
    this.snapshotSends.add(controller);
    try {
      const result = await sendSnapshotStream(
        this.context,
        String(to),
        peer.status().address,
        replicaDiallerHandshake(this.identity, to, 'snapshot'),
        undefined,
        snapshotId,
        chunks,
        controller.signal,
      );
      this.metrics.snapshotStreams.inc({ direction: 'sent', result: 'success' });
      return result;
    } catch (error: unknown) {
      this.metrics.snapshotStreams.inc({ direction: 'sent', result: 'failure' });
      this.context.logger.warn(
        { peerId: to, snapshotId, error: error instanceof Error ? error.message : String(error) },
        'transport: snapshot stream failed',
      );
      throw error instanceof TransportError
        ? error
        : new TransportError('PEER_DISCONNECTED', 'transport: the snapshot stream failed', error);
    } finally {
      this.snapshotSends.delete(controller);
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Closes the server and every connection, drops every queue, aborts snapshot streams. Idempotent. */
  stop(): Promise<void> {
    if (this.stopping !== undefined) {
      return this.stopping;
    }
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    clearImmediate(this.flushImmediate);
    clearImmediate(this.notifyImmediate);
    this.dirtyPeers.clear();
    this.stopping = closed;
    for (const peer of this.peers.values()) {
      peer.close();
    }
    this.peers.clear();
    for (const connection of [...this.inbound]) {
      connection.close();
    }
    for (const controller of this.snapshotSends) {
      controller.abort();
    }
    this.context.logger.info({ port: this.listenPort }, 'transport: stopped');
    return closed;
  }

  private accept(socket: Socket): void {
    if (this.stopping !== undefined) {
      socket.destroy();
      return;
    }
    this.inbound.add(new InboundConnection(this.context, socket, this.inboundHandlers));
  }

  private makeInboundHandlers(): InboundHandlers {
    const onSnapshotChunk = this.options.onSnapshotChunk;
    return {
      handshake: replicaAcceptorHandshake(this.identity, (id) => this.peers.has(id)),
      onMessagesFrame: (frame, connection) => this.handleMessagesFrame(frame, connection),
      takesSnapshots: onSnapshotChunk !== undefined,
      snapshotStreamsHaveHeader: false,
      canStartSnapshotStream: () => {
        let streams = 0;
        for (const other of this.inbound) {
          streams += other.isSnapshotStream ? 1 : 0;
        }
        return streams < this.context.limits.inboundSnapshotStreamsMax;
      },
      openSnapshotStream: (_header, connection) => ({
        from: connection.peerId!,
        onChunk: (chunk) => onSnapshotChunk!(chunk),
        onAborted: (abort) => this.options.onSnapshotAborted?.(abort),
      }),
      onIdentified: (identified) => {
        if (identified.purpose !== 'messages') {
          return;
        }
        // A peer that redials may leave its old connection half-open: the newest one wins.
        const id = identified.peerId!;
        const previous = this.inboundMessagesByPeer.get(id);
        this.inboundMessagesByPeer.set(id, identified);
        previous?.close();
      },
      onClosed: (closed) => {
        this.inbound.delete(closed);
        const id = closed.peerId;
        if (id !== undefined && this.inboundMessagesByPeer.get(id) === closed) {
          this.inboundMessagesByPeer.delete(id);
        }
      },
    };
  }

  /** A `messages` frame: every message from the connection's peer, to this replica. */
  private handleMessagesFrame(frame: Frame, connection: InboundConnection): void {
    if (frame.kind !== 'messages') {
      throw new PeerFrameMalformedError('kind', `${frame.kind} frame on a messages connection`);
    }
    const from = connection.peerId!;
    const messages = decodeMessageBatch(new BufferReader(frame.payload), from, this.identity.selfId);
    const group = this.identity.groupId;
    const receivedCounts = this.metrics.messagesReceived.ofPeer(connection.peerLabel);
    for (const message of messages) receivedCounts.count(group, message.type);
    if (messages.length > 0) {
      this.options.onMessages(messages, from);
    }
  }

  private scheduleFlush(peer: OutboundConnection): void {
    this.dirtyPeers.add(peer);
    // setImmediate, not a microtask: it runs after the I/O callbacks of this loop turn, so that
    // messages from several Readys handled in one turn share a frame.
    this.flushImmediate ??= setImmediate(() => {
      this.flushImmediate = undefined;
      const peers = [...this.dirtyPeers];
      this.dirtyPeers.clear();
      for (const dirty of peers) {
        dirty.flush();
      }
    });
  }

  private onDropped(peerId: NodeId, message: Message, reason: DropReason): void {
    if (reason === 'stopped') {
      return;
    }
    this.unreachablePeers.add(peerId);
    if (message.type === 'MsgSnap') {
      this.droppedSnapshotMessages.push({ peerId, message });
    }
    this.notifyImmediate ??= setImmediate(() => {
      this.notifyImmediate = undefined;
      const peers = [...this.unreachablePeers];
      const snapshots = this.droppedSnapshotMessages;
      this.unreachablePeers.clear();
      this.droppedSnapshotMessages = [];
      if (this.stopping !== undefined) {
        return;
      }
      for (const peerId of peers) {
        this.options.onUnreachable?.(peerId);
      }
      for (const { peerId, message } of snapshots) {
        this.options.onSnapshotMessageDropped?.(peerId, message);
      }
    });
  }
}
