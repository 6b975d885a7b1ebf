/**
 * The Raft state machine (the etcd raft design): a pure, synchronous object that takes messages
 * and ticks and produces messages, log entries and commits. It never does I/O; `RawNode` turns
 * its state into Readys for the host.
 *
 * Role behaviour is a function chosen on each role change (`stepLeader`, `stepCandidate`,
 * `stepFollower`), as is the tick function (`tickElection`, `tickHeartbeat`); roles change only
 * through `becomeX()`.
 */
import { type ResolvedConfig, validateConfig, type Config } from './config.js';
import { asConfChangeV2, decodeConfChange, enterJointOf, isLeaveJoint } from './confchange-codec.js';
import { Changer, type ChangeResult, restoreConfiguration } from './confchange.js';
import { EMPTY_BYTES, payloadBytes } from './entry.js';
import { assert, RaftError, SnapshotTemporarilyUnavailableError, fail } from './errors.js';
import { RaftLog } from './log.js';
import { raftMutants, type RaftMutant } from './mutants.js';
import { ReadOnly } from './read-only.js';
import { ProgressTracker } from './tracker.js';
import {
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type HardState,
  type LogFields,
  type Logger,
  type Message,
  type MessageType,
  NONE,
  type NodeId,
  type ReadState,
  type Role,
  type SoftState,
} from './types.js';

/**
 * The context of a vote caused by a leadership transfer: voters grant it even while they still
 * hear from a leader (the leader asked for it).
 */
export const CAMPAIGN_TRANSFER_CONTEXT: Uint8Array = new TextEncoder().encode('CampaignTransfer');

type CampaignType = 'preElection' | 'election' | 'transfer';

type StepFunction = (raft: Raft, message: Message) => RaftError | undefined;

/** Fields a message is built from; everything else defaults to zero/empty. */
type MessageFields = Partial<Message> & { readonly type: MessageType; readonly to: NodeId };

function newMessage(fields: MessageFields, from: NodeId, term: number): Message {
  // Every message has the same shape (all fields present, in the same order), which keeps the
  // engine's property access monomorphic on the hot path.
  const message: Message = {
    type: fields.type,
    from: fields.from ?? from,
    to: fields.to,
    term: fields.term ?? term,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    entries: fields.entries ?? [],
    commit: fields.commit ?? 0,
    reject: fields.reject ?? false,
    rejectHint: fields.rejectHint ?? 0,
    context: fields.context ?? EMPTY_BYTES,
  };
  if (fields.snapshot !== undefined) {
    return { ...message, snapshot: fields.snapshot };
  }
  return message;
}

function voteResponseType(type: MessageType): MessageType {
  switch (type) {
    case 'MsgVote':
      return 'MsgVoteResp';
    case 'MsgPreVote':
      return 'MsgPreVoteResp';
    default:
      throw new Error(`raft: not a vote message: ${type}`);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  readonly raftLog: RaftLog;
  readonly tracker: ProgressTracker;
  role: Role = 'follower';
  /** Whether this node is a learner in the current configuration (it never campaigns). */
  isLearner = false;
  /** Outgoing messages, drained into each Ready. */
  messages: Message[] = [];
  /** Confirmed reads, drained into each Ready. */
  readStates: ReadState[] = [];
  leaderId: NodeId = NONE;
  /** The target of a leadership transfer in progress (leader only), or NONE. */
  leadTransferee: NodeId = NONE;
  /**
   * The index of the latest conf change in the log. Only one may be pending at a time: a new one
   * is refused until this one is applied.
   */
  pendingConfIndex = 0;
  /** Payload bytes of the leader's entries not yet committed; bounded by the config. */
  uncommittedSizeBytes = 0;
  readOnly: ReadOnly;
  /**
   * Ticks since the last election timeout reset (followers and candidates), or since the last
   * CheckQuorum round (leaders).
   */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  /** The election timeout for this term, drawn in [electionTimeout, 2 * electionTimeout). */
  randomizedElectionTimeout = 0;
  /**
   * Reads that arrived before this leader committed an entry of its term; until then its commit
   * index may be behind the true one, so they wait (thesis §6.4 step 1).
   */
  pendingReadIndexMessages: Message[] = [];
  /**
   * The newest read context waiting for a heartbeat round. Reads arriving between two Readys
   * share one round: the broadcast is deferred to `flushReadIndexHeartbeats`.
   */
  pendingReadHeartbeatContext: Uint8Array | undefined = undefined;

  /** Whether a MsgTimeoutNow arrived while conf changes were unapplied; see `advanceApplied`. */
  campaignAfterApply = false;
  /** Set by the host (`forbidCampaigns`) when this node must never lead again. */
  campaignsForbidden = false;

  // The read lease (readOnlyOption 'leaseBased'); see `hasReadLease` for the rule.
  /** Ticks since this node became leader (leader only); the clock of the lease. */
  leaderTicks = 0;
  /**
   * Per follower, the send time (`leaderTicks + 1`) of the newest heartbeat it acknowledged in
   * this term. Heartbeats carry the stamp in `index` and followers echo it.
   */
  readonly leaseAckStamps = new Map<NodeId, number>();
  /**
   * Whether this leader sent MsgTimeoutNow in its term. The transferee's campaign is a forced vote
   * that followers grant inside the lease, so the lease is void for the rest of the term, even if
   * the transfer is abandoned.
   */
  leaseForfeited = false;
  /** Ticks since this node started; see `inLease`. */
  ticksSinceStart = 0;
  /** Whether this node restarted with a term (rather than starting fresh); see `inLease`. */
  private readonly restarted: boolean;

  /** Whether proposals were appended since the last Ready and still need a broadcast. */
  pendingAppendBroadcast = false;

  readonly config: ResolvedConfig;
  /**
   * Test-only: which planted bugs are on (`Config.mutants`, `mutants.ts`); all false in
   * production. Each is read where the rule it breaks is enforced, marked `MUTANT`.
   */
  readonly mutant: Readonly<Record<RaftMutant, boolean>>;
  private readonly logger: Logger;
  private stepFunction: StepFunction = stepFollower;
  private tickFunction: () => void = () => this.tickElection();

  constructor(input: Config) {
    const config = validateConfig(input);
    this.config = config;
    this.id = config.id;
    this.logger = config.logger;
    this.mutant = Object.freeze(
      Object.fromEntries(raftMutants.map((name) => [name, config.mutants.includes(name)])) as Record<
        RaftMutant,
        boolean
      >,
    );
    if (config.mutants.length > 0) {
      this.log('warn', 'raft: planted bugs are on (test only)', { mutants: config.mutants.join(',') });
    }
    this.raftLog = new RaftLog(config.storage, config.logger, config.maxCommittedBytesPerReady);
    this.tracker = new ProgressTracker(config.maxInflightMessages, config.maxInflightBytes);
    this.readOnly = new ReadOnly(config.readOnlyOption);

    const { hardState, confState } = config.storage.initialState();
    const restored = restoreConfiguration(confState, this.changerOptions());
    this.switchToConfig(restored);
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) {
      this.loadState(hardState);
    }
    this.restarted = hardState.term !== 0;
    if (config.applied > 0) {
      this.raftLog.appliedTo(config.applied);
    }
    this.becomeFollower(this.term, NONE);
    this.log('info', 'raft: newRaft', {
      peers: this.tracker.config.voters.toString(),
      term: this.term,
      commit: this.raftLog.committed,
      applied: this.raftLog.applied,
      lastIndex: this.raftLog.lastIndex(),
      lastTerm: this.raftLog.lastTerm(),
    });
  }

  log(level: keyof Logger, message: string, fields: LogFields = {}): void {
    this.logger[level](message, { id: this.id, ...fields });
  }

  private changerOptions(): { lastIndex: number; maxInflightMessages: number; maxInflightBytes: number } {
    return {
      lastIndex: this.raftLog.lastIndex(),
      maxInflightMessages: this.config.maxInflightMessages,
      maxInflightBytes: this.config.maxInflightBytes,
    };
  }

  softState(): SoftState {
    return { leaderId: this.leaderId, role: this.role };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  private loadState(state: HardState): void {
    if (!(state.commit >= this.raftLog.committed && state.commit <= this.raftLog.lastIndex())) {
      fail(
        `state.commit ${state.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
      );
    }
    this.raftLog.committed = state.commit;
    this.term = state.term;
    this.vote = state.vote;
  }

  // ---------------------------------------------------------------------------------------------
  // Sending.

  /** Queues a message; fills in `from` and, for everything but votes and proposals, the term. */
  send(fields: MessageFields): void {
    const type = fields.type;
    if (type === 'MsgVote' || type === 'MsgVoteResp' || type === 'MsgPreVote' || type === 'MsgPreVoteResp') {
      // Votes carry the term they are for, which for a pre-vote is not our term.
      if (fields.term === undefined || fields.term === 0) fail(`term should be set when sending ${type}`);
      this.messages.push(newMessage(fields, this.id, fields.term));
    } else {
      if (fields.term !== undefined && fields.term !== 0) fail(`term should not be set when sending ${type}`);
      // Proposals and read requests are forwarded with term 0, so the leader treats them as local.
      const term = type === 'MsgProp' || type === 'MsgReadIndex' ? 0 : this.term;
      this.messages.push(newMessage(fields, this.id, term));
    }
  }

  /**
   * Sends a MsgApp (or a snapshot if the entries are compacted) to `to` if its progress allows.
   * Returns whether a message was sent. With `sendIfEmpty` false, a follower that is up to date
   * gets nothing (an empty MsgApp only carries a commit index).
   */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const progress = this.tracker.progress.get(to);
    if (progress === undefined) fail(`no progress for ${to}`);
    if (progress.isPaused()) {
      return false;
    }
    const previousIndex = progress.next - 1;
    const previousTerm = this.raftLog.termOrError(previousIndex);
    let entries: readonly Entry[] | undefined;
    if (previousTerm >= 0) {
      try {
        entries = this.raftLog.entries(progress.next, this.config.maxSizePerMessageBytes);
      } catch (error) {
        if (!(error instanceof RaftError) || error.code !== 'RAFT_STORAGE_COMPACTED') throw error;
        entries = undefined;
      }
      if (entries !== undefined && entries.length === 0 && !sendIfEmpty) {
        return false;
      }
    }
    if (previousTerm < 0 || entries === undefined) {
      return this.maybeSendSnapshot(to);
    }
    this.send({
      type: 'MsgApp',
      to,
      index: previousIndex,
      logTerm: previousTerm,
      entries,
      commit: this.raftLog.committed,
    });
    progress.updateOnEntriesSend(
      entries.length,
      entries.length === 0 ? 0 : payloadBytes(entries),
      progress.next,
    );
    return true;
  }

  /** The follower needs compacted entries: send the latest snapshot instead. */
  private maybeSendSnapshot(to: NodeId): boolean {
    const progress = this.tracker.progress.get(to)!;
    if (!progress.recentActive) {
      // Snapshots are expensive; do not send one to a node we have not heard from lately.
      this.log('debug', 'raft: ignore sending snapshot to inactive peer', { to });
      return false;
    }
    let snapshot;
    try {
      snapshot = this.raftLog.snapshot();
    } catch (error) {
      if (error instanceof SnapshotTemporarilyUnavailableError) {
        this.log('debug', 'raft: failed to send snapshot because snapshot is temporarily unavailable', {
          to,
        });
        return false;
      }
      throw error;
    }
    assert(snapshot.metadata.index !== 0, 'need non-empty snapshot');
    this.log('debug', 'raft: sent snapshot', {
      to,
      snapshotIndex: snapshot.metadata.index,
      snapshotTerm: snapshot.metadata.term,
      progress: progress.toString(),
    });
    this.send({ type: 'MsgSnap', to, snapshot });
    progress.becomeSnapshot(snapshot.metadata.index);
    return true;
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Sends a heartbeat; the commit index is capped at what the follower is known to hold. */
  sendHeartbeat(to: NodeId, context: Uint8Array): void {
    // A follower must not commit entries it might not have (it may not have received them yet).
    const commit = Math.min(this.tracker.progress.get(to)!.match, this.raftLog.committed);
    // With lease reads the heartbeat carries its send time (in `index`, echoed by the follower):
    // an acknowledgement extends the lease from when the heartbeat was sent, not received.
    const index = this.config.readOnlyOption === 'leaseBased' ? this.leaderTicks + 1 : 0;
    this.send({ type: 'MsgHeartbeat', to, commit, context, index });
  }

  /**
   * Sends appends to every follower (including learners): one message even if empty (it carries
   * the commit index), then as many more as the follower's window allows, so that a large batch
   * is pipelined at once instead of one message per round trip.
   */
  broadcastAppend(): void {
    for (const id of this.tracker.ids()) {
      if (id === this.id) continue;
      this.sendAppend(id);
      while (this.maybeSendAppend(id, false)) {
        // Fill the window.
      }
    }
  }

  broadcastHeartbeat(): void {
    const context = this.readOnly.lastPendingRequestContext();
    this.pendingReadHeartbeatContext = undefined;
    this.broadcastHeartbeatWithContext(context ?? EMPTY_BYTES);
  }

  private broadcastHeartbeatWithContext(context: Uint8Array): void {
    for (const id of this.tracker.ids()) {
      if (id !== this.id) this.sendHeartbeat(id, context);
    }
  }

  /** Sends the appends that proposals since the last Ready are waiting for. */
  flushAppendBroadcast(): void {
    if (!this.pendingAppendBroadcast) {
      return;
    }
    this.pendingAppendBroadcast = false;
    if (this.role === 'leader') {
      this.broadcastAppend();
    }
  }

  /** Sends the heartbeat round that reads queued since the last Ready are waiting for. */
  flushReadIndexHeartbeats(): void {
    const context = this.pendingReadHeartbeatContext;
    if (context === undefined) {
      return;
    }
    this.pendingReadHeartbeatContext = undefined;
    if (this.role === 'leader') {
      this.broadcastHeartbeatWithContext(context);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Committing and appending.

  /** Advances the commit index to what a quorum holds, if that is an entry of this term. */
  maybeCommit(): boolean {
    const quorumIndex = this.tracker.committed();
    if (this.mutant['commit-earlier-term']) {
      // MUTANT (test only): commits what a quorum holds whatever its term (Raft paper, Figure 8).
      const quorumTerm = this.raftLog.termOrZero(quorumIndex);
      const committed = this.raftLog.maybeCommit(quorumIndex, quorumTerm);
      if (committed && quorumTerm !== this.term) {
        this.log('warn', 'raft: MUTANT committed an entry of an earlier term', {
          index: quorumIndex,
          entryTerm: quorumTerm,
          term: this.term,
        });
      }
      return committed;
    }
    return this.raftLog.maybeCommit(quorumIndex, this.term);
  }

  /**
   * Appends proposed entries to the leader's log with the current term. Returns false (appending
   * nothing) if they would exceed the uncommitted-size limit.
   */
  appendEntry(proposed: readonly Entry[]): boolean {
    if (!this.increaseUncommittedSize(proposed)) {
      this.log(
        'warn',
        'raft: appending new entries would exceed the uncommitted entry size limit; dropping proposal',
        {
          uncommittedSizeBytes: this.uncommittedSizeBytes,
          maxUncommittedEntriesBytes: this.config.maxUncommittedEntriesBytes,
        },
      );
      return false;
    }
    const lastIndex = this.raftLog.lastIndex();
    // New objects: the proposer's entries (or a forwarded message) must not be mutated, and a log
    // entry must never change after it was appended.
    const entries: Entry[] = new Array<Entry>(proposed.length);
    for (let i = 0; i < proposed.length; i++) {
      const entry = proposed[i]!;
      entries[i] = { term: this.term, index: lastIndex + 1 + i, type: entry.type, data: entry.data };
    }
    const newLastIndex = this.raftLog.append(entries);
    // The leader counts its own entries as replicated: the Ready contract makes the host persist
    // them before any message (and so any commit index) leaves this node.
    this.tracker.progress.get(this.id)?.maybeUpdate(newLastIndex);
    this.maybeCommit();
    return true;
  }

  private increaseUncommittedSize(entries: readonly Entry[]): boolean {
    const max = this.config.maxUncommittedEntriesBytes;
    const size = max === 0 ? 0 : payloadBytes(entries);
    // The first proposal always fits, however large, so that a single big entry cannot wedge the log.
    if (max !== 0 && this.uncommittedSizeBytes > 0 && size > 0 && this.uncommittedSizeBytes + size > max) {
      return false;
    }
    this.uncommittedSizeBytes += size;
    return true;
  }

  /**
   * Records that the application applied up to `index`. A leader in a joint configuration with
   * auto-leave proposes the leave as soon as the entry that entered it is applied.
   */
  advanceApplied(index: number): void {
    const oldApplied = this.raftLog.applied;
    this.raftLog.appliedTo(index);
    if (this.campaignAfterApply && this.role === 'follower' && !this.hasUnappliedConfChanges()) {
      this.campaignAfterApply = false;
      this.hup('transfer');
      return;
    }
    if (
      this.tracker.config.autoLeave &&
      oldApplied <= this.pendingConfIndex &&
      index >= this.pendingConfIndex &&
      this.role === 'leader'
    ) {
      // An empty ConfChangeV2 means "leave joint". It cannot be refused: no other change can be
      // pending (this one was just applied) and the uncommitted limit lets conf changes through.
      const appended = this.appendEntry([{ term: 0, index: 0, type: 'confChangeV2', data: EMPTY_BYTES }]);
      assert(appended, 'refused un-refusable auto-leaving ConfChangeV2');
      this.pendingConfIndex = this.raftLog.lastIndex();
      this.log('info', 'raft: initiating automatic transition out of joint configuration', {
        config: this.tracker.config.toString(),
      });
      this.broadcastAppend();
    }
  }

  /** Called with each batch of committed entries: they no longer count as uncommitted. */
  reduceUncommittedSize(entries: readonly Entry[]): void {
    if (this.uncommittedSizeBytes === 0) {
      // The fast path for followers, which never track this.
      return;
    }
    const size = payloadBytes(entries);
    // The tracking is approximate across term changes; never go below zero.
    this.uncommittedSizeBytes = size > this.uncommittedSizeBytes ? 0 : this.uncommittedSizeBytes - size;
  }

  // ---------------------------------------------------------------------------------------------
  // Ticks.

  tick(): void {
    this.ticksSinceStart++;
    this.tickFunction();
  }

  /** Followers and candidates: campaign when no leader was heard from within the timeout. */
  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      // Not through MsgHup, which is the host's request (RawNode.campaign) and may be refused
      // inside a lease; a timeout means no leader was heard from for an election timeout.
      this.hup(this.config.preVote ? 'preElection' : 'election');
    }
  }

  /** Leaders: send heartbeats, and check the quorum once per election timeout. */
  private tickHeartbeat(): void {
    this.leaderTicks++;
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) {
        this.step(newMessage({ type: 'MsgCheckQuorum', to: NONE }, this.id, 0));
      }
      // A transfer that did not finish within an election timeout is abandoned (thesis §3.10).
      if (this.role === 'leader' && this.leadTransferee !== NONE) {
        this.log('info', 'raft: leadership transfer timed out', { transferee: this.leadTransferee });
        this.abortLeaderTransfer();
      }
      // A removed leader retries its hand-over (the transferee may have been down).
      this.maybeHandOverLeadership();
    }
    if (this.role !== 'leader') {
      return;
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.step(newMessage({ type: 'MsgBeat', to: NONE }, this.id, 0));
    }
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  private resetRandomizedElectionTimeout(): void {
    const base = this.config.electionTimeoutTicks;
    const draw = Math.floor(this.config.random() * base);
    assert(draw >= 0 && draw < base, 'config.random must return numbers in [0, 1)');
    this.randomizedElectionTimeout = base + draw;
  }

  // ---------------------------------------------------------------------------------------------
  // Role changes.

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.leaderId = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.tracker.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    this.tracker.visit((id, progress) => {
      progress.match = id === this.id ? lastIndex : 0;
      progress.next = lastIndex + 1;
      progress.state = 'probe';
      progress.pendingSnapshot = 0;
      progress.probeSent = false;
      progress.recentActive = false;
      progress.inflights.reset();
    });
    this.pendingConfIndex = 0;
    this.uncommittedSizeBytes = 0;
    this.readOnly = new ReadOnly(this.config.readOnlyOption);
    this.pendingReadHeartbeatContext = undefined;
    this.pendingReadIndexMessages = [];
    this.pendingAppendBroadcast = false;
    this.campaignAfterApply = false;
    this.leaderTicks = 0;
    this.leaseAckStamps.clear();
    this.leaseForfeited = false;
  }

  becomeFollower(term: number, leaderId: NodeId): void {
    this.stepFunction = stepFollower;
    this.reset(term);
    this.tickFunction = () => this.tickElection();
    this.leaderId = leaderId;
    this.role = 'follower';
    this.log('info', 'raft: became follower', { term: this.term, leader: leaderId });
  }

  becomeCandidate(): void {
    assert(this.role !== 'leader', 'invalid transition [leader -> candidate]');
    this.stepFunction = stepCandidate;
    this.reset(this.term + 1);
    this.tickFunction = () => this.tickElection();
    this.vote = this.id;
    this.role = 'candidate';
    this.log('info', 'raft: became candidate', { term: this.term });
  }

  /**
   * A pre-candidate asks whether it could win before disrupting anyone: it keeps its term and
   * vote, so a node that cannot win (e.g. partitioned) never raises the cluster's term (§9.6).
   */
  becomePreCandidate(): void {
    assert(this.role !== 'leader', 'invalid transition [leader -> precandidate]');
    this.stepFunction = stepCandidate;
    this.tracker.resetVotes();
    this.tickFunction = () => this.tickElection();
    this.leaderId = NONE;
    this.role = 'precandidate';
    this.log('info', 'raft: became pre-candidate', { term: this.term });
  }

  becomeLeader(): void {
    assert(this.role !== 'follower', 'invalid transition [follower -> leader]');
    this.stepFunction = stepLeader;
    this.reset(this.term);
    this.tickFunction = () => this.tickHeartbeat();
    this.leaderId = this.id;
    this.role = 'leader';
    const self = this.tracker.progress.get(this.id);
    if (self === undefined) fail('a node outside the configuration cannot become leader');
    // The leader's own log is, by definition, replicated to itself.
    self.becomeReplicate();
    self.recentActive = true;
    // Conservatively assume the log holds an unapplied conf change: the no-op below bounds it,
    // and no new change is accepted until everything up to here is applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // A no-op entry of the new term lets the leader commit everything before it (§5.4.2, §8).
    const appended = this.appendEntry([{ term: 0, index: 0, type: 'normal', data: EMPTY_BYTES }]);
    assert(appended, 'empty entry was dropped');
    // The no-op has no payload, but do not let it count against the proposal limit anyway.
    this.uncommittedSizeBytes = 0;
    this.log('info', 'raft: became leader', { term: this.term });
  }

  // ---------------------------------------------------------------------------------------------
  // Elections.

  /** Starts an election if this node can (a voter, not leader, no unapplied conf change). */
  hup(type: CampaignType): void {
    if (this.role === 'leader') {
      this.log('debug', 'raft: ignoring MsgHup because already leader');
      return;
    }
    if (!this.promotable()) {
      this.log('warn', 'raft: is unpromotable and can not campaign');
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      // The configuration we would campaign in may be about to change; wait until it is applied.
      this.log('warn', 'raft: cannot campaign, there are unapplied conf changes', {
        term: this.term,
        applied: this.raftLog.applied,
        committed: this.raftLog.committed,
      });
      return;
    }
    this.log('info', 'raft: is starting a new election', { term: this.term });
    this.campaign(type);
  }

  hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) {
      return false;
    }
    const entries = this.raftLog.slice(this.raftLog.applied + 1, this.raftLog.committed + 1, Infinity);
    return entries.some((entry) => entry.type !== 'normal');
  }

  /**
   * Whether this node may become leader: a voter of its own configuration, not installing a
   * snapshot, and not forbidden to campaign by its host.
   */
  promotable(): boolean {
    const self = this.tracker.progress.get(this.id);
    return (
      self !== undefined && !self.isLearner && !this.raftLog.hasPendingSnapshot() && !this.campaignsForbidden
    );
  }

  /**
   * The host's state machine can no longer be trusted (a storage fault): this node must not lead.
   * From now on it never campaigns (not on a timeout, not on MsgTimeoutNow), and a leader steps
   * down at once, first telling the most caught-up voter to campaign (MsgTimeoutNow, as a leader
   * transfer does) so that the group elects a new leader without waiting for an election
   * timeout. It still votes and appends: its log is healthy.
   */
  forbidCampaigns(): void {
    this.campaignsForbidden = true;
    if (this.role !== 'leader') return;
    let transferee: NodeId = NONE;
    let transfereeMatch = -1;
    for (const [id, progress] of this.tracker.progress) {
      if (id === this.id || progress.isLearner || !this.tracker.config.voters.has(id)) continue;
      if (progress.match > transfereeMatch) {
        transferee = id;
        transfereeMatch = progress.match;
      }
    }
    // A transferee behind the log could lose its election to a voter that is not: only one that
    // holds the whole log is told to campaign; otherwise the followers' timeouts elect.
    if (transferee !== NONE && transfereeMatch === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
    this.log('warn', 'raft: stepped down (campaigns forbidden by the host)', { term: this.term, transferee });
    this.becomeFollower(this.term, NONE);
  }

  campaign(type: CampaignType): void {
    if (!this.promotable()) {
      this.log('warn', 'raft: is unpromotable; campaign() should have been called');
    }
    let voteType: MessageType;
    let term: number;
    if (type === 'preElection') {
      this.becomePreCandidate();
      voteType = 'MsgPreVote';
      // A pre-vote asks for the term we would campaign in, without moving to it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = 'MsgVote';
      term = this.term;
    }
    if (this.poll(this.id, voteResponseType(voteType), true) === 'won') {
      // A single-voter configuration wins at once.
      if (type === 'preElection') {
        this.campaign('election');
      } else {
        this.becomeLeader();
      }
      return;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.tracker.config.voters.sortedIds()) {
      if (id === this.id) continue;
      this.log('info', `raft: sent ${voteType} request`, { to: id, term, lastIndex, lastTerm });
      this.send({
        type: voteType,
        to: id,
        term,
        index: lastIndex,
        logTerm: lastTerm,
        context: type === 'transfer' ? CAMPAIGN_TRANSFER_CONTEXT : EMPTY_BYTES,
      });
    }
  }

  private poll(id: NodeId, type: MessageType, granted: boolean): 'won' | 'lost' | 'pending' {
    this.log('info', granted ? `raft: received ${type}` : `raft: received ${type} rejection`, {
      from: id,
      term: this.term,
    });
    this.tracker.recordVote(id, granted);
    return this.tracker.tallyVotes().result;
  }

  // ---------------------------------------------------------------------------------------------
  // Step: the entry point for every message.

  /**
   * Processes one message. Returns a RaftError for a dropped proposal (operating errors the
   * caller may report); throws only on programmer errors.
   */
  step(message: Message): RaftError | undefined {
    if ((message.type === 'MsgVoteResp' || message.type === 'MsgPreVoteResp') && message.commit > 0) {
      this.maybeLearnCommit(message.commit, message.logTerm);
    }
    // Term handling first (§5.1): a higher term makes us a follower, a lower one is stale.
    if (message.term === 0) {
      // A local message.
    } else if (message.term > this.term) {
      if (message.type === 'MsgVote' || message.type === 'MsgPreVote') {
        const force = bytesEqual(message.context, CAMPAIGN_TRANSFER_CONTEXT);
        if (!force && this.inLease()) {
          // Leader stickiness (thesis §4.2.3): we heard from a live leader within the minimum
          // election timeout, so this candidate is disruptive; do not even raise our term.
          this.log('info', `raft: ignored ${message.type} (leader is alive)`, {
            from: message.from,
            term: this.term,
            messageTerm: message.term,
            leader: this.leaderId,
            remainingTicks: this.config.electionTimeoutTicks - this.electionElapsed,
          });
          return undefined;
        }
      }
      if (message.type === 'MsgPreVote') {
        // Never change our term in response to a pre-vote.
      } else if (message.type === 'MsgPreVoteResp' && !message.reject) {
        // We asked for this future term; it becomes ours when a quorum grants it.
      } else if (this.role === 'leader' && this.mutant['leader-keeps-leading-on-higher-term']) {
        // MUTANT (test only): adopts the higher term but stays leader.
        this.term = message.term;
        this.vote = NONE;
      } else {
        this.log('info', 'raft: stepped down (higher term seen)', {
          term: this.term,
          messageType: message.type,
          messageTerm: message.term,
          from: message.from,
        });
        if (message.type === 'MsgApp' || message.type === 'MsgHeartbeat' || message.type === 'MsgSnap') {
          this.becomeFollower(message.term, message.from);
        } else {
          this.becomeFollower(message.term, NONE);
        }
      }
    } else if (message.term < this.term) {
      if (message.type === 'MsgHeartbeat' || message.type === 'MsgApp') {
        // Answer a stale leader with our term so that it steps down. Otherwise a node whose term
        // went up while it was partitioned could be stuck forever: with CheckQuorum its votes are
        // ignored, with PreVote it may never raise its term again, and as a learner (or a voter
        // that cannot win) it never campaigns. etcd answers only with CheckQuorum or PreVote; we
        // always do, since a removed node receives no appends and so cannot be made disruptive.
        this.send({ type: 'MsgAppResp', to: message.from });
      } else if (message.type === 'MsgPreVote') {
        // Reject with our term so the pre-candidate learns it is behind (and our commit index,
        // as for any vote rejection).
        const commit = Math.min(this.raftLog.committed, message.index);
        this.send({
          type: 'MsgPreVoteResp',
          to: message.from,
          term: this.term,
          reject: true,
          commit,
          logTerm: this.raftLog.termOrZero(commit),
        });
      } else {
        this.log('debug', `raft: ignored a ${message.type} message with lower term`, {
          from: message.from,
          term: this.term,
          messageTerm: message.term,
        });
      }
      return undefined;
    }

    switch (message.type) {
      case 'MsgHup':
        if (this.config.readOnlyOption === 'leaseBased' && this.inLease()) {
          // Our own vote is one a lease holder may count on (see `hasReadLease`); a campaign the
          // host asks for (RawNode.campaign) must not take it while the lease runs. A campaign on
          // our own election timeout does not come through here (see `tickElection`).
          this.log('info', 'raft: ignored MsgHup (in a leader lease)', { term: this.term });
          return undefined;
        }
        this.hup(this.config.preVote ? 'preElection' : 'election');
        return undefined;
      case 'MsgVote':
      case 'MsgPreVote': {
        // We can vote if we already voted for this candidate (a duplicate), or have not voted and
        // know no leader in this term, or this is a pre-vote for a future term.
        const canVote =
          this.vote === message.from ||
          (this.vote === NONE && this.leaderId === NONE) ||
          (message.type === 'MsgPreVote' && message.term > this.term) ||
          // MUTANT (test only): a second vote in the same term.
          (this.mutant['two-votes-per-term'] && message.type === 'MsgVote' && this.leaderId === NONE);
        const fields = {
          from: message.from,
          term: this.term,
          candidateLastIndex: message.index,
          candidateLastTerm: message.logTerm,
          vote: this.vote,
        };
        if (canVote && this.raftLog.isUpToDate(message.index, message.logTerm)) {
          this.log('info', `raft: cast ${message.type} for`, fields);
          // The response carries the candidate's term, not ours: for a pre-vote our term has not
          // moved, and the candidate must not mistake our answer for a stale one.
          this.send({ type: voteResponseType(message.type), to: message.from, term: message.term });
          if (message.type === 'MsgVote') {
            // Only a real vote is recorded, and it resets our timer so we do not compete with it.
            this.electionElapsed = 0;
            this.vote = message.from;
          }
        } else {
          this.log('info', `raft: rejected ${message.type} from`, fields);
          // Tell the candidate how far we know the log to be committed (capped at its last index,
          // with our term there so that it can check its log matches). A candidate that missed
          // the commit of a conf change may otherwise campaign forever in a stale configuration
          // that counts voters (like us) it can never win over.
          const commit = Math.min(this.raftLog.committed, message.index);
          this.send({
            type: voteResponseType(message.type),
            to: message.from,
            term: this.term,
            reject: true,
            commit,
            logTerm: this.raftLog.termOrZero(commit),
          });
        }
        return undefined;
      }
      default:
        return this.stepFunction(this, message);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Handlers shared by followers (and candidates that learn of a leader).

  handleAppendEntries(message: Message): void {
    if (message.index < this.raftLog.committed) {
      // Everything up to our commit index is known to match; tell the leader where we are.
      this.send({ type: 'MsgAppResp', to: message.from, index: this.raftLog.committed });
      return;
    }
    const lastNewIndex = this.raftLog.maybeAppend(
      message.index,
      message.logTerm,
      message.commit,
      message.entries,
    );
    if (lastNewIndex !== undefined) {
      this.send({ type: 'MsgAppResp', to: message.from, index: lastNewIndex });
      return;
    }
    // The consistency check failed. Hint the leader at the last index whose term is at most the
    // one it tried, so that it can skip every entry of a diverging term in one round trip.
    const hintIndex = Math.min(message.index, this.raftLog.lastIndex());
    const hint = this.raftLog.findConflictByTerm(hintIndex, message.logTerm);
    this.log('debug', 'raft: rejected MsgApp', {
      from: message.from,
      logTerm: this.raftLog.termOrZero(message.index),
      index: message.index,
      messageLogTerm: message.logTerm,
      hintIndex: hint.index,
      hintTerm: hint.term,
    });
    this.send({
      type: 'MsgAppResp',
      to: message.from,
      index: message.index,
      reject: true,
      rejectHint: hint.index,
      logTerm: hint.term,
    });
  }

  /**
   * Adopts a commit index reported by another node (in a vote rejection) if our log holds the
   * same entry there: by the Log Matching property our log is then identical up to it, and an
   * index some node knows to be committed is committed, whatever the terms involved.
   */
  maybeLearnCommit(commit: number, term: number): void {
    if (
      commit > this.raftLog.committed &&
      commit <= this.raftLog.lastIndex() &&
      this.raftLog.matchTerm(commit, term)
    ) {
      this.log('info', 'raft: learned commit index from a vote response', { commit });
      this.raftLog.commitTo(commit);
      if (this.role !== 'follower' && this.hasUnappliedConfChanges()) {
        // The configuration this election runs in is about to change (we may even be removed):
        // abandon it, and campaign again once the change is applied.
        this.log('info', 'raft: abandoned election (a committed conf change must be applied first)');
        this.becomeFollower(this.term, NONE);
      }
    }
  }

  handleHeartbeat(message: Message): void {
    this.raftLog.commitTo(message.commit);
    this.send({ type: 'MsgHeartbeatResp', to: message.from, context: message.context, index: message.index });
  }

  handleSnapshot(message: Message): void {
    const snapshot = message.snapshot;
    if (snapshot === undefined) {
      // A malformed message from the network; dropping it is all we can do.
      this.log('warn', 'raft: ignored MsgSnap without a snapshot', { from: message.from });
      return;
    }
    const { index, term } = snapshot.metadata;
    if (this.restore(snapshot)) {
      this.log('info', 'raft: restored snapshot', {
        from: message.from,
        index,
        term,
        commit: this.raftLog.committed,
      });
      this.send({ type: 'MsgAppResp', to: message.from, index: this.raftLog.lastIndex() });
    } else {
      this.log('info', 'raft: ignored snapshot', {
        from: message.from,
        index,
        term,
        commit: this.raftLog.committed,
      });
      this.send({ type: 'MsgAppResp', to: message.from, index: this.raftLog.committed });
    }
  }

  /**
   * Installs a snapshot from the leader if it is newer than our commit index. Returns whether it
   * was installed.
   */
  restore(snapshot: Parameters<RaftLog['restore']>[0]): boolean {
    const { index, term, confState } = snapshot.metadata;
    if (index <= this.raftLog.committed) {
      return false;
    }
    if (this.role !== 'follower') {
      // Only a leader sends snapshots, and it would have made us a follower. Be defensive: a
      // snapshot while not a follower means something is off, so start over one term later.
      this.log('warn', 'raft: attempted to restore snapshot as non-follower; should never happen', { index });
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    // Unlike etcd, a snapshot whose configuration does not include this node is accepted: a node
    // added after the snapshot was taken catches up from it and then learns of its own addition
    // from the log that follows. Until then it is not promotable, so it never campaigns.
    const inConfig =
      confState.voters.includes(this.id) ||
      confState.learners.includes(this.id) ||
      confState.votersOutgoing.includes(this.id);
    if (!inConfig) {
      this.log('info', 'raft: restoring a snapshot whose configuration does not include this node', {
        index,
      });
    }
    if (this.raftLog.matchTerm(index, term)) {
      // We already hold the snapshot's last entry, so our log is a superset: just commit to it.
      this.log('info', 'raft: fast-forwarded commit to snapshot', { index, term });
      this.raftLog.commitTo(index);
      return false;
    }
    this.raftLog.restore(snapshot);
    const restored = restoreConfiguration(confState, this.changerOptions());
    this.assertConfStatesEquivalent(confState, this.switchToConfig(restored));
    const self = this.tracker.progress.get(this.id);
    self?.maybeUpdate(self.next - 1);
    return true;
  }

  private assertConfStatesEquivalent(expected: ConfState, actual: ConfState): void {
    const sameIds = (a: readonly NodeId[], b: readonly NodeId[]): boolean => {
      const sortedB = [...b].sort((x, y) => x - y);
      return a.length === b.length && [...a].sort((x, y) => x - y).every((id, i) => id === sortedB[i]);
    };
    const equivalent =
      sameIds(expected.voters, actual.voters) &&
      sameIds(expected.learners, actual.learners) &&
      sameIds(expected.votersOutgoing, actual.votersOutgoing) &&
      sameIds(expected.learnersNext, actual.learnersNext) &&
      expected.autoLeave === actual.autoLeave;
    if (!equivalent) {
      fail(`restored ConfState ${JSON.stringify(actual)} differs from ${JSON.stringify(expected)}`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Membership.

  /** Applies a committed conf change to the tracker and returns the new configuration. */
  applyConfChange(change: ConfChange | ConfChangeV2): ConfState {
    const v2 = asConfChangeV2(change);
    const changer = new Changer({
      config: this.tracker.config,
      progress: this.tracker.progress,
      ...this.changerOptions(),
    });
    let result: ChangeResult;
    if (isLeaveJoint(v2)) {
      result = changer.leaveJoint();
    } else {
      const { enter, autoLeave } = enterJointOf(v2);
      result = enter ? changer.enterJoint(autoLeave, v2.changes) : changer.simple(v2.changes);
    }
    return this.switchToConfig(result);
  }

  /**
   * Installs a new configuration. A leader that is no longer a voter steps down; otherwise it
   * probes new members at once and commits whatever the new quorum allows.
   */
  switchToConfig(result: ChangeResult): ConfState {
    this.tracker.setConfiguration(result.config, result.progress);
    this.log('info', 'raft: switched to configuration', { config: this.tracker.config.toString() });
    const confState = this.tracker.confState();
    const self = this.tracker.progress.get(this.id);
    this.isLearner = self !== undefined && self.isLearner;
    if ((self === undefined || this.isLearner) && this.role === 'leader') {
      // This leader was removed (or demoted) and must step down (thesis §4.2.2). Stepping down at
      // once can wedge the group: a remaining voter that has not learned that the removal
      // committed still counts this node in its configuration, and this node, whose log may be
      // longer, would refuse it its vote forever. So it hands leadership over instead: it keeps
      // replicating (without accepting proposals) to the most up-to-date remaining voter and
      // sends it MsgTimeoutNow; it becomes a follower when that voter's campaign reaches it.
      this.log('info', 'raft: removed from configuration; handing over leadership', { term: this.term });
      this.maybeHandOverLeadership();
      return confState;
    }
    if (this.role !== 'leader' || confState.voters.length === 0) {
      return confState;
    }
    if (this.maybeCommit()) {
      // The new quorum may commit more (e.g. a removed node was holding it back).
      this.broadcastAppend();
    } else {
      // Probe new members now instead of waiting for the next heartbeat or proposal.
      for (const id of this.tracker.ids()) {
        if (id !== this.id) this.maybeSendAppend(id, false);
      }
    }
    if (this.leadTransferee !== NONE && !this.tracker.config.voters.has(this.leadTransferee)) {
      this.abortLeaderTransfer();
    }
    return confState;
  }

  // ---------------------------------------------------------------------------------------------
  // Reads and leadership transfer helpers.

  /** Whether the leader has committed an entry of its own term (so its commit index is current). */
  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrZero(this.raftLog.committed) === this.term;
  }

  /** Answers a read: a local one becomes a ReadState, a forwarded one a MsgReadIndexResp. */
  respondToReadIndex(request: Message, readIndex: number): void {
    if (request.from === NONE || request.from === this.id) {
      this.readStates.push({ index: readIndex, requestContext: request.context });
      return;
    }
    this.send({ type: 'MsgReadIndexResp', to: request.from, index: readIndex, context: request.context });
  }

  /**
   * Whether this node currently refuses (non-forced) votes because it may be part of a leader's
   * lease quorum: it heard from a leader less than an election timeout ago (leader stickiness,
   * thesis §4.2.3), or it restarted less than an election timeout ago (it forgot whether it did).
   * The restart rule applies only with lease reads, and not to a node starting fresh at term 0,
   * which has never acknowledged any leader.
   */
  inLease(): boolean {
    if (!this.config.checkQuorum) return false;
    const timeoutTicks = this.config.electionTimeoutTicks;
    if (this.leaderId !== NONE && this.electionElapsed < timeoutTicks) {
      return true;
    }
    return (
      this.config.readOnlyOption === 'leaseBased' && this.restarted && this.ticksSinceStart < timeoutTicks
    );
  }

  /**
   * Whether this leader holds a read lease: no other node can have become leader, so it may answer
   * a read from its commit index without a heartbeat round. The rule:
   *
   * - A quorum of voters (this node included) acknowledged heartbeats of this term that this
   *   leader sent less than `electionTimeoutTicks - 1` of its ticks ago. Each of those voters
   *   refuses non-forced votes (and does not campaign) for an election timeout after receiving
   *   one (`inLease`, also after a restart), so no candidate can gather a quorum meanwhile. The
   *   lease runs from the send time because the receipt time is unknown to the leader, which
   *   also makes it safe against delayed acknowledgements; one tick of margin covers the phase
   *   between two nodes' ticks. It assumes the nodes' tick rates are equal (bounded drift is
   *   what the margin must absorb in a real deployment).
   * - It has not sent MsgTimeoutNow in this term (`leaseForfeited`): the transferee's campaign
   *   carries the transfer context, which voters grant inside their lease, so it may win even if
   *   this leader abandons the transfer later.
   *
   * Without a lease, reads take the safe ReadIndex path (a heartbeat round).
   */
  hasReadLease(): boolean {
    if (this.readOnly.option !== 'leaseBased' || this.leaseForfeited) {
      return false;
    }
    const now = this.leaderTicks + 1;
    const quorumStamp = this.tracker.config.voters.committedIndex((id) =>
      id === this.id ? now : this.leaseAckStamps.get(id),
    );
    const fresh = quorumStamp > 0 && now - quorumStamp < this.config.electionTimeoutTicks - 1;
    if (this.mutant['lease-without-fresh-quorum'] && quorumStamp > 0 && !fresh) {
      // MUTANT (test only): any quorum of acknowledgements of this term, however old.
      this.log('warn', 'raft: MUTANT holds a lease on stale acknowledgements', {
        ageTicks: now - quorumStamp,
        term: this.term,
      });
      return true;
    }
    return fresh;
  }

  handleReadIndex(request: Message): void {
    if (this.hasReadLease()) {
      this.respondToReadIndex(request, this.raftLog.committed);
      return;
    }
    this.readOnly.addRequest(this.raftLog.committed, request);
    // The leader confirms itself; followers confirm with their heartbeat responses.
    this.readOnly.recvAck(this.id, request.context);
    this.pendingReadHeartbeatContext = request.context;
  }

  releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) {
      return;
    }
    if (!this.committedEntryInCurrentTerm()) {
      this.log(
        'error',
        'raft: pending MsgReadIndex should be released only after first commit in current term',
      );
      return;
    }
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const request of pending) {
      this.handleReadIndex(request);
    }
  }

  /**
   * A leader that is no longer a voter transfers leadership to the remaining voter with the
   * longest log (lowest id on ties), unless a transfer is already under way. Returns whether it
   * started one. It retries every election timeout until the transferee holds its whole log: only
   * then may it step down without risking a wedged group. If another node won an election in the
   * meantime, that leader's followers answer this node's heartbeats with their higher term, which
   * makes it step down, so it cannot linger as a leader.
   */
  maybeHandOverLeadership(): boolean {
    if (this.role !== 'leader' || this.leadTransferee !== NONE) {
      return false;
    }
    const self = this.tracker.progress.get(this.id);
    if (self !== undefined && !self.isLearner) {
      return false;
    }
    let best: NodeId = NONE;
    let bestMatch = -1;
    for (const id of this.tracker.config.voters.sortedIds()) {
      const match = this.tracker.progress.get(id)!.match;
      if (id !== this.id && match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    if (best === NONE) {
      return false;
    }
    this.log('info', 'raft: starts to transfer leadership', { transferee: best, reason: 'removed' });
    this.electionElapsed = 0;
    this.leadTransferee = best;
    if (bestMatch === this.raftLog.lastIndex()) {
      this.sendTimeoutNow(best);
      this.maybeFinishHandOver();
    } else {
      this.sendAppend(best);
    }
    return true;
  }

  /**
   * Steps a removed leader down once its transferee holds its whole log. From then on the
   * transferee can always win this node's vote, so the group cannot wedge on it even if the
   * MsgTimeoutNow is lost (the transferee campaigns on its own timeout then).
   */
  maybeFinishHandOver(): void {
    const self = this.tracker.progress.get(this.id);
    if (this.role === 'leader' && (self === undefined || self.isLearner)) {
      this.log('info', 'raft: stepped down (removed from configuration)', { term: this.term });
      this.becomeFollower(this.term, NONE);
    }
  }

  sendTimeoutNow(to: NodeId): void {
    // The transferee will campaign with a forced vote, which breaks the lease (`hasReadLease`).
    this.leaseForfeited = true;
    this.send({ type: 'MsgTimeoutNow', to });
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /** Runs the leader's pre-append checks for conf changes in a proposal. */
  checkConfChangeProposal(entries: readonly Entry[]): RaftError | undefined {
    let confChanges = 0;
    for (const entry of entries) {
      if (entry.type === 'normal') continue;
      confChanges++;
      if (confChanges > 1) {
        return new RaftError('RAFT_CONF_CHANGE_INVALID', 'raft: at most one conf change per proposal');
      }
      let change: ConfChange | ConfChangeV2;
      try {
        change = decodeConfChange(entry.type, entry.data);
      } catch (error) {
        return new RaftError('RAFT_CONF_CHANGE_INVALID', `raft: undecodable conf change: ${String(error)}`);
      }
      const alreadyPending = this.pendingConfIndex > this.raftLog.applied;
      const alreadyJoint = this.tracker.config.voters.isJoint();
      const wantsLeaveJoint = asConfChangeV2(change).changes.length === 0;
      if (alreadyPending) {
        this.log('info', 'raft: ignoring conf change: possible unapplied conf change', {
          pendingConfIndex: this.pendingConfIndex,
          applied: this.raftLog.applied,
        });
        return new RaftError('RAFT_CONF_CHANGE_PENDING');
      }
      if (alreadyJoint && !wantsLeaveJoint) {
        return new RaftError('RAFT_CONF_CHANGE_INVALID', 'raft: must transition out of joint config first');
      }
      if (!alreadyJoint && wantsLeaveJoint) {
        return new RaftError(
          'RAFT_CONF_CHANGE_INVALID',
          'raft: not in joint state; refusing empty conf change',
        );
      }
    }
    return undefined;
  }
}

// -----------------------------------------------------------------------------------------------
// Role behaviour.

function stepLeader(raft: Raft, message: Message): RaftError | undefined {
  // Messages that need no progress for the sender.
  switch (message.type) {
    case 'MsgBeat':
      raft.broadcastHeartbeat();
      return undefined;
    case 'MsgCheckQuorum':
      if (!raft.tracker.quorumActive()) {
        if (raft.mutant['no-check-quorum-step-down']) {
          // MUTANT (test only): stays leader without a quorum.
        } else {
          raft.log('warn', 'raft: stepped down (quorum not active)', { term: raft.term });
          raft.becomeFollower(raft.term, NONE);
        }
      }
      // Start a new round: everyone must be heard from again before the next check.
      raft.tracker.visit((id, progress) => {
        if (id !== raft.id) progress.recentActive = false;
      });
      return undefined;
    case 'MsgProp': {
      if (message.entries.length === 0) {
        // Only a malformed forwarded proposal can be empty; RawNode never sends one.
        return new RaftError('RAFT_PROPOSAL_DROPPED', 'raft: proposal dropped: no entries');
      }
      if (!raft.tracker.progress.has(raft.id)) {
        // This leader was removed from the configuration and is handing leadership over; it must
        // not grow the log of a group it no longer belongs to.
        return new RaftError(
          'RAFT_PROPOSAL_DROPPED',
          'raft: proposal dropped: leader is not in the configuration',
        );
      }
      if (raft.leadTransferee !== NONE) {
        raft.log('debug', 'raft: proposal dropped: leadership transfer in progress', {
          transferee: raft.leadTransferee,
        });
        return new RaftError('RAFT_TRANSFER_IN_PROGRESS');
      }
      const refused = raft.checkConfChangeProposal(message.entries);
      if (refused !== undefined) {
        return refused;
      }
      const lastIndexBefore = raft.raftLog.lastIndex();
      if (!raft.appendEntry(message.entries)) {
        return new RaftError('RAFT_UNCOMMITTED_LIMIT');
      }
      for (let i = 0; i < message.entries.length; i++) {
        if (message.entries[i]!.type !== 'normal') {
          raft.pendingConfIndex = lastIndexBefore + 1 + i;
        }
      }
      // Defer the broadcast to the next Ready: every proposal arriving until then shares one
      // MsgApp per follower, which is what makes many small proposals cheap.
      raft.pendingAppendBroadcast = true;
      return undefined;
    }
    case 'MsgReadIndex':
      // A single voter is its own quorum: the read is confirmed at once.
      if (raft.tracker.isSingleton()) {
        raft.respondToReadIndex(message, raft.raftLog.committed);
        return undefined;
      }
      // Until this leader commits an entry of its term, it may not know the latest commit index.
      if (!raft.committedEntryInCurrentTerm()) {
        raft.pendingReadIndexMessages.push(message);
        return undefined;
      }
      raft.handleReadIndex(message);
      return undefined;
    default:
      break;
  }

  const progress = raft.tracker.progress.get(message.from);
  if (progress === undefined) {
    raft.log('debug', 'raft: no progress available for sender', { from: message.from });
    return undefined;
  }
  switch (message.type) {
    case 'MsgAppResp': {
      progress.recentActive = true;
      if (message.reject) {
        raft.log('debug', 'raft: received MsgAppResp rejection', {
          from: message.from,
          rejectedIndex: message.index,
          hintIndex: message.rejectHint,
          hintTerm: message.logTerm,
        });
        // Fast backtracking: the follower told us the last index at which its term is at most
        // the one we tried (rejectHint, logTerm). Find in our log the last index whose term is at
        // most that term: everything after it up to the hint certainly differs.
        let nextProbeIndex = message.rejectHint;
        if (message.logTerm > 0) {
          nextProbeIndex = raft.raftLog.findConflictByTerm(message.rejectHint, message.logTerm).index;
        }
        if (progress.maybeDecrTo(message.index, nextProbeIndex)) {
          raft.log('debug', 'raft: decreased progress', { to: message.from, progress: progress.toString() });
          if (progress.state === 'replicate') {
            progress.becomeProbe();
          }
          raft.sendAppend(message.from);
        }
        return undefined;
      }
      if (message.index > raft.raftLog.lastIndex()) {
        // No correct follower acknowledges an entry this leader never sent; drop the message
        // rather than let it corrupt the progress (a bug or corruption elsewhere, not ours).
        raft.log('warn', 'raft: ignored MsgAppResp beyond the last index', {
          from: message.from,
          index: message.index,
        });
        return undefined;
      }
      const wasPaused = progress.isPaused();
      if (!progress.maybeUpdate(message.index)) {
        return undefined;
      }
      switch (progress.state) {
        case 'probe':
          progress.becomeReplicate();
          break;
        case 'snapshot':
          // The follower now holds what it needed (through the snapshot or otherwise): resume.
          if (progress.match + 1 >= raft.raftLog.firstIndex()) {
            raft.log('debug', 'raft: recovered from needing snapshot', {
              from: message.from,
              progress: progress.toString(),
            });
            progress.becomeProbe();
            progress.becomeReplicate();
          }
          break;
        case 'replicate':
          progress.inflights.freeLE(message.index);
          break;
      }
      const committed = raft.maybeCommit();
      if (committed) raft.releasePendingReadIndexMessages();
      if (committed && !raft.config.deferCommitBroadcast) {
        // Tell everyone about the new commit index, once per Ready however many acknowledgements
        // moved it (an immediate broadcast would send one message per acknowledgement).
        raft.pendingAppendBroadcast = true;
      } else if (wasPaused && !raft.pendingAppendBroadcast) {
        // The follower was paused and may have missed the latest commit index; update it (unless
        // the pending broadcast will).
        raft.sendAppend(message.from);
      }
      // Pipelining: the ack freed room in the window, so send as many messages as now fit.
      while (raft.maybeSendAppend(message.from, false)) {
        // Keep sending.
      }
      if (message.from === raft.leadTransferee && progress.match === raft.raftLog.lastIndex()) {
        raft.log('info', 'raft: sent MsgTimeoutNow after the transferee caught up', { to: message.from });
        raft.sendTimeoutNow(message.from);
        raft.maybeFinishHandOver();
      }
      return undefined;
    }
    case 'MsgHeartbeatResp': {
      progress.recentActive = true;
      if (message.index > 0 && message.index <= raft.leaderTicks + 1) {
        const stamp = raft.leaseAckStamps.get(message.from) ?? 0;
        if (message.index > stamp) raft.leaseAckStamps.set(message.from, message.index);
      }
      progress.probeSent = false;
      // The follower is alive: open a full window by one so replication resumes after losses.
      if (progress.state === 'replicate' && progress.inflights.full()) {
        progress.inflights.freeFirstOne();
      }
      if (progress.match < raft.raftLog.lastIndex()) {
        raft.sendAppend(message.from);
      }
      // Lease reads fall back to this path too when the lease is not held.
      if (message.context.length === 0) {
        return undefined;
      }
      const acks = raft.readOnly.recvAck(message.from, message.context);
      if (acks === undefined || raft.tracker.config.voters.voteResult(acks) !== 'won') {
        return undefined;
      }
      for (const status of raft.readOnly.advance(message.context)) {
        raft.respondToReadIndex(status.request, status.index);
      }
      return undefined;
    }
    case 'MsgSnapStatus':
      if (progress.state !== 'snapshot') {
        return undefined;
      }
      if (message.reject) {
        // The snapshot failed; forget it and probe (which may send a new one).
        progress.pendingSnapshot = 0;
        raft.log('debug', 'raft: snapshot failed, resumed sending replication messages', {
          to: message.from,
        });
      } else {
        // The host may have sent a newer snapshot than the one asked for (its state machine as it
        // was when sending began): the follower holds that one once it steps the MsgSnap, which
        // the host sent before reporting, so probing resumes after it. Probing after the one
        // asked for found its following entries compacted meanwhile, and sent another snapshot
        // (a follower that did not step it rejects the probe, and is sent one again).
        progress.pendingSnapshot = Math.max(progress.pendingSnapshot, message.index);
        raft.log('debug', 'raft: snapshot succeeded, resumed sending replication messages', {
          to: message.from,
          snapshotIndex: progress.pendingSnapshot,
        });
      }
      progress.becomeProbe();
      // Wait for the follower's MsgAppResp (or a heartbeat response) before probing, since the
      // snapshot's acknowledgement tells us exactly where it is.
      progress.probeSent = true;
      return undefined;
    case 'MsgUnreachable':
      // An optimistic stream to an unreachable node likely lost messages; probe instead.
      if (progress.state === 'replicate') {
        progress.becomeProbe();
      }
      raft.log('debug', 'raft: failed to send message because it is unreachable', { to: message.from });
      return undefined;
    case 'MsgTransferLeader': {
      if (progress.isLearner) {
        raft.log('debug', 'raft: ignored transferring leadership to a learner', { to: message.from });
        return undefined;
      }
      const transferee = message.from;
      const previous = raft.leadTransferee;
      if (previous !== NONE) {
        if (previous === transferee) {
          raft.log('info', 'raft: transfer leadership already in progress, ignored', { transferee });
          return undefined;
        }
        raft.abortLeaderTransfer();
        raft.log('info', 'raft: abort previous transferring leadership', { previous });
      }
      if (transferee === raft.id) {
        raft.log('debug', 'raft: is already leader; ignored transferring leadership to self');
        return undefined;
      }
      raft.log('info', 'raft: starts to transfer leadership', { transferee });
      // The transfer must finish within an election timeout, counted from now.
      raft.electionElapsed = 0;
      raft.leadTransferee = transferee;
      if (progress.match === raft.raftLog.lastIndex()) {
        raft.sendTimeoutNow(transferee);
        raft.log(
          'info',
          'raft: sends MsgTimeoutNow immediately as the transferee already has an up-to-date log',
          {
            transferee,
          },
        );
      } else {
        raft.sendAppend(transferee);
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/** Candidates and pre-candidates. */
function stepCandidate(raft: Raft, message: Message): RaftError | undefined {
  // Only responses of our own kind count; a late pre-vote response while a candidate is stale.
  const myVoteResponse: MessageType = raft.role === 'precandidate' ? 'MsgPreVoteResp' : 'MsgVoteResp';
  switch (message.type) {
    case 'MsgProp':
      raft.log('info', 'raft: no leader; dropping proposal', { term: raft.term });
      return new RaftError('RAFT_NO_LEADER');
    case 'MsgApp':
      raft.becomeFollower(message.term, message.from);
      raft.handleAppendEntries(message);
      return undefined;
    case 'MsgHeartbeat':
      raft.becomeFollower(message.term, message.from);
      raft.handleHeartbeat(message);
      return undefined;
    case 'MsgSnap':
      raft.becomeFollower(message.term, message.from);
      raft.handleSnapshot(message);
      return undefined;
    case 'MsgTimeoutNow':
      raft.log('debug', 'raft: ignored MsgTimeoutNow as a candidate', {
        term: raft.term,
        from: message.from,
      });
      return undefined;
    case 'MsgReadIndex':
      raft.log('info', 'raft: no leader; dropping read index', { term: raft.term });
      return undefined;
    default:
      break;
  }
  if (message.type !== myVoteResponse) {
    return undefined;
  }
  const granted = !message.reject;
  raft.log('info', granted ? `raft: received ${message.type}` : `raft: received ${message.type} rejection`, {
    from: message.from,
    term: raft.term,
  });
  raft.tracker.recordVote(message.from, granted);
  const { granted: grants, rejected, result } = raft.tracker.tallyVotes();
  raft.log('info', 'raft: tallied votes', { granted: grants, rejected, result });
  if (result === 'won') {
    if (raft.role === 'precandidate') {
      raft.campaign('election');
    } else {
      raft.becomeLeader();
      raft.broadcastAppend();
    }
  } else if (result === 'lost') {
    // A pre-candidate that loses keeps its term; a candidate stays at its (raised) term.
    raft.becomeFollower(raft.term, NONE);
  }
  return undefined;
}

function stepFollower(raft: Raft, message: Message): RaftError | undefined {
  switch (message.type) {
    case 'MsgProp':
      if (raft.leaderId === NONE) {
        raft.log('info', 'raft: no leader; dropping proposal', { term: raft.term });
        return new RaftError('RAFT_NO_LEADER');
      }
      if (raft.config.disableProposalForwarding) {
        raft.log('info', 'raft: not forwarding to leader; dropping proposal', {
          leader: raft.leaderId,
          term: raft.term,
        });
        return new RaftError('RAFT_FORWARDING_DISABLED');
      }
      raft.send({ type: 'MsgProp', to: raft.leaderId, entries: message.entries });
      return undefined;
    case 'MsgApp':
      raft.electionElapsed = 0;
      raft.leaderId = message.from;
      raft.handleAppendEntries(message);
      return undefined;
    case 'MsgHeartbeat':
      raft.electionElapsed = 0;
      raft.leaderId = message.from;
      raft.handleHeartbeat(message);
      return undefined;
    case 'MsgSnap':
      raft.electionElapsed = 0;
      raft.leaderId = message.from;
      raft.handleSnapshot(message);
      return undefined;
    case 'MsgTransferLeader':
      if (raft.leaderId === NONE) {
        raft.log('info', 'raft: no leader; dropping leader transfer message', { term: raft.term });
        return undefined;
      }
      raft.send({ type: 'MsgTransferLeader', to: raft.leaderId, from: message.from });
      return undefined;
    case 'MsgTimeoutNow':
      // The leader asked us to take over: campaign at once, skipping pre-vote (the leader
      // consented) and leader stickiness (through the transfer context) (thesis §3.10).
      raft.log('info', 'raft: received MsgTimeoutNow; starting an election to take leadership', {
        from: message.from,
        term: raft.term,
      });
      if (raft.hasUnappliedConfChanges()) {
        // The configuration is about to change: campaign as soon as it is applied rather than
        // drop the leader's request (a removed leader hands over exactly in this situation).
        raft.campaignAfterApply = true;
        return undefined;
      }
      raft.hup('transfer');
      return undefined;
    case 'MsgReadIndex':
      if (raft.leaderId === NONE) {
        raft.log('info', 'raft: no leader; dropping read index', { term: raft.term });
        return undefined;
      }
      raft.send({ type: 'MsgReadIndex', to: raft.leaderId, context: message.context });
      return undefined;
    case 'MsgReadIndexResp':
      raft.readStates.push({ index: message.index, requestContext: message.context });
      return undefined;
    default:
      return undefined;
  }
}
