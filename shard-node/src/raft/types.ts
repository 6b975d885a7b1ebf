/**
 * The data types of the Raft core: log entries, messages, persistent and volatile state, snapshots,
 * configuration changes, and the Ready batch handed to the host. They mirror etcd's raftpb, with
 * TypeScript unions instead of protobuf enums.
 *
 * Nothing here holds behaviour; the state machine lives in `raft.ts` and the host-facing API in
 * `raw-node.ts`.
 */

/** A replica id. Ids are positive integers; 0 (`NONE`) means "no node" (no leader, no vote). */
export type NodeId = number;

/** The id that means "no node": no leader known, no vote cast. */
export const NONE: NodeId = 0;

/**
 * What an entry's `data` holds.
 * - `normal`: an opaque command for the state machine (empty data is the no-op a new leader appends).
 * - `confChange`: a single membership change (`ConfChange`), encoded by `encodeConfChange`.
 * - `confChangeV2`: a joint or multi-step membership change (`ConfChangeV2`); empty `changes` means
 *   "leave the joint configuration".
 */
export type EntryType = 'normal' | 'confChange' | 'confChangeV2';

/** One entry of the replicated log. Entries are immutable once they are in a log. */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** The state that must be durable before any message that depends on it is sent. */
export interface HardState {
  readonly term: number;
  /** The candidate voted for in `term`, or NONE. */
  readonly vote: NodeId;
  /** The highest index known to be committed. */
  readonly commit: number;
}

/** A membership configuration, as stored in snapshots and returned by `applyConfChange`. */
export interface ConfState {
  /** Voters of the incoming (or only) majority. */
  readonly voters: readonly NodeId[];
  /** Non-voting members that receive the log. */
  readonly learners: readonly NodeId[];
  /** Voters of the outgoing majority while in a joint configuration; empty otherwise. */
  readonly votersOutgoing: readonly NodeId[];
  /**
   * Nodes that become learners when the joint configuration is left. They are voters in the
   * outgoing majority until then (a voter demoted to learner in a joint change).
   */
  readonly learnersNext: readonly NodeId[];
  /** Whether the leader leaves the joint configuration by itself once it is applied. */
  readonly autoLeave: boolean;
}

export interface SnapshotMetadata {
  /** The index of the last entry the snapshot covers. */
  readonly index: number;
  /** The term of that entry. */
  readonly term: number;
  /** The configuration as of `index`. */
  readonly confState: ConfState;
}

/** A state machine snapshot; `data` is opaque to the core. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

/**
 * Message types, named as in etcd raft. Local types (`MsgHup`, `MsgBeat`, `MsgUnreachable`,
 * `MsgSnapStatus`, `MsgCheckQuorum`) never cross the network; `RawNode.step` refuses them.
 * `MsgRebuildRequest` is the host's own and the core never sees it: a replica whose state machine
 * has a storage fault asks its leader for a snapshot of the state machine with it (its `context`
 * names the stream), without touching its Raft log (docs/replication.md).
 */
export type MessageType =
  | 'MsgHup'
  | 'MsgBeat'
  | 'MsgProp'
  | 'MsgApp'
  | 'MsgAppResp'
  | 'MsgVote'
  | 'MsgVoteResp'
  | 'MsgSnap'
  | 'MsgHeartbeat'
  | 'MsgHeartbeatResp'
  | 'MsgUnreachable'
  | 'MsgSnapStatus'
  | 'MsgCheckQuorum'
  | 'MsgTransferLeader'
  | 'MsgTimeoutNow'
  | 'MsgReadIndex'
  | 'MsgReadIndexResp'
  | 'MsgPreVote'
  | 'MsgPreVoteResp'
  | 'MsgRebuildRequest';

/**
 * A Raft message. Every field is always present (zero when unused) so that hosts can encode
 * messages with a fixed layout; `snapshot` is present only on `MsgSnap`.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's term; 0 for local messages and for proposals forwarded by a follower. */
  readonly term: number;
  /** The term of the entry at `index` (MsgApp, votes), or the hint term of a rejection. */
  readonly logTerm: number;
  /**
   * MsgApp: the index preceding `entries`. MsgAppResp: the acknowledged or rejected index.
   * MsgHeartbeat with lease reads: the leader's send time (its ticks as leader, plus one), which
   * MsgHeartbeatResp echoes. MsgSnapStatus: the index of the snapshot the host sent, when it
   * sent a newer one than the MsgSnap's (`RawNode.reportSnapshot`). 0 otherwise.
   */
  readonly index: number;
  readonly entries: readonly Entry[];
  /** The sender's commit index (MsgApp, MsgHeartbeat). */
  readonly commit: number;
  readonly snapshot?: Snapshot;
  readonly reject: boolean;
  /** On a rejected MsgAppResp: the index the follower suggests probing next (with `logTerm`). */
  readonly rejectHint: number;
  /**
   * Opaque bytes: the read request context on MsgReadIndex/MsgReadIndexResp and on heartbeats,
   * or `CAMPAIGN_TRANSFER_CONTEXT` on votes caused by a leadership transfer.
   */
  readonly context: Uint8Array;
}

/** The kind of one membership change. */
export type ConfChangeType = 'addNode' | 'addLearnerNode' | 'removeNode';

/** One change inside a `ConfChangeV2`. */
export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

/** A single membership change (etcd's ConfChange): applied without a joint configuration. */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
  readonly context?: Uint8Array;
}

/**
 * How a `ConfChangeV2` is carried out.
 * - `auto`: a simple change if there is one change that keeps a single majority; otherwise joint
 *   consensus, left automatically.
 * - `implicit`: always joint consensus, left automatically once applied.
 * - `explicit`: always joint consensus; the application proposes an empty ConfChangeV2 to leave.
 */
export type ConfChangeTransition = 'auto' | 'implicit' | 'explicit';

/** A possibly joint membership change (etcd's ConfChangeV2). No changes means "leave joint". */
export interface ConfChangeV2 {
  readonly transition: ConfChangeTransition;
  readonly changes: readonly ConfChangeSingle[];
  readonly context?: Uint8Array;
}

/** A linearizable read that may now be served once the applied index reaches `index`. */
export interface ReadState {
  readonly index: number;
  readonly requestContext: Uint8Array;
}

/**
 * The role of a node. Learners are followers that are not voters (see `Status.isLearner`); they
 * never become candidates.
 */
export type Role = 'follower' | 'candidate' | 'precandidate' | 'leader';

/** Volatile state that is useful to the host (for logging or redirecting clients) but never persisted. */
export interface SoftState {
  readonly leaderId: NodeId;
  readonly role: Role;
}

/**
 * Everything the host must do after the core changed. The host processes one Ready at a time, in
 * this order, then calls `RawNode.advance(ready)` before asking for the next one:
 *
 *   1. persist `snapshot`, `entries` and `hardState` (one fsync if `mustSync`),
 *   2. send `messages`,
 *   3. apply `snapshot` then `committedEntries` to the state machine, serve `readStates`,
 *   4. call `advance(ready)`.
 *
 * Steps 2 and 3 may run concurrently once step 1 is done.
 */
export interface Ready {
  /**
   * The new leader and role, present only when they changed. Volatile: never persisted. It may be
   * used at once (e.g. to redirect clients); it does not wait for anything.
   */
  readonly softState?: SoftState;
  /**
   * The new term, vote and commit index, present only when they changed. Must be durable before
   * `messages` are sent: a vote or an acknowledgement must never outlive a crash that forgot it.
   */
  readonly hardState?: HardState;
  /**
   * Reads confirmed by a quorum. Serve each one only after the state machine has applied at least
   * `index` (which may need the `committedEntries` of this or a later Ready).
   */
  readonly readStates: readonly ReadState[];
  /**
   * New log entries, in index order. They may overwrite (truncate) entries of earlier Readys from
   * the same index on. Must be durable before `messages` are sent and before `committedEntries`
   * are applied (a committed entry may be in this very batch).
   */
  readonly entries: readonly Entry[];
  /**
   * A snapshot to install, present only when the leader sent one. Persist it with `entries`
   * (before `messages` are sent), and install it in the state machine before applying
   * `committedEntries`, which follow it.
   */
  readonly snapshot?: Snapshot;
  /**
   * Entries committed by a quorum, in index order, to apply after `snapshot` and after `entries`
   * are durable. At most `maxCommittedBytesPerReady` (but at least one entry); the rest come in
   * later Readys. Conf-change entries must be applied through `RawNode.applyConfChange`.
   */
  readonly committedEntries: readonly Entry[];
  /**
   * Messages to send, after `hardState`, `entries` and `snapshot` are durable: a follower's
   * MsgAppResp and MsgVoteResp acknowledge exactly that state. Delivery may be lossy, duplicated
   * and reordered; the protocol tolerates it. Report failures with `reportUnreachable` and
   * `reportSnapshot`.
   */
  readonly messages: readonly Message[];
  /** Whether step 1 needs an fsync: true with new entries, a snapshot, or a new term or vote. */
  readonly mustSync: boolean;
}

/** The state of the leader's view of one follower. */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A leader's view of one peer, in `Status.progress`. */
export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly recentActive: boolean;
  /** Whether sending is paused (probe sent, inflight window full, or snapshot in flight). */
  readonly paused: boolean;
  readonly inflightMessages: number;
  readonly inflightBytes: number;
  readonly pendingSnapshot: number;
}

/** A snapshot of a node's state, for hosts, metrics, tests and the simulator. */
export interface Status {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly leaderId: NodeId;
  readonly role: Role;
  /** True when this node is a learner (a non-voting follower) in the current configuration. */
  readonly isLearner: boolean;
  /** The target of a leadership transfer in progress (leader only), or NONE. */
  readonly leadTransferee: NodeId;
  /** The current configuration. */
  readonly config: ConfState;
  /** Per-peer progress, keyed by node id; present only on the leader. */
  readonly progress?: ReadonlyMap<NodeId, ProgressStatus>;
}

/** Fields attached to a log line. */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

/**
 * The logger the core writes through. Messages read like `raft: became leader`, with the ids and
 * terms in `fields`. The core never logs at a rate above one line per message or tick.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}
