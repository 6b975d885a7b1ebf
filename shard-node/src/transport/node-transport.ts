/**
 * The peer transport of a node: one process hosting replicas of many Raft groups, with one peer
 * port. It listens once, keeps one outbound connection per peer node address (one-way for data,
 * as the replica transport's are), shared by every hosted group, and carries each round's
 * messages for a node in one `groupMessages` frame, each message tagged with its group.
 *
 * Each hosted replica opens an endpoint (`openReplica`), which `Replica.start({ openTransport })`
 * takes unchanged: the replica still addresses its peers by Raft id, and the endpoint maps them to
 * node addresses (`replica-endpoint.ts`). Inbound runs of messages are dispatched by group to the
 * endpoint hosted for it; a message for a group not hosted here, or for another Raft id than the
 * hosted replica's, is dropped and counted, never thrown. Snapshot streams keep a connection each,
 * opened by a header naming the group and the two replicas.
 *
 * Metrics are registered once, when the transport starts, in the node's registry: opening
 * replicas registers nothing. Callbacks to replicas run on the event loop, never inside `send`.
 */
import type { Server, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

import type { Logger, Registry } from '@impulse/common';

import type { NodeId } from '../raft/index.js';
import type { InboundSender, OpenReplicaTransport } from '../replica/index.js';
import { BufferReader } from './buffer-reader.js';
import { addressKey, type PeerAddress, type TransportContext } from './context.js';
import { assert, PeerFrameMalformedError, TransportError } from './errors.js';
import type { Frame } from './frame.js';
import { isWireGroupId } from './group-id.js';
import { decodeGroupMessages, fillGroupMessagesFrame, type GroupRun } from './group-messages.js';
import { helloIdBytesMax } from './hello.js';
import { InboundConnection, type InboundHandlers, type SnapshotSink } from './inbound-connection.js';
import { resolveTransportLimits, type TransportLimits } from './limits.js';
import { listenForPeers } from './peer-server.js';
import { createTransportMetrics, type TransportMetrics } from './metrics.js';
import { nodeAcceptorHandshake, nodeDiallerHandshake, type NodeIdentity } from './node-handshake.js';
import { isNodeAddress, peerAddressOf } from './node-hello.js';
import { OutboundConnection, type FrameFiller, type PeerStatus } from './outbound-connection.js';
import { ReplicaEndpoint, type EndpointHost, type NodeQueuedMessage } from './replica-endpoint.js';
import { decodeSnapshotHeader, encodeSnapshotHeaderFrame } from './snapshot-chunk.js';
import { sendSnapshotStream, type SnapshotSendResult } from './snapshot-sender.js';
import { WarningLimiter } from './warning-limiter.js';

export interface NodeTransportOptions {
  /** The address the peer server listens on. */
  readonly listenHost: string;
  /** The node's peer port; 0 picks a free one (see `port`). */
  readonly listenPort: number;
  /**
   * The address peers reach this node at: what every member directory lists for the replicas
   * hosted here, and what a dialler's hello must name (default: `listenHost` and the real port).
   * A node listening on a wildcard address must give it.
   */
  readonly advertisedAddress?: PeerAddress;
  /** The cluster id every hello must match (at most 256 bytes of UTF-8). */
  readonly clusterId: string;
  /** The cluster secret that authenticates nodes to each other (`peer-auth.ts`). Absent: none. */
  readonly secret?: Uint8Array;
  readonly logger: Logger;
  /** The node's registry: the transport registers its metrics in it once. */
  readonly registry: Registry;
  readonly limits?: Partial<TransportLimits>;
  /** A number in [0, 1) for reconnect jitter; defaults to Math.random. */
  readonly random?: () => number;
  /** A monotonic clock in milliseconds; defaults to performance.now. */
  readonly nowMs?: () => number;
  /**
   * Whether the heartbeats (and responses) of a round for one node travel as one coalesced
   * heartbeat rather than one message per group (`coalesced-heartbeats.ts`). Default true.
   */
  readonly coalesceHeartbeats?: boolean;
}

/** The node's connection to one peer node, and how many peers of hosted replicas live there. */
interface SharedConnection {
  readonly connection: OutboundConnection<NodeQueuedMessage>;
  shares: number;
}

export class NodeTransport {
  private readonly context: TransportContext;
  private readonly identity: NodeIdentity;
  private readonly metrics: TransportMetrics;
  private readonly inboundHandlers: InboundHandlers;
  /** Hosted replicas' endpoints, by group: a node hosts at most one replica of a group. */
  private readonly endpoints = new Map<string, ReplicaEndpoint>();
  private readonly connections = new Map<string, SharedConnection>();
  private readonly inbound = new Set<InboundConnection>();
  /** The accepted messages connection of each peer node: a newer one replaces an older one. */
  private readonly inboundMessagesByPeer = new Map<string, InboundConnection>();
  /** Which endpoint each inbound snapshot stream feeds. */
  private readonly streamTargets = new Map<InboundConnection, ReplicaEndpoint>();
  private readonly snapshotSends = new Set<AbortController>();
  private readonly dirtyConnections = new Set<OutboundConnection<NodeQueuedMessage>>();
  private flushImmediate: NodeJS.Immediate | undefined;
  private stopping: Promise<void> | undefined;
  private readonly listenPort: number;
  private readonly endpointHost: EndpointHost;
  private readonly coalesceHeartbeats: boolean;

  private constructor(
    options: NodeTransportOptions,
    private readonly server: Server,
    limits: TransportLimits,
  ) {
    assert(Buffer.byteLength(options.clusterId) <= helloIdBytesMax, 'clusterId fits in a hello');
    const address = server.address();
    assert(address !== null && typeof address === 'object', 'the server listens on TCP');
    this.listenPort = address.port;
    const advertised = options.advertisedAddress ?? { host: options.listenHost, port: this.listenPort };
    assert(
      advertised.host !== '0.0.0.0' && advertised.host !== '::' && advertised.host !== '',
      'a node listening on a wildcard address is given the address its peers reach it at',
    );
    const selfAddress = addressKey(advertised);
    assert(isNodeAddress(selfAddress), `advertised address ${selfAddress} is host:port`);
    // The queue gauges are set when metrics are collected, not on every message.
    this.metrics = createTransportMetrics(options.registry, () => {
      for (const { connection } of this.connections.values()) connection.observeQueue();
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
      address: selfAddress,
      secret: options.secret ?? new Uint8Array(0),
    };
    this.coalesceHeartbeats = options.coalesceHeartbeats ?? true;
    this.inboundHandlers = this.makeInboundHandlers();
    this.endpointHost = {
      port: this.listenPort,
      metrics: this.metrics,
      acquire: (peerAddress) => this.acquire(peerAddress),
      release: (peerAddress) => this.release(peerAddress),
      connectionTo: (peerAddress) => this.connections.get(addressKey(peerAddress))?.connection,
      sendSnapshot: (endpoint, to, peerAddress, snapshotId, chunks, signal) =>
        this.sendSnapshot(endpoint, to, peerAddress, snapshotId, chunks, signal),
      onStopped: (endpoint) => this.forget(endpoint),
    };
    server.on('connection', (socket: Socket) => this.accept(socket));
    logger.info({ port: this.listenPort, address: selfAddress }, 'transport: node listening');
  }

  /** Listens on the node's peer port and resolves once listening. */
  static async start(options: NodeTransportOptions): Promise<NodeTransport> {
    const limits = resolveTransportLimits(options.limits);
    const server = await listenForPeers(limits, options.listenPort, options.listenHost);
    try {
      return new NodeTransport(options, server, limits);
    } catch (error: unknown) {
      server.close();
      throw error;
    }
  }

  /** The port the peer server listens on (the real one when started with port 0). */
  get port(): number {
    return this.listenPort;
  }

  /** The node's advertised address, `host:port`: how peers name it in hellos and metrics. */
  get address(): string {
    return this.identity.address;
  }

  /**
   * The transport opener of the replica of `groupId` with Raft id `raftId`, for
   * `Replica.start({ openTransport })`. Opening a second live endpoint for a group is a programmer
   * error: a node holds at most one replica of a group (stop the old one first).
   */
  openReplica(groupId: string, raftId: NodeId): OpenReplicaTransport {
    assert(isWireGroupId(groupId), `group id ${JSON.stringify(groupId)} is a valid wire group id`);
    assert(Number.isSafeInteger(raftId) && raftId > 0, `raft id ${raftId} is a positive integer`);
    return (peers, handlers) => {
      if (this.stopping !== undefined) return Promise.reject(new TransportError('TRANSPORT_STOPPED'));
      assert(!this.endpoints.has(groupId), `group ${groupId} has no live replica on this node already`);
      const endpoint = new ReplicaEndpoint(this.endpointHost, groupId, raftId, handlers, peers);
      this.endpoints.set(groupId, endpoint);
      this.context.logger.info({ groupId, raftId }, 'transport: replica endpoint opened');
      return Promise.resolve(endpoint);
    };
  }

  /** The groups with a live endpoint here. */
  hostedGroups(): string[] {
    return [...this.endpoints.keys()];
  }

  /** The state and queue of the connection to the node at `address`, or undefined if there is none. */
  connectionStatus(address: PeerAddress): PeerStatus | undefined {
    return this.connections.get(addressKey(address))?.connection.status();
  }

  /** Closes the server and every connection, stops every endpoint and snapshot stream. Idempotent. */
  stop(): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.stopping = closed;
    clearImmediate(this.flushImmediate);
    this.dirtyConnections.clear();
    for (const endpoint of [...this.endpoints.values()]) void endpoint.stop();
    for (const { connection } of this.connections.values()) connection.close();
    this.connections.clear();
    for (const connection of [...this.inbound]) connection.close();
    for (const controller of this.snapshotSends) controller.abort();
    this.context.logger.info({ port: this.listenPort }, 'transport: node transport stopped');
    return closed;
  }

  // -----------------------------------------------------------------------------------------------
  // Outbound: one connection per peer node, shared by the hosted replicas whose peers live there.

  private acquire(address: PeerAddress): void {
    if (this.stopping !== undefined) return;
    const key = addressKey(address);
    const shared = this.connections.get(key);
    if (shared !== undefined) {
      shared.shares += 1;
      return;
    }
    const connection = new OutboundConnection<NodeQueuedMessage>(
      this.context,
      key,
      address,
      () => nodeDiallerHandshake(this.identity, key, 'messages'),
      this.framingFor(key),
      {
        onDropped: (item, reason) => item.endpoint.noteDropped(item.message, reason),
        onWritable: (writable) => this.scheduleFlush(writable),
      },
    );
    this.connections.set(key, { connection, shares: 1 });
  }

  /** A node's messages travel in `groupMessages` frames: runs by group, and coalesced heartbeats. */
  private framingFor(peer: string): FrameFiller {
    const options = {
      coalesceHeartbeats: this.coalesceHeartbeats,
      onCoalesced: (entries: number): void => {
        this.metrics.coalescedHeartbeats.inc({ peer });
        this.metrics.coalescedHeartbeatEntries.inc({ peer }, entries);
      },
    };
    return {
      kind: 'groupMessages',
      fill: (writer, queue, frameBytesMax, dropTooLarge) =>
        fillGroupMessagesFrame(writer, queue, frameBytesMax, dropTooLarge, options),
    };
  }

  private release(address: PeerAddress): void {
    const key = addressKey(address);
    const shared = this.connections.get(key);
    if (shared === undefined) return;
    shared.shares -= 1;
    assert(shared.shares >= 0, 'a connection is released at most as often as it was acquired');
    if (shared.shares > 0) return;
    // No hosted replica has a peer on that node any more.
    this.connections.delete(key);
    this.dirtyConnections.delete(shared.connection);
    shared.connection.close();
  }

  private scheduleFlush(connection: OutboundConnection<NodeQueuedMessage>): void {
    this.dirtyConnections.add(connection);
    // setImmediate, not a microtask: it runs after the I/O callbacks of this loop turn, so that
    // the messages of every replica that handled a Ready in this turn share a frame per node.
    this.flushImmediate ??= setImmediate(() => {
      this.flushImmediate = undefined;
      const dirty = [...this.dirtyConnections];
      this.dirtyConnections.clear();
      for (const connection of dirty) connection.flush();
    });
  }

  private async sendSnapshot(
    endpoint: ReplicaEndpoint,
    to: NodeId,
    address: PeerAddress,
    snapshotId: string,
    chunks: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
  ): Promise<SnapshotSendResult> {
    if (this.stopping !== undefined) throw new TransportError('TRANSPORT_STOPPED');
    const key = addressKey(address);
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) controller.abort();
    this.snapshotSends.add(controller);
    try {
      const result = await sendSnapshotStream(
        this.context,
        key,
        address,
        nodeDiallerHandshake(this.identity, key, 'snapshot'),
        (writer) =>
          encodeSnapshotHeaderFrame(writer, { groupId: endpoint.groupId, from: endpoint.raftId, to }),
        snapshotId,
        chunks,
        controller.signal,
      );
      this.metrics.snapshotStreams.inc({ direction: 'sent', result: 'success' });
      return result;
    } catch (error: unknown) {
      this.metrics.snapshotStreams.inc({ direction: 'sent', result: 'failure' });
      this.context.logger.warn(
        {
          peer: key,
          groupId: endpoint.groupId,
          peerId: to,
          snapshotId,
          error: error instanceof Error ? error.message : String(error),
        },
        'transport: snapshot stream failed',
      );
      throw error instanceof TransportError
        ? error
        : new TransportError('PEER_DISCONNECTED', 'transport: the snapshot stream failed', error);
    } finally {
      this.snapshotSends.delete(controller);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private forget(endpoint: ReplicaEndpoint): void {
    if (this.endpoints.get(endpoint.groupId) === endpoint) this.endpoints.delete(endpoint.groupId);
    this.context.logger.info(
      { groupId: endpoint.groupId, raftId: endpoint.raftId },
      'transport: replica endpoint closed',
    );
  }

  // -----------------------------------------------------------------------------------------------
  // Inbound: any authenticated node of the cluster; each message checked when it is dispatched.

  private accept(socket: Socket): void {
    if (this.stopping !== undefined) {
      socket.destroy();
      return;
    }
    this.inbound.add(new InboundConnection(this.context, socket, this.inboundHandlers));
  }

  private makeInboundHandlers(): InboundHandlers {
    return {
      handshake: nodeAcceptorHandshake(this.identity),
      onMessagesFrame: (frame, connection) => this.handleMessagesFrame(frame, connection),
      takesSnapshots: true,
      snapshotStreamsHaveHeader: true,
      canStartSnapshotStream: () => {
        let streams = 0;
        for (const other of this.inbound) streams += other.isSnapshotStream ? 1 : 0;
        return streams < this.context.limits.inboundSnapshotStreamsMax;
      },
      openSnapshotStream: (header, connection) => this.openSnapshotStream(header, connection),
      onIdentified: (identified) => {
        if (identified.purpose !== 'messages') return;
        // A node that redials may leave its old connection half-open: the newest one wins.
        const previous = this.inboundMessagesByPeer.get(identified.peerLabel);
        this.inboundMessagesByPeer.set(identified.peerLabel, identified);
        previous?.close();
      },
      onClosed: (closed) => {
        this.inbound.delete(closed);
        if (this.inboundMessagesByPeer.get(closed.peerLabel) === closed)
          this.inboundMessagesByPeer.delete(closed.peerLabel);
        const target = this.streamTargets.get(closed);
        this.streamTargets.delete(closed);
        target?.inboundStreams.delete(closed);
      },
    };
  }

  /** A `groupMessages` frame: every run checked and handed to its group's replica. */
  private handleMessagesFrame(frame: Frame, connection: InboundConnection): void {
    if (frame.kind !== 'groupMessages') {
      throw new PeerFrameMalformedError('kind', `${frame.kind} frame on a node messages connection`);
    }
    // The whole frame decodes before anything is dispatched: a malformed frame delivers nothing.
    const runs = decodeGroupMessages(new BufferReader(frame.payload));
    // The connection's peer label is the sender's advertised address from its hello, which its
    // proof of the cluster secret covered: where a replica may answer a sender it does not know yet.
    const address = peerAddressOf(connection.peerLabel);
    const from = address === undefined ? undefined : { address };
    for (const run of runs) this.dispatch(run, connection.peerLabel, from);
  }

  private dispatch(run: GroupRun, peer: string, from: InboundSender | undefined): void {
    const endpoint = this.endpoints.get(run.groupId);
    if (endpoint === undefined) {
      this.refuseInbound(peer, 'unknownGroup', run.messages.length, run.groupId);
      return;
    }
    const accepted = run.messages.filter((message) => message.to === endpoint.raftId);
    if (accepted.length < run.messages.length) {
      this.refuseInbound(peer, 'wrongReceiver', run.messages.length - accepted.length, run.groupId);
    }
    if (accepted.length === 0) return;
    const receivedCounts = this.metrics.messagesReceived.ofPeer(peer);
    for (const message of accepted) receivedCounts.count(run.groupId, message.type);
    endpoint.handlers.onMessages(accepted, from);
  }

  private refuseInbound(
    peer: string,
    reason: 'unknownGroup' | 'wrongReceiver',
    count: number,
    groupId: string,
  ): void {
    this.metrics.inboundMessagesDropped.inc({ peer, reason }, count);
    // Routine while a replica moves or a group is created or removed: info, rate-limited.
    this.context.warnings.warn(
      `inboundDropped:${reason}`,
      { peer, reason, groupId, count },
      'transport: dropped messages that no replica here takes (counted in impulse_transport_inbound_messages_dropped_total)',
      'info',
    );
  }

  private openSnapshotStream(
    header: Frame | undefined,
    connection: InboundConnection,
  ): SnapshotSink | { readonly refusal: string } {
    assert(header !== undefined, 'node snapshot streams open with a header');
    const { groupId, from, to } = decodeSnapshotHeader(header.payload);
    const endpoint = this.endpoints.get(groupId);
    if (endpoint === undefined) return { refusal: 'unknownGroup' };
    if (endpoint.raftId !== to) return { refusal: 'wrongReceiver' };
    this.streamTargets.set(connection, endpoint);
    endpoint.inboundStreams.add(connection);
    return {
      from,
      onChunk: (chunk) => endpoint.handlers.onSnapshotChunk(chunk),
      onAborted: (abort) => endpoint.handlers.onSnapshotAborted(abort),
    };
  }
}
