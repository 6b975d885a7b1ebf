/**
 * The network between simulated nodes. Every replica gets a `ReplicaTransport` from it, as the
 * production host gets a `PeerTransport`; messages travel between nodes with a seeded delay, and
 * may be lost, duplicated or reordered, and links between nodes may be cut one way or both.
 * Snapshot streams travel chunk by chunk over the same links, and fail when a link is cut or
 * either end crashes, as a real stream's connection would.
 *
 * With `coalesceHeartbeats`, the network does what a node transport does with a round's
 * heartbeats: those a node sends to one node in one round (one settle of its clock's immediates)
 * travel as one coalesced heartbeat, through the transport's own encoder and decoder, with one
 * fate: one delay, lost or duplicated whole. The receiver expands it into the per-group messages.
 *
 * With a planted bug of the coalescer (`coalescerMutant`, mutation tests only), the receiving node
 * also answers the coalesced heartbeats it receives, as that bug makes it (`nodeResponsesTo`), in
 * its own round: never while it is paused or after it crashed.
 *
 * Delivery does what the node transport's dispatch does: a message goes to the replica of its group
 * on the receiving node only if it is addressed to that replica's Raft id (one for a replica that
 * moved away is dropped, as `wrongReceiver`), and it comes with the sending node's address, which
 * the real transport's handshake proves (`InboundSender`): a node's address is its name, port 1.
 */
import type { Message, NodeId } from '../../raft/index.js';
import type {
  InboundSender,
  PeerAddress,
  ReplicaTransport,
  ReplicaTransportHandlers,
} from '../../replica/index.js';
import {
  BufferReader,
  BufferWriter,
  decodeGroupMessages,
  encodeHeartbeatSection,
  isCoalescible,
  nodeResponsesTo,
  type CoalescerMutant,
  type GroupRun,
} from '../../transport/index.js';
import type { Prng } from '../prng.js';
import { NodeClock, type SimTime } from './sim-clock.js';

export interface LinkFaults {
  /** Probability that a message is lost. */
  readonly dropProbability: number;
  /** Probability that a message is delivered twice. */
  readonly duplicateProbability: number;
  /** Delivery delay in milliseconds, drawn uniformly from [delayMsMin, delayMsMax]. */
  readonly delayMsMin: number;
  readonly delayMsMax: number;
}

export const calmLinks: LinkFaults = {
  dropProbability: 0,
  duplicateProbability: 0,
  delayMsMin: 1,
  delayMsMax: 3,
};

/** The peer port of every simulated node (member directories list `peerHost: <node>, peerPort: 1`). */
export const simPeerPort = 1;

/** What the node transport hands a replica along with messages from `node`. */
function senderOf(node: string): InboundSender {
  return { address: { host: node, port: simPeerPort } };
}

/** Bytes of one snapshot chunk in flight (the real transport's frames are larger; small ones interleave more). */
const snapshotChunkBytesMax = 64 * 1024;

/** Where a replica of one group lives, as the network reaches it. */
interface Endpoint {
  readonly node: string;
  readonly group: string;
  readonly raftId: NodeId;
  readonly clock: NodeClock;
  readonly handlers: ReplicaTransportHandlers;
  closed: boolean;
  /**
   * When the replica last took a response (MsgAppResp, MsgHeartbeatResp) from each peer, and of
   * which term: what the simulator's CheckQuorum watch reads.
   */
  readonly heard: Map<NodeId, HeardResponse>;
}

/** The last response a replica took from one peer. */
export interface HeardResponse {
  readonly atMs: number;
  readonly term: number;
}

export interface NetworkCounters {
  sent: number;
  dropped: number;
  duplicated: number;
  delivered: number;
  snapshotStreams: number;
  snapshotStreamsFailed: number;
  /** Coalesced heartbeats sent (one per node pair per round that had heartbeats). */
  coalescedHeartbeats: number;
  /** The per-group heartbeats and responses they carried. */
  coalescedHeartbeatEntries: number;
  /** Heartbeat responses a node made itself for its replicas (a planted bug of the coalescer only). */
  nodeResponses: number;
}

export interface SimNetworkOptions {
  /** Whether a round's heartbeats for one node travel as one coalesced heartbeat (default false). */
  readonly coalesceHeartbeats?: boolean;
  /** A planted bug of the coalescer (mutation tests only; needs `coalesceHeartbeats`). */
  readonly coalescerMutant?: CoalescerMutant;
}

/** The heartbeats a node queued for another node in the current round. */
interface HeartbeatBatch {
  readonly fromNode: string;
  readonly toNode: string;
  readonly entries: Array<{ readonly endpoint: Endpoint; readonly message: Message }>;
}

export class SimNetwork {
  faults: LinkFaults = calmLinks;
  readonly counters: NetworkCounters = {
    sent: 0,
    dropped: 0,
    duplicated: 0,
    delivered: 0,
    snapshotStreams: 0,
    snapshotStreamsFailed: 0,
    coalescedHeartbeats: 0,
    coalescedHeartbeatEntries: 0,
    nodeResponses: 0,
  };
  /** Live endpoints by `node/group`. */
  private readonly endpoints = new Map<string, Endpoint>();
  /** Directed links that are cut, as `from>to` (node names). */
  private readonly cut = new Set<string>();

  /** The wire's own clock: never paused, never crashed. */
  private readonly wire: NodeClock;
  /** Heartbeats waiting for the end of their sender's round, by `from>to` (node names). */
  private readonly heartbeatBatches = new Map<string, HeartbeatBatch>();
  private readonly coalesceHeartbeats: boolean;
  private readonly coalescerMutant: CoalescerMutant | undefined;

  constructor(
    time: SimTime,
    private readonly prng: Prng,
    options: SimNetworkOptions = {},
  ) {
    this.wire = new NodeClock(time, 0);
    this.coalesceHeartbeats = options.coalesceHeartbeats ?? false;
    this.coalescerMutant = options.coalescerMutant;
  }

  isLinkUp(from: string, to: string): boolean {
    return from === to || !this.cut.has(`${from}>${to}`);
  }

  cutLink(from: string, to: string): void {
    this.cut.add(`${from}>${to}`);
  }

  partition(sideA: readonly string[], sideB: readonly string[]): void {
    for (const a of sideA) {
      for (const b of sideB) {
        this.cutLink(a, b);
        this.cutLink(b, a);
      }
    }
  }

  heal(): void {
    this.cut.clear();
  }

  isPartitioned(): boolean {
    return this.cut.size > 0;
  }

  /**
   * The transport of the replica of `group` with Raft id `raftId` on `node`, for one incarnation
   * of the node (its `clock`). The replica reaches its peers at the addresses its member directory
   * gives (`peerHost` is the node's name).
   */
  transport(node: string, group: string, raftId: NodeId, clock: NodeClock) {
    return async (
      peers: ReadonlyMap<NodeId, PeerAddress>,
      handlers: ReplicaTransportHandlers,
    ): Promise<ReplicaTransport> => {
      const endpoint: Endpoint = { node, group, raftId, clock, handlers, closed: false, heard: new Map() };
      this.endpoints.set(`${node}/${group}`, endpoint);
      const addresses = new Map(peers);
      return {
        port: 1,
        send: (messages) => {
          for (const message of messages) this.send(endpoint, addresses.get(message.to), message);
        },
        sendSnapshotChunks: (to, snapshotId, chunks) =>
          this.stream(endpoint, addresses.get(to), to, snapshotId, chunks),
        hasPeer: (peerId) => addresses.has(peerId),
        addPeer: (peerId, address) => void addresses.set(peerId, address),
        updatePeer: (peerId, address) => void addresses.set(peerId, address),
        removePeer: (peerId) => void addresses.delete(peerId),
        stop: () => {
          this.close(endpoint);
          return Promise.resolve();
        },
      };
    };
  }

  /**
   * The responses the running replica of `group` on `node` took, by peer (see `Endpoint.heard`);
   * undefined when none runs.
   */
  heardBy(node: string, group: string): ReadonlyMap<NodeId, HeardResponse> | undefined {
    const endpoint = this.endpoints.get(`${node}/${group}`);
    return endpoint === undefined || endpoint.closed ? undefined : endpoint.heard;
  }

  /** A node crashed or stopped: its endpoints take and send nothing more. */
  closeNode(node: string): void {
    for (const endpoint of this.endpoints.values()) if (endpoint.node === node) this.close(endpoint);
    // Its unsent round dies with it (the flush was an immediate of the dead incarnation).
    for (const [key, batch] of this.heartbeatBatches)
      if (batch.fromNode === node) this.heartbeatBatches.delete(key);
  }

  private close(endpoint: Endpoint): void {
    endpoint.closed = true;
    const key = `${endpoint.node}/${endpoint.group}`;
    if (this.endpoints.get(key) === endpoint) this.endpoints.delete(key);
  }

  private delayMs(): number {
    return this.prng.between(this.faults.delayMsMin, this.faults.delayMsMax);
  }

  private send(from: Endpoint, address: PeerAddress | undefined, message: Message): void {
    if (from.closed) return;
    this.counters.sent += 1;
    // A message to a peer the directory does not know is dropped, as the real transport drops it.
    if (address === undefined) return this.lose(from, message, false);
    const toNode = address.host;
    if (this.coalesceHeartbeats && isCoalescible(message)) return this.batchHeartbeat(from, toNode, message);
    if (!this.isLinkUp(from.node, toNode)) return this.lose(from, message, true);
    if (this.prng.chance(this.faults.dropProbability)) return this.lose(from, message, false);
    const copies = this.prng.chance(this.faults.duplicateProbability) ? 2 : 1;
    if (copies === 2) this.counters.duplicated += 1;
    for (let copy = 0; copy < copies; copy++) {
      // On the wire: delivered even if the sender pauses or crashes meanwhile.
      this.wire.setTimeout(() => this.deliver(from.node, toNode, from.group, message), this.delayMs());
    }
  }

  private deliver(fromNode: string, toNode: string, group: string, message: Message): void {
    const endpoint = this.endpoints.get(`${toNode}/${group}`);
    if (
      endpoint === undefined ||
      endpoint.closed ||
      endpoint.raftId !== message.to ||
      !this.isLinkUp(fromNode, toNode)
    ) {
      this.counters.dropped += 1;
      return;
    }
    this.counters.delivered += 1;
    const from = senderOf(fromNode);
    // Taken in the receiver's time: a paused receiver takes it when it resumes (the socket buffer).
    endpoint.clock.setImmediate(() => {
      if (endpoint.closed) return;
      this.noteResponses(endpoint, [message]);
      endpoint.handlers.onMessages([message], from);
    });
  }

  /** Queues a heartbeat for the end of its sender's round, when its node pair's batch leaves. */
  private batchHeartbeat(from: Endpoint, toNode: string, message: Message): void {
    const key = `${from.node}>${toNode}`;
    let batch = this.heartbeatBatches.get(key);
    if (batch === undefined) {
      batch = { fromNode: from.node, toNode, entries: [] };
      this.heartbeatBatches.set(key, batch);
      const leaving = batch;
      from.clock.setImmediate(() => this.sendHeartbeatBatch(key, leaving));
    }
    batch.entries.push({ endpoint: from, message });
  }

  /** One coalesced heartbeat: encoded and decoded as the transport does, with one fate for all. */
  private sendHeartbeatBatch(key: string, batch: HeartbeatBatch): void {
    if (this.heartbeatBatches.get(key) !== batch) return;
    this.heartbeatBatches.delete(key);
    const { fromNode, toNode, entries } = batch;
    if (!this.isLinkUp(fromNode, toNode) || this.prng.chance(this.faults.dropProbability)) {
      const unreachable = !this.isLinkUp(fromNode, toNode);
      for (const { endpoint, message } of entries) this.lose(endpoint, message, unreachable);
      return;
    }
    const writer = new BufferWriter(1024);
    encodeHeartbeatSection(
      writer,
      entries.map(({ endpoint, message }) => ({ groupId: endpoint.group, message })),
    );
    const runs = decodeGroupMessages(new BufferReader(writer.takeBytes()));
    this.counters.coalescedHeartbeats += 1;
    this.counters.coalescedHeartbeatEntries += entries.length;
    const copies = this.prng.chance(this.faults.duplicateProbability) ? 2 : 1;
    if (copies === 2) this.counters.duplicated += 1;
    for (let copy = 0; copy < copies; copy++) {
      this.wire.setTimeout(() => this.deliverRuns(fromNode, toNode, runs), this.delayMs());
    }
  }

  private deliverRuns(fromNode: string, toNode: string, runs: readonly GroupRun[]): void {
    this.maybeAnswerAtNode(fromNode, toNode, runs);
    for (const run of runs) {
      const endpoint = this.endpoints.get(`${toNode}/${run.groupId}`);
      if (endpoint === undefined || endpoint.closed || !this.isLinkUp(fromNode, toNode)) {
        this.counters.dropped += run.messages.length;
        continue;
      }
      const accepted = run.messages.filter((message) => message.to === endpoint.raftId);
      this.counters.dropped += run.messages.length - accepted.length;
      if (accepted.length === 0) continue;
      this.counters.delivered += accepted.length;
      const from = senderOf(fromNode);
      endpoint.clock.setImmediate(() => {
        if (endpoint.closed) return;
        this.noteResponses(endpoint, accepted);
        endpoint.handlers.onMessages(accepted, from);
      });
    }
  }

  private noteResponses(endpoint: Endpoint, messages: readonly Message[]): void {
    for (const message of messages) {
      if (message.type === 'MsgAppResp' || message.type === 'MsgHeartbeatResp')
        endpoint.heard.set(message.from, { atMs: this.wire.nowMs(), term: message.term });
    }
  }

  /**
   * The planted bug of the coalescer, when one is planted: the node that received a coalesced
   * heartbeat answers it itself (`nodeResponsesTo`), in its own next round, before its replicas
   * handle it, and whether or not they do. The answers travel back as one coalesced heartbeat.
   */
  private maybeAnswerAtNode(fromNode: string, toNode: string, runs: readonly GroupRun[]): void {
    if (this.coalescerMutant === undefined || !this.isLinkUp(fromNode, toNode)) return;
    const answers = nodeResponsesTo(
      runs.flatMap((run) => run.messages.map((message) => ({ groupId: run.groupId, message }))),
      this.coalescerMutant,
    );
    if (answers.length === 0) return;
    // The node's own round: a paused node answers when it resumes, a crashed one never.
    const clock = [...this.endpoints.values()].find((endpoint) => endpoint.node === toNode)?.clock;
    if (clock === undefined) return;
    clock.setImmediate(() => {
      if (clock.dead || !this.isLinkUp(toNode, fromNode) || this.prng.chance(this.faults.dropProbability))
        return;
      this.counters.nodeResponses += answers.length;
      const writer = new BufferWriter(1024);
      encodeHeartbeatSection(writer, answers);
      const back = decodeGroupMessages(new BufferReader(writer.takeBytes()));
      this.wire.setTimeout(() => this.deliverRuns(toNode, fromNode, back), this.delayMs());
    });
  }

  private lose(from: Endpoint, message: Message, unreachable: boolean): void {
    this.counters.dropped += 1;
    from.clock.setImmediate(() => {
      if (from.closed) return;
      if (unreachable) from.handlers.onUnreachable(message.to);
      if (message.type === 'MsgSnap') from.handlers.onSnapshotMessageDropped(message.to);
    });
  }

  /**
   * Streams a snapshot chunk by chunk, each after a link delay, waiting for the receiver to take
   * each one (backpressure). Fails when the link is cut, the peer is unknown or gone, or the
   * receiver refuses a chunk; the receiver is then told the stream was aborted.
   */
  private async stream(
    from: Endpoint,
    address: PeerAddress | undefined,
    to: NodeId,
    snapshotId: string,
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    this.counters.snapshotStreams += 1;
    if (address === undefined) throw new Error(`sim: ${to} is not a peer`);
    let sequence = 0;
    let receiver: Endpoint | undefined;
    const hop = async (bytes: Uint8Array, last: boolean): Promise<void> => {
      await new Promise<void>((resolve) => from.clock.setTimeout(resolve, this.delayMs()));
      const target = this.endpoints.get(`${address.host}/${from.group}`);
      if (from.closed || target === undefined || target.closed || !this.isLinkUp(from.node, address.host))
        throw new Error('sim: snapshot stream broken');
      // The node transport refuses a stream whose header names another replica (`wrongReceiver`).
      if (target.raftId !== to)
        throw new Error(`sim: ${address.host} hosts no replica ${to} of ${from.group}`);
      if (receiver !== undefined && target !== receiver) throw new Error('sim: the receiver restarted');
      receiver = target;
      await target.handlers.onSnapshotChunk({
        from: from.raftId,
        snapshotId,
        sequence: sequence++,
        last,
        bytes,
      });
    };
    try {
      for await (const chunk of chunks) {
        for (let offset = 0; offset < chunk.byteLength; offset += snapshotChunkBytesMax)
          await hop(chunk.subarray(offset, offset + snapshotChunkBytesMax), false);
      }
      await hop(new Uint8Array(0), true);
    } catch (error) {
      this.counters.snapshotStreamsFailed += 1;
      const target = receiver;
      if (target !== undefined && !target.closed)
        target.clock.setImmediate(() =>
          target.handlers.onSnapshotAborted({
            from: from.raftId,
            snapshotId,
            reason: (error as Error).message,
          }),
        );
      throw error;
    }
  }
}
