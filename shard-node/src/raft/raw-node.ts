/**
 * RawNode: the host-facing API of the core. The host feeds it ticks, messages and proposals, and
 * drains it through Readys:
 *
 *   while (node.hasReady()) {
 *     const ready = node.ready();
 *     persist(ready.snapshot, ready.entries, ready.hardState); // fsync if ready.mustSync
 *     send(ready.messages);
 *     apply(ready.snapshot, ready.committedEntries);           // conf changes via applyConfChange
 *     serve(ready.readStates);
 *     node.advance(ready);
 *   }
 *
 * Everything is synchronous and deterministic given the same inputs and the same seeded random.
 */
import type { Config } from './config.js';
import { encodeConfChange } from './confchange-codec.js';
import { EMPTY_BYTES } from './entry.js';
import { assert, RaftError } from './errors.js';
import { Raft } from './raft.js';
import {
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type MessageType,
  NONE,
  type NodeId,
  type ProgressStatus,
  type Ready,
  type SoftState,
  type Status,
} from './types.js';

const localMessageTypes: ReadonlySet<MessageType> = new Set<MessageType>([
  'MsgHup',
  'MsgBeat',
  'MsgUnreachable',
  'MsgSnapStatus',
  'MsgCheckQuorum',
  // The host's own (a rebuild request between replicas): never the core's to step.
  'MsgRebuildRequest',
]);

const responseMessageTypes: ReadonlySet<MessageType> = new Set<MessageType>([
  'MsgAppResp',
  'MsgVoteResp',
  'MsgHeartbeatResp',
  'MsgPreVoteResp',
]);

function localMessage(type: MessageType, from: NodeId, fields: Partial<Message> = {}): Message {
  return {
    type,
    from,
    to: NONE,
    term: 0,
    logTerm: 0,
    index: fields.index ?? 0,
    entries: fields.entries ?? [],
    commit: 0,
    reject: fields.reject ?? false,
    rejectHint: 0,
    context: fields.context ?? EMPTY_BYTES,
  };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** Throws a RaftError, so that proposal outcomes reach the caller as exceptions with a code. */
function throwIfError(error: RaftError | undefined): void {
  if (error !== undefined) {
    throw error;
  }
}

export class RawNode {
  /** The state machine. Exposed for tests and diagnostics; hosts use the methods below. */
  readonly raft: Raft;
  private previousSoftState: SoftState;
  private previousHardState: HardState;
  /** The Ready handed out and not yet advanced; only one may be outstanding. */
  private outstandingReady: Ready | undefined = undefined;

  constructor(config: Config) {
    this.raft = new Raft(config);
    this.previousSoftState = this.raft.softState();
    this.previousHardState = this.raft.hardState();
  }

  /** Advances logical time by one tick (elections, heartbeats, CheckQuorum, transfer timeouts). */
  tick(): void {
    this.raft.tick();
  }

  /**
   * Starts an election now (with a pre-vote if configured). With lease reads it is ignored while
   * this node may be part of a leader's lease (it heard from a leader, or restarted, less than an
   * election timeout ago); `transferLeadership` is the way to move leadership then.
   */
  campaign(): void {
    this.raft.step(localMessage('MsgHup', this.raft.id));
  }

  /**
   * Proposes a command. On a follower it is forwarded to the leader; the outcome is known only
   * when the entry shows up committed. On the leader the entry is appended at once and sent to
   * followers with the next Ready, together with every other proposal made until then. Throws a RaftError (RAFT_NO_LEADER,
   * RAFT_FORWARDING_DISABLED, RAFT_TRANSFER_IN_PROGRESS, RAFT_UNCOMMITTED_LIMIT,
   * RAFT_PROPOSAL_DROPPED) when it is dropped at once.
   */
  propose(data: Uint8Array): void {
    this.proposeEntries([{ term: 0, index: 0, type: 'normal', data }]);
  }

  /** Proposes several commands in one message (one append, one broadcast). */
  proposeBatch(data: readonly Uint8Array[]): void {
    assert(data.length > 0, 'proposeBatch needs at least one command');
    const entries: Entry[] = new Array<Entry>(data.length);
    for (let i = 0; i < data.length; i++) {
      entries[i] = { term: 0, index: 0, type: 'normal', data: data[i]! };
    }
    this.proposeEntries(entries);
  }

  /**
   * Proposes a membership change. Throws RAFT_CONF_CHANGE_PENDING while an earlier change is not
   * applied, RAFT_CONF_CHANGE_INVALID when it does not fit the joint state, and the errors of
   * `propose`. When the entry is committed, the host calls `applyConfChange` with it.
   */
  proposeConfChange(change: ConfChange | ConfChangeV2): void {
    const { type, data } = encodeConfChange(change);
    this.proposeEntries([{ term: 0, index: 0, type, data }]);
  }

  private proposeEntries(entries: readonly Entry[]): void {
    throwIfError(this.raft.step(localMessage('MsgProp', this.raft.id, { entries })));
  }

  /**
   * Applies a committed conf change to the configuration and returns the new one, which the host
   * stores with its next snapshot. Throws a RaftError (RAFT_CONF_CHANGE_INVALID) if the change
   * does not apply; the configuration is then unchanged.
   */
  applyConfChange(change: ConfChange | ConfChangeV2): ConfState {
    return this.raft.applyConfChange(change);
  }

  /**
   * Feeds a message from the network. Returns (does not throw) a RaftError for messages that are
   * refused as operating errors: local message types (RAFT_STEP_LOCAL_MESSAGE), responses from
   * nodes outside the configuration (RAFT_STEP_PEER_NOT_FOUND), and dropped forwarded proposals.
   */
  step(message: Message): RaftError | undefined {
    if (localMessageTypes.has(message.type)) {
      return new RaftError('RAFT_STEP_LOCAL_MESSAGE');
    }
    if (responseMessageTypes.has(message.type) && !this.raft.tracker.progress.has(message.from)) {
      return new RaftError('RAFT_STEP_PEER_NOT_FOUND');
    }
    return this.raft.step(message);
  }

  /**
   * Requests a linearizable read. When confirmed, a ReadState with the same context appears in a
   * Ready; the read may be served once the applied index reaches its index. A read on a node
   * without a leader is dropped silently (retry after a timeout).
   */
  readIndex(context: Uint8Array): void {
    this.raft.step(localMessage('MsgReadIndex', this.raft.id, { context }));
  }

  /**
   * Makes this node unpromotable until `allowCampaigns`: it never campaigns, and steps down at once if it
   * leads (telling a caught-up voter to campaign). For a host whose state machine is damaged: it
   * keeps voting and appending, since its log is healthy, but must never lead.
   */
  forbidCampaigns(): void {
    this.raft.forbidCampaigns();
  }

  /** The index of the last entry of the log (unstable entries included). */
  lastIndex(): number {
    return this.raft.raftLog.lastIndex();
  }

  /** Lifts `forbidCampaigns`: the host's state machine was rebuilt and can be trusted again. */
  allowCampaigns(): void {
    this.raft.campaignsForbidden = false;
  }

  /** Asks the leader to hand leadership to `transferee` (thesis §3.10). */
  transferLeadership(transferee: NodeId): void {
    this.raft.step(localMessage('MsgTransferLeader', transferee));
  }

  /** Tells the leader that the last message to `id` failed to send. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(localMessage('MsgUnreachable', id));
  }

  /**
   * Tells the leader whether sending a snapshot to `id` succeeded. The host must report every
   * MsgSnap it was given: until the report (or the follower's acknowledgement of the snapshot)
   * the leader sends that follower nothing else. A host that sent a newer snapshot than the
   * MsgSnap's (its state machine as it was when sending began) gives its index as
   * `snapshotIndex`: the leader then probes the follower from after it, not from after the one it
   * asked for, whose following entries it may have compacted meanwhile.
   */
  reportSnapshot(id: NodeId, succeeded: boolean, snapshotIndex = 0): void {
    this.raft.step(localMessage('MsgSnapStatus', id, { reject: !succeeded, index: snapshotIndex }));
  }

  /** Whether `ready()` would return something to do. False while a Ready awaits `advance`. */
  hasReady(): boolean {
    if (this.outstandingReady !== undefined) {
      return false;
    }
    const raft = this.raft;
    const softState = raft.softState();
    if (
      softState.leaderId !== this.previousSoftState.leaderId ||
      softState.role !== this.previousSoftState.role
    ) {
      return true;
    }
    if (!hardStateEqual(raft.hardState(), this.previousHardState)) {
      return true;
    }
    return (
      raft.raftLog.hasPendingSnapshot() ||
      raft.messages.length > 0 ||
      raft.pendingAppendBroadcast ||
      raft.pendingReadHeartbeatContext !== undefined ||
      raft.raftLog.unstable.entries.length > 0 ||
      raft.raftLog.hasNextCommittedEntries() ||
      raft.readStates.length > 0
    );
  }

  /**
   * Returns what the host must persist, send and apply now (see `Ready` for the ordering rules).
   * Call `advance(ready)` when done, before the next `ready()`.
   */
  ready(): Ready {
    assert(this.outstandingReady === undefined, 'ready() called again before advance()');
    const raft = this.raft;
    // Proposals and reads queued since the last Ready share a single MsgApp per follower and a
    // single heartbeat round.
    raft.flushAppendBroadcast();
    raft.flushReadIndexHeartbeats();
    const softState = raft.softState();
    const hardState = raft.hardState();
    const entries = raft.raftLog.unstableEntries();
    const softChanged =
      softState.leaderId !== this.previousSoftState.leaderId ||
      softState.role !== this.previousSoftState.role;
    const hardChanged = !hardStateEqual(hardState, this.previousHardState);
    const snapshot = raft.raftLog.unstable.snapshot;
    // Built field by field rather than with object spreads, which are slow on this hot path.
    const ready: Mutable<Ready> = {
      readStates: raft.readStates,
      entries,
      committedEntries: raft.raftLog.nextCommittedEntries(),
      messages: raft.messages,
      mustSync:
        entries.length > 0 ||
        snapshot !== undefined ||
        hardState.term !== this.previousHardState.term ||
        hardState.vote !== this.previousHardState.vote,
    };
    if (softChanged) ready.softState = softState;
    if (hardChanged) ready.hardState = hardState;
    if (snapshot !== undefined) ready.snapshot = snapshot;
    if (softChanged) {
      this.previousSoftState = softState;
    }
    raft.readStates = [];
    raft.messages = [];
    this.outstandingReady = ready;
    return ready;
  }

  /**
   * Reports that the host finished the Ready: its entries and snapshot are durable and its
   * committed entries applied. The core marks them stable and applied and may then produce more.
   */
  advance(ready: Ready): void {
    assert(
      this.outstandingReady === ready,
      'advance() must be called with the last Ready returned by ready()',
    );
    this.outstandingReady = undefined;
    const raft = this.raft;
    if (ready.hardState !== undefined) {
      this.previousHardState = ready.hardState;
    }
    const lastCommitted = ready.committedEntries[ready.committedEntries.length - 1];
    const newApplied = lastCommitted?.index ?? ready.snapshot?.metadata.index ?? 0;
    if (ready.entries.length > 0) {
      const last = ready.entries[ready.entries.length - 1]!;
      raft.raftLog.stableTo(last.index, last.term);
    }
    if (ready.snapshot !== undefined) {
      raft.raftLog.stableSnapshotTo(ready.snapshot.metadata.index);
    }
    if (newApplied > 0) {
      raft.advanceApplied(newApplied);
    }
    raft.reduceUncommittedSize(ready.committedEntries);
  }

  /** The node's current state; `progress` only on the leader. */
  status(): Status {
    const raft = this.raft;
    let progress: Map<NodeId, ProgressStatus> | undefined;
    if (raft.role === 'leader') {
      progress = new Map();
      for (const id of raft.tracker.ids()) {
        progress.set(id, raft.tracker.progress.get(id)!.toStatus());
      }
    }
    return {
      id: raft.id,
      term: raft.term,
      vote: raft.vote,
      commit: raft.raftLog.committed,
      applied: raft.raftLog.applied,
      leaderId: raft.leaderId,
      role: raft.role,
      isLearner: raft.isLearner,
      leadTransferee: raft.leadTransferee,
      config: raft.tracker.confState(),
      ...(progress === undefined ? {} : { progress }),
    };
  }
}
