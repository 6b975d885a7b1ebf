import type { Message, NodeId } from '../raft/index.js';
import type { SnapshotAbort, SnapshotChunk } from '../transport/index.js';
import type { PeerAddress, PeerLinks } from './member-directory.js';

/**
 * What the host needs of a peer transport. Production opens a `PeerTransport`; the simulator
 * gives the same host a network of its own.
 */
export interface ReplicaTransport extends PeerLinks {
  /** The port peers reach this replica on (0 when it has none). */
  readonly port: number;
  /** Sends messages without waiting; those to an unreachable peer are dropped (Raft resends). */
  send(messages: readonly Message[]): void;
  /** Streams a snapshot to `to`; resolves once the receiver took the last chunk, rejects otherwise. */
  sendSnapshotChunks(to: NodeId, snapshotId: string, chunks: AsyncIterable<Uint8Array>): Promise<unknown>;
  stop(): Promise<void>;
}

/**
 * The transport of a group of one, which sends nothing: a replica with no peers (the node start
 * benchmark, tests about the host itself) opens no port and registers no transport metrics.
 */
export const nullTransport: ReplicaTransport = {
  port: 0,
  send: () => {},
  sendSnapshotChunks: () => Promise.reject(new Error('a group of one has no peer')),
  hasPeer: () => false,
  addPeer: () => {},
  updatePeer: () => {},
  removePeer: () => {},
  stop: () => Promise.resolve(),
};

/** Who sent a run of inbound messages, as the transport's handshake proved it. */
export interface InboundSender {
  /**
   * The sending node's advertised peer address, which its hello named and its proof of the
   * cluster secret covered (`node-hello.ts`): where a sender this replica does not know yet can be
   * answered (`MemberDirectory.reachProvisionally`).
   */
  readonly address: PeerAddress;
}

/** What the transport hands the host. */
export interface ReplicaTransportHandlers {
  /**
   * Messages for this replica, in order. `from` is given by a transport whose handshake proves the
   * sending node's address (a node transport's); without it, only members' messages are taken.
   */
  readonly onMessages: (messages: Message[], from?: InboundSender) => void;
  /** Chunks of one inbound stream, in order; a rejection aborts the stream. */
  readonly onSnapshotChunk: (chunk: SnapshotChunk) => Promise<void>;
  readonly onSnapshotAborted: (abort: SnapshotAbort) => void;
  readonly onUnreachable: (peerId: NodeId) => void;
  /** A MsgSnap could not be sent: the core must hear that the snapshot failed. */
  readonly onSnapshotMessageDropped: (peerId: NodeId) => void;
}

/** Opens the replica's transport, already reaching `peers`. */
export type OpenReplicaTransport = (
  peers: ReadonlyMap<NodeId, PeerAddress>,
  handlers: ReplicaTransportHandlers,
) => Promise<ReplicaTransport>;
