import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ImpulseError, type FileSystem, type Logger, type Registry } from '@impulse/common';
import {
  RaftError,
  type ConfChange,
  type Config,
  type Message,
  type NodeId,
  type RawNode,
  type Role,
} from '../raft/index.js';
import type { ReplicaLog } from '../raft-log/index.js';
import {
  StorageFault,
  encodeCommand,
  type AppliedEntry,
  type Command,
  type ConsistencyHash,
  type GenerationSpace,
  type ReplicaStateMachine,
  type UserKeyRange,
} from '../state-machine/index.js';
import type { Engine, EngineName, Entry as EngineEntry } from '../storage/index.js';
import { PeerTransport, WarningLimiter, type SnapshotChunk } from '../transport/index.js';
import { CompactionPolicy, type RequestedCompactionOutcome } from './compaction-policy.js';
import { EntryApplier } from './entry-applier.js';
import { logMetricsOf } from './log-metrics.js';
import {
  MemberDirectory,
  decodeMembersRecord,
  decodeRemovedRecord,
  type MemberSpec,
} from './member-directory.js';
import {
  membershipProposal,
  membershipRefused,
  type MembershipChange,
  type MembershipToken,
} from './membership.js';
import { createReplicaMetrics, type ReplicaMetrics } from './metrics.js';
import { MonotonicTicks } from './monotonic-ticks.js';
import { refusalOf, type PeerMessageContext, type PeerMessageRefusal } from './peer-message-check.js';
import { ProposalTracker } from './proposal-tracker.js';
import { ReadIndexBatcher } from './read-index-batcher.js';
import { ReadyLoop } from './ready-loop.js';
import { Rebuild } from './rebuild.js';
import type { InboundSender, OpenReplicaTransport, ReplicaTransport } from './replica-transport.js';
import { openReplicaState, type OpenReplicaLog } from './replica-state.js';
import { sleep, systemScheduler, type Scheduler, type Timer } from './scheduler.js';
import { SnapshotReceiver } from './snapshot-receiver.js';
import { SnapshotSender } from './snapshot-sender.js';
import type { Waiter } from './waiter.js';

export type { MemberSpec } from './member-directory.js';
export type { MembershipChange } from './membership.js';

export interface ReplicaOptions {
  readonly clusterId: string;
  /** The secret peers prove to each other (`transport/peer-auth.ts`); none: not authenticated. */
  readonly clusterSecret?: Uint8Array | undefined;
  readonly groupId: string;
  readonly self: MemberSpec;
  /** The address the peer transport listens on (the advertised one is `self.peerHost`). */
  readonly peerListenHost: string;
  /**
   * The port the peer transport listens on; `self.peerPort` (the advertised one, which the member
   * directory keeps) when absent.
   */
  readonly peerListenPort?: number;
  /** Every member of the group when it was created, self included: the initial voters. */
  readonly initialMembers: readonly MemberSpec[];
  /** Whether this replica joins a live group (as a learner added by an admin) rather than founding it. */
  readonly join: boolean;
  /**
   * Whether this is the first start of the group, so that a data directory with no Raft state
   * founds it. Without it (or `join`) such a directory is refused: it would found the group again
   * with no data (see docs/decisions/0009-found-a-group-once.md). Ignored once the directory
   * holds Raft state.
   */
  readonly bootstrap: boolean;
  readonly dataDirectory: string;
  readonly engine: EngineName;
  /** Whether the Raft log fsyncs before anything is acknowledged. Off only for benchmarks of the rest. */
  readonly logSync: boolean;
  /** A new Raft log segment starts past this size (default: the log's, 64 MiB). */
  readonly logSegmentBytesMax?: number;
  readonly tickIntervalMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatTicks: number;
  /**
   * How linearizable reads confirm leadership: a ReadIndex heartbeat round, or the leader's lease
   * (see "Lease reads" in shard-node/src/raft/README.md). With leases the Raft clock follows the
   * monotonic clock (`tick`), so that a paused process cannot come back believing in a lease that
   * ran out while it was stopped.
   */
  readonly readMode?: ReadMode;
  /** Applied entries between two state machine snapshots (after which the log is compacted). */
  readonly snapshotEntries: number;
  /** Entries kept in the log behind a snapshot, so a slow follower catches up without one. */
  readonly snapshotCatchUpEntries: number;
  /** How long a proposal may wait for its entry to apply. */
  readonly proposalTimeoutMs: number;
  /** Commands proposed at most per event-loop turn (one Raft append, one fsync). */
  readonly proposalBatchMax: number;
  readonly logger: Logger;
  readonly registry: Registry;
  /**
   * Called once when the replica fails for good: a write to its log or state machine failed in a
   * way that cannot be retried safely. The replica has stopped serving; its host decides what
   * follows (a process of one replica exits and restarts from its durable state).
   */
  readonly onFailure: (error: unknown) => void;
  /** Clock and timers (default: the process's); the simulator passes simulated time. */
  readonly scheduler?: Scheduler;
  /**
   * Opens the Raft log (default: a `RaftLogStore` of its own in `<dataDirectory>/raft`); a node
   * gives each replica its group's share of the node log (`NodeLog.group`).
   */
  readonly openLog?: OpenReplicaLog;
  /**
   * LevelDB: where the state machine's generations live when they share the node's engine
   * (decision 0019); default: LevelDB folders of the replica's own.
   */
  readonly generationSpace?: GenerationSpace;
  /** Opens the peer transport (default: a `PeerTransport` listening on the peer port). */
  readonly openTransport?: OpenReplicaTransport;
  /** Seeds the core's randomized election timeouts (default: from `crypto`); the simulator's seed. */
  readonly randomSeed?: number;
  /** Where the log and the state machine keep their files (default: the real file system). */
  readonly fileSystem?: FileSystem;
  /**
   * For the simulator only: adjusts the core's configuration before the core is built (the
   * simulator plants the core's test-only bugs through it, to show that its checks catch them).
   * `ShardNode` never sets it.
   */
  readonly adjustCore?: (config: Config) => Config;
  /**
   * For fault-injection tests only (see `StateMachineOptions.wrapEngine`): wraps every engine the
   * state machine opens. `ShardNode` never sets it.
   */
  readonly wrapEngine?: (engine: Engine) => Engine;
}

export type ReadMode = 'readindex' | 'lease';

/**
 * The host of one replica: it runs the Raft core (`RawNode`) against the durable log
 * (`ReplicaLog`: a log of its own or its share of the node's), the peer transport and the key-value state machine, and serves the client
 * API's writes and reads. Each job is a part of its own, and this class wires them:
 *
 * | part                  | job                                                                  |
 * | --------------------- | -------------------------------------------------------------------- |
 * | `openReplicaState`    | open and reconcile the state machine and log; found a group once     |
 * | `ReadyLoop`           | persist → send → apply → advance, in the order each Ready prescribes |
 * | `ProposalTracker`     | writes from arrival to applied, batched per round                    |
 * | `ReadIndexBatcher`    | linearizable reads, one ReadIndex per round                          |
 * | `EntryApplier`        | committed entries into the state machine and the configuration       |
 * | `MemberDirectory`     | where each member is; the transport follows it                       |
 * | `SnapshotSender`      | stream the state machine to a follower, then its MsgSnap             |
 * | `SnapshotReceiver`    | take a stream into a new generation; install it with its Ready       |
 * | `Rebuild`             | a faulted replica's state machine rebuilt from its leader            |
 * | `CompactionPolicy`    | make the state machine durable, then drop the log behind it (also on |
 * |                       | the node's request: `compactNow`)                                    |
 *
 * Clock, timers and transport are injected (`scheduler`, `openTransport`); a failure that must
 * stop the replica goes to `onFailure`, never to `process.exit`.
 */
export class Replica {
  private readonly directory: MemberDirectory;
  private readonly metrics: ReplicaMetrics;
  private readonly scheduler: Scheduler;
  private readonly proposals: ProposalTracker;
  private readonly reads: ReadIndexBatcher;
  private readonly applier: EntryApplier;
  private readonly compaction: CompactionPolicy;
  private readonly snapshotSender: SnapshotSender;
  private readonly snapshotReceiver: SnapshotReceiver;
  private readonly rebuild: Rebuild;
  private readonly readyLoop: ReadyLoop;
  private role: Role = 'follower';
  private leaderId: NodeId = 0;
  private term = 0;
  private stopped = false;
  private failure: unknown;
  private tickTimer: Timer | undefined;
  private transport: ReplicaTransport | undefined;
  /** Lease mode: the core's clock, caught up with monotonic time before every input. */
  private readonly monotonicTicks: MonotonicTicks | undefined;
  /** Set when this replica's id turned out to be a voter's that lost its data: why it refuses all. */
  private reusedIdentity: string | undefined;
  private readonly membershipWaiters = new Map<MembershipToken, Waiter>();
  private membershipCounter = 0;
  /**
   * The storage fault that stopped this replica's state machine, if one did. From then on it
   * answers no read and takes no write, never campaigns, and applies nothing; it still appends,
   * acknowledges and votes, since its Raft log is healthy (docs/decisions/0008-storage-faults.md).
   */
  private storageFault: StorageFault | undefined;
  private readonly peerMessageContext: PeerMessageContext;
  /** One warning per kind of refused peer message per 10 s; the ones between are counted in it. */
  private readonly peerRefusalWarnings: WarningLimiter;

  private constructor(
    private readonly options: ReplicaOptions,
    private readonly logStore: ReplicaLog,
    private readonly stateMachine: ReplicaStateMachine,
    private readonly rawNode: RawNode,
  ) {
    const { logger } = options;
    const selfId = options.self.raftId;
    const scheduler = options.scheduler ?? systemScheduler;
    this.scheduler = scheduler;
    this.peerRefusalWarnings = new WarningLimiter(logger, 10_000, () => scheduler.nowMs());
    this.directory = new MemberDirectory(
      selfId,
      initialDirectory(options, stateMachine, rawNode),
      decodeRemovedRecord(stateMachine.removedMembersRecord),
    );
    this.peerMessageContext = {
      selfId,
      isMember: (id) => this.directory.has(id),
      isRemoved: (id) => this.directory.isRemoved(id),
      lastIndex: () => this.rawNode.lastIndex(),
    };
    this.metrics = createReplicaMetrics(options.registry, options.groupId, () => this.status());
    this.monotonicTicks =
      options.readMode === 'lease'
        ? new MonotonicTicks(
            options.tickIntervalMs,
            4 * options.electionTimeoutTicks,
            () => this.rawNode.tick(),
            () => scheduler.nowMs(),
          )
        : undefined;
    const onStorageFault = (fault: StorageFault): void => this.enterStorageFault(fault);
    this.proposals = new ProposalTracker({
      groupId: options.groupId,
      proposalTimeoutMs: options.proposalTimeoutMs,
      proposalBatchMax: options.proposalBatchMax,
      scheduler,
      metrics: this.metrics,
      proposeBatch: (batch) => {
        this.clockBeforeInput();
        this.rawNode.proposeBatch(batch);
        this.readyLoop.schedule();
      },
      notLeader: () => this.notLeader(),
    });
    this.reads = new ReadIndexBatcher({
      selfId,
      timeoutMs: options.proposalTimeoutMs,
      scheduler,
      isLeader: () => !this.stopped && this.role === 'leader',
      notLeader: () => this.notLeader(),
      requestReadIndex: (context) => {
        // The lease is judged on the core's clock: after a pause, the paused time must count
        // before any read is answered from the lease.
        this.clockBeforeInput();
        this.rawNode.readIndex(context);
        this.readyLoop.schedule();
      },
    });
    this.applier = new EntryApplier(
      {
        logger,
        stateMachine,
        directory: this.directory,
        applyConfChange: (change) => this.rawNode.applyConfChange(change),
        configuration: () => this.rawNode.status().config,
        faulted: () => this.storageFault !== undefined,
        onStorageFault: (fault) => {
          if (!this.stopped) this.enterStorageFault(fault);
        },
        onApplied: (results, memberships) => this.answerApplied(results, memberships),
        stateDirectory: join(options.dataDirectory, 'state'),
      },
      logStore.snapshot().metadata.index,
    );
    this.compaction = new CompactionPolicy({
      logger,
      stateMachine,
      logStore,
      memoryEngine: options.engine === 'memory',
      snapshotEntries: options.snapshotEntries,
      snapshotCatchUpEntries: options.snapshotCatchUpEntries,
      onStorageFault,
      handedOutIndex: () => this.applier.handedOutIndex,
      compactionLimit: (compactIndex) =>
        this.snapshotSender.compactionLimit(
          compactIndex,
          (to) => this.rawNode.status().progress?.get(to)?.match,
          (to) => this.rawNode.status().progress?.get(to)?.recentActive ?? false,
        ),
    });
    this.snapshotSender = new SnapshotSender({
      selfId,
      logger,
      scheduler,
      stateMachine,
      transport: () => this.transport,
      metrics: this.metrics,
      reportSnapshot: (to, succeeded, snapshotIndex) => {
        this.clockBeforeInput();
        this.rawNode.reportSnapshot(to, succeeded, snapshotIndex);
        this.readyLoop.schedule();
      },
      leaderConfiguration: () => (this.role === 'leader' ? this.rawNode.status().config : undefined),
      onStorageFault,
    });
    this.rebuild = new Rebuild({
      selfId,
      logger,
      scheduler,
      stateMachine,
      logStore,
      send: (message) => this.transport?.send([message]),
      scheduleReady: () => this.readyLoop.schedule(),
    });
    this.snapshotReceiver = new SnapshotReceiver({
      logger,
      stateMachine,
      refusal: () => (this.stopped ? 'stopping' : this.reusedIdentity),
      onChunk: (snapshotId) => this.rebuild.onChunk(snapshotId),
      onComplete: (incoming) => this.rebuild.onComplete(incoming, this.storageFault !== undefined),
    });
    this.readyLoop = new ReadyLoop(rawNode, scheduler, {
      softState: (role, leaderId) => this.handleSoftState(role, leaderId),
      installSnapshot: (index) => this.installSnapshot(index),
      persist: async (ready) => {
        if (ready.hardState !== undefined) this.term = ready.hardState.term;
        await this.logStore.save(
          {
            ...(ready.hardState === undefined ? {} : { hardState: ready.hardState }),
            entries: ready.entries,
            ...(ready.snapshot === undefined ? {} : { snapshot: ready.snapshot.metadata }),
          },
          { sync: ready.mustSync && this.options.logSync },
        );
      },
      send: (messages) => this.sendMessages(messages),
      apply: (committed) => this.applier.apply(committed),
      readStates: (readStates) => {
        for (const readState of readStates) this.reads.handleReadState(readState);
      },
      afterApply: async () => {
        this.reads.serveUpTo(this.stateMachine.appliedIndex);
        this.snapshotSender.releaseCaughtUp(
          () => this.logStore.lastIndex() - options.snapshotCatchUpEntries,
          (to) => this.rawNode.status().progress?.get(to)?.match,
        );
        // A damaged state machine cannot be made durable: the log keeps everything after its last
        // snapshot, which is what rebuilding the replica, or its peers, may need.
        if (this.storageFault === undefined) await this.compaction.maybeCompact();
      },
      beforeReadys: async () => {
        await this.completeRebuild();
        // A compaction the node asked for runs between two Readys, never within one's writes. A
        // damaged state machine cannot be made durable, so its log keeps everything (as above).
        if (this.storageFault === undefined) await this.compaction.maybeCompactRequested();
        else this.compaction.settleRequested('failed');
      },
      fail: (error) => this.fail(error),
    });
  }

  static async start(options: ReplicaOptions): Promise<Replica> {
    let metricsHooks: ReplicaMetrics | undefined;
    // A log of its own (a process of one replica) is the process's Raft log, whose fsyncs and bytes
    // it reports. A node's log, shared by its groups, reports them itself, each fsync once.
    const ownLogMetrics = options.openLog === undefined ? logMetricsOf(options.registry) : undefined;
    const { stateMachine, logStore, rawNode } = await openReplicaState({
      groupId: options.groupId,
      raftId: options.self.raftId,
      replicaId: options.self.replicaId,
      initialVoters: options.initialMembers.map((member) => member.raftId),
      join: options.join,
      bootstrap: options.bootstrap,
      dataDirectory: options.dataDirectory,
      engine: options.engine,
      logSegmentBytesMax: options.logSegmentBytesMax,
      electionTimeoutTicks: options.electionTimeoutTicks,
      heartbeatTicks: options.heartbeatTicks,
      leaseReads: options.readMode === 'lease',
      logger: options.logger,
      logObserver: {
        onAppend: (bytes, seconds) => {
          metricsHooks?.observeAppend(bytes, seconds);
          ownLogMetrics?.observeWritten(bytes);
        },
        onFsync: (seconds) => ownLogMetrics?.observeFsync(seconds),
        onSegmentsChanged: (totalBytes) => metricsHooks?.setLogBytes(totalBytes),
      },
      wrapEngine: options.wrapEngine,
      randomSeed: options.randomSeed,
      fileSystem: options.fileSystem,
      adjustCore: options.adjustCore,
      openLog: options.openLog,
      generationSpace: options.generationSpace,
    });
    try {
      const replica = new Replica(options, logStore, stateMachine, rawNode);
      metricsHooks = replica.metrics;
      // Found while opening (a lost batch, a meta record that fails its checksum): the replica
      // starts all the same, reports it and keeps its log serving the group.
      if (stateMachine.fault !== undefined) replica.enterStorageFault(stateMachine.fault);
      replica.metrics.setLogBytes(logStore.logBytes());
      const openTransport = options.openTransport ?? openPeerTransport(options);
      replica.transport = await openTransport(replica.directory.peerAddresses(), {
        onMessages: (messages, from) => replica.handleMessages(messages, from),
        onSnapshotChunk: (chunk) => replica.handleSnapshotChunk(chunk),
        onSnapshotAborted: (abort) => replica.snapshotReceiver.abort(abort.snapshotId),
        onUnreachable: (peerId) => {
          replica.clockBeforeInput();
          replica.rawNode.reportUnreachable(peerId);
          replica.readyLoop.schedule();
        },
        onSnapshotMessageDropped: (peerId) => {
          replica.clockBeforeInput();
          replica.rawNode.reportSnapshot(peerId, false);
          replica.readyLoop.schedule();
        },
      });
      replica.directory.attach(replica.transport);
      replica.tickTimer = replica.scheduler.setInterval(() => replica.tick(), options.tickIntervalMs);
      // A group of one has no one to wait for: it elects itself at once.
      if (options.initialMembers.length === 1 && !options.join) replica.rawNode.campaign();
      replica.readyLoop.schedule();
      options.logger.info(
        { raftId: options.self.raftId, applied: stateMachine.appliedIndex, lastIndex: logStore.lastIndex() },
        'replica: started',
      );
      return replica;
    } catch (error) {
      await logStore.close();
      await stateMachine.close();
      throw error;
    }
  }

  get peerPort(): number {
    return this.transport?.port ?? 0;
  }

  /**
   * The user keys this replica's state machine holds, as applied here (see
   * `ReplicaStateMachine.userKeyCount`): a count kept as batches apply, never a scan. `undefined`
   * while the replica has a storage fault.
   */
  get userKeyCount(): number | undefined {
    return this.storageFault === undefined ? this.stateMachine.userKeyCount : undefined;
  }

  get engine(): ReplicaStateMachine['engine'] {
    return this.stateMachine.engine;
  }

  // -----------------------------------------------------------------------------------------------
  // The client API.

  /**
   * Proposes a write and resolves once it is committed and applied (or was applied before under
   * the same request id), with the index of the entry. Rejects with NOT_LEADER on a follower, and
   * with COMMIT_TIMEOUT when the entry does not apply in time (it may still apply: retry with the
   * same request id).
   */
  write(command: Command): Promise<number> {
    this.assertServing();
    if (this.role !== 'leader') return Promise.reject(this.notLeader());
    const requestId = command.requestId.byteLength > 0 ? Buffer.from(command.requestId) : randomBytes(16);
    return this.proposals.propose(requestId, encodeCommand({ ...command, requestId }));
  }

  /**
   * Proposes a consistency check and resolves with its index once it is applied here: every
   * replica that applies it hashes its state as of that index (`consistencyHash`). Leader only.
   */
  proposeConsistencyCheck(): Promise<number> {
    return this.write({ operation: 'consistency-check', requestId: randomBytes(16) });
  }

  /**
   * Proposes the verdict of a consistency check: the hash a majority of the voters computed at
   * `checkIndex` (hex). Every replica compares its own hash there, and a replica that differs
   * enters a storage fault and is rebuilt. Resolves once the verdict is applied here.
   */
  proposeConsistencyVerdict(checkIndex: number, hash: string): Promise<number> {
    return this.write({
      operation: 'consistency-verdict',
      requestId: randomBytes(16),
      checkIndex,
      hash: Buffer.from(hash, 'hex'),
    });
  }

  /** The newest consistency hash of this replica's state, if it computed one since it started. */
  get consistencyHash(): ConsistencyHash | undefined {
    return this.stateMachine.consistencyHash;
  }

  /** Reads a key. `linearizable` confirms leadership with a ReadIndex round first. */
  async read(key: string, consistency: 'linearizable' | 'stale'): Promise<Buffer | undefined> {
    this.assertServing();
    if (consistency === 'linearizable') await this.readBarrier();
    this.assertServing();
    try {
      return await this.stateMachine.get(key);
    } catch (error) {
      throw this.faultOf(error);
    }
  }

  /**
   * Scans user keys in byte order (see `ReplicaStateMachine.scan`). `linearizable` confirms
   * leadership with one ReadIndex round first, as `read` does; the scan then reads one consistent
   * view of the state, taken once everything committed before the request is applied.
   */
  async *scan(
    range: UserKeyRange,
    limit: number,
    consistency: 'linearizable' | 'stale',
  ): AsyncGenerator<EngineEntry, void, undefined> {
    this.assertServing();
    if (consistency === 'linearizable') await this.readBarrier();
    this.assertServing();
    try {
      yield* this.stateMachine.scan(range, limit);
    } catch (error) {
      throw this.faultOf(error);
    }
  }

  /**
   * Resolves once a read of the local state is linearizable: this replica is still the leader
   * after the read arrived (confirmed by a quorum) and has applied everything committed before.
   */
  readBarrier(): Promise<void> {
    return this.reads.barrier();
  }

  /**
   * Proposes a membership change on the leader and resolves once it is applied here (see
   * `membershipProposal` for what is refused). Every change is refused while another one is pending.
   */
  async changeMembership(change: MembershipChange): Promise<void> {
    this.assertServing();
    if (this.role !== 'leader') throw this.notLeader();
    const status = this.rawNode.status();
    const token = `${this.options.self.raftId}-${this.scheduler.wallClockMs()}-${this.membershipCounter++}`;
    const proposal: ConfChange = membershipProposal(
      change,
      {
        config: status.config,
        commit: status.commit,
        matchOf: (raftId) => status.progress?.get(raftId)?.match ?? 0,
      },
      this.directory,
      token,
      this.options.snapshotCatchUpEntries,
    );
    try {
      this.clockBeforeInput();
      this.rawNode.proposeConfChange(proposal);
    } catch (error) {
      if (error instanceof RaftError) throw membershipRefused(`${error.code}: ${error.message}`);
      throw error;
    }
    this.readyLoop.schedule();
    await new Promise<void>((resolve, reject) => {
      this.membershipWaiters.set(token, {
        resolve,
        reject,
        timer: this.scheduler.setTimeout(() => {
          this.membershipWaiters.delete(token);
          reject(new ImpulseError('COMMIT_TIMEOUT', 'the membership change did not apply in time'));
        }, this.options.proposalTimeoutMs),
      });
    });
  }

  /** Hands leadership to `raftId` (thesis §3.10) and resolves once this replica is no longer leader. */
  async transferLeadership(raftId: NodeId): Promise<void> {
    this.assertServing();
    if (this.role !== 'leader') throw this.notLeader();
    if (!this.rawNode.status().config.voters.includes(raftId))
      throw membershipRefused(`raft id ${raftId} is not a voter`);
    if (raftId === this.options.self.raftId) return;
    this.clockBeforeInput();
    this.rawNode.transferLeadership(raftId);
    this.readyLoop.schedule();
    const deadlineMs =
      this.scheduler.nowMs() + this.options.tickIntervalMs * this.options.electionTimeoutTicks * 3;
    while (this.scheduler.nowMs() < deadlineMs) {
      await sleep(this.scheduler, this.options.tickIntervalMs);
      if (this.leaderId === raftId) return;
    }
    throw new ImpulseError('COMMIT_TIMEOUT', `leadership did not move to ${raftId} in time`);
  }

  /**
   * Compacts the log through at least `throughIndex` now, rather than once `snapshotEntries` more
   * entries have applied: the node asks it of a group that keeps the node log's oldest segments
   * (`node/log-purge.ts`). The state machine is made durable first, and nothing it has not applied
   * is dropped (see `CompactionPolicy.requestCompaction`). Resolves with how it ended; never
   * rejects (a failed log write fails the replica, which answers `stopped`).
   */
  compactNow(throughIndex: number): Promise<RequestedCompactionOutcome> {
    if (this.stopped || this.failure !== undefined) return Promise.resolve('stopped');
    if (this.storageFault !== undefined) return Promise.resolve('failed');
    // Only applying more can help; the Ready loop need not run for it.
    if (this.stateMachine.appliedIndex < throughIndex) return Promise.resolve('behind');
    const outcome = this.compaction.requestCompaction(throughIndex);
    this.readyLoop.schedule();
    return outcome;
  }

  /** The member with this replica id, if the replica knows it. */
  memberByReplicaId(replicaId: string): MemberSpec | undefined {
    return this.directory.byReplicaId(replicaId);
  }

  status(): ReplicaStatus {
    const status = this.rawNode.status();
    const role: ReplicaRole = status.isLearner
      ? 'learner'
      : status.role === 'precandidate'
        ? 'candidate'
        : status.role;
    return {
      groupId: this.options.groupId,
      replicaId: this.options.self.replicaId,
      raftId: this.options.self.raftId,
      role,
      term: status.term,
      leaderId: status.leaderId,
      leaderReplicaId: this.directory.get(status.leaderId)?.replicaId ?? null,
      commitIndex: status.commit,
      appliedIndex: this.stateMachine.appliedIndex,
      firstIndex: this.logStore.firstIndex(),
      lastIndex: this.logStore.lastIndex(),
      snapshotIndex: this.logStore.snapshot().metadata.index,
      logBytes: this.logStore.logBytes(),
      voters: [...status.config.voters],
      learners: [...status.config.learners],
      members: this.directory.values().map((member) => ({
        raftId: member.raftId,
        replicaId: member.replicaId,
        url: member.url,
        peerAddress: `${member.peerHost}:${member.peerPort}`,
      })),
      pendingProposals: this.proposals.pendingCount,
      storageFault: this.storageFault?.toJSON() ?? null,
    };
  }

  /** Why this replica refuses to take part in its group under its id, if it does (see `refuseReusedIdentity`). */
  get identityRefusal(): string | undefined {
    return this.reusedIdentity;
  }

  /** The storage fault that stopped this replica, if one did. */
  get fault(): StorageFault | undefined {
    return this.storageFault;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.tickTimer?.cancel();
    this.readyLoop.stop();
    this.failEveryWaiter(new ImpulseError('NOT_READY', 'the replica is stopping'));
    await this.transport?.stop();
    // Let a Ready being written finish, so that the log is not closed under it.
    while (this.readyLoop.busy) await sleep(this.scheduler, 5);
    this.compaction.settleRequested('stopped');
    await this.snapshotReceiver.stop();
    await this.logStore.close();
    await this.stateMachine.close();
    this.metrics.release();
    this.options.logger.info('replica: stopped');
  }

  // -----------------------------------------------------------------------------------------------
  // Inputs to the core.

  private tick(): void {
    if (this.stopped) return;
    if (this.monotonicTicks === undefined) this.rawNode.tick();
    else this.monotonicTicks.catchUp();
    this.rebuild.maybeRequest({
      faulted: this.storageFault !== undefined,
      leaderId: this.leaderId,
      leaderReplicaId: this.directory.get(this.leaderId)?.replicaId ?? null,
      term: this.term,
    });
    this.readyLoop.schedule();
  }

  /**
   * Lease mode: brings the core's clock up to monotonic time before it takes any input (see
   * MonotonicTicks for why the order matters to a lease, on the leader and on the followers).
   */
  private clockBeforeInput(): void {
    this.monotonicTicks?.catchUp();
  }

  private handleMessages(messages: Message[], from?: InboundSender): void {
    if (this.stopped) return;
    // Before stepping anything: a heartbeat that waited out a pause in the socket must restart the
    // election timer after the pause is counted, not before (see MonotonicTicks).
    this.clockBeforeInput();
    for (const message of messages) {
      const refusal =
        refusalOf(message, this.peerMessageContext, from) ?? this.answerableSender(message, from);
      if (refusal !== undefined) {
        this.refusePeerMessage(message, refusal);
        continue;
      }
      if (message.type === 'MsgRebuildRequest') {
        void this.snapshotSender.sendRebuild(message);
        continue;
      }
      if ((message.type === 'MsgVote' || message.type === 'MsgPreVote') && this.holdsNoLog()) {
        // A replica with no log yet (it joined, and has not received its first snapshot) has
        // nothing to vote with: an empty log is "up to date" against any candidate, and if its id
        // was a voter's that lost its data, a vote could be its second in a term it voted in.
        this.options.logger.debug(
          { type: message.type, from: message.from },
          'replica: no vote without a log',
        );
        continue;
      }
      if (message.type === 'MsgSnap' && !this.acceptSnapshotMessage(message)) continue;
      const error = this.rawNode.step(message);
      if (error !== undefined && error.code !== 'RAFT_STEP_PEER_NOT_FOUND') {
        this.options.logger.debug(
          { code: error.code, type: message.type, from: message.from },
          'replica: message refused',
        );
      }
    }
    this.readyLoop.schedule();
  }

  /**
   * A leader this replica's directory does not know yet (the check let its message through) is
   * answered at the address its connection proved, until the directory learns it
   * (`MemberDirectory.reachProvisionally`). `unknownSender` when it cannot be answered.
   */
  private answerableSender(
    message: Message,
    from: InboundSender | undefined,
  ): PeerMessageRefusal | undefined {
    if (this.directory.has(message.from)) return undefined;
    if (from === undefined || !this.directory.reachProvisionally(message.from, from.address))
      return 'unknownSender';
    return undefined;
  }

  /** Drops a peer's message the core must not see: counted, and logged once per kind per 10 s. */
  private refusePeerMessage(message: Message, refusal: PeerMessageRefusal): void {
    this.metrics.peerMessagesRefused.inc({ reason: refusal });
    this.peerRefusalWarnings.warn(
      refusal,
      {
        reason: refusal,
        type: message.type,
        from: message.from,
        term: message.term,
        index: message.index,
        commit: message.commit,
        entries: message.entries.length,
      },
      'replica: dropped a peer message that contradicts itself or this log (counted in impulse_replica_peer_messages_refused_total)',
    );
  }

  private handleSnapshotChunk(chunk: SnapshotChunk): Promise<void> {
    return this.snapshotReceiver.handleChunk(chunk);
  }

  /**
   * A MsgSnap is stepped only when its stream arrived whole; otherwise the leader sends again. A
   * replica with no log whose first snapshot names it a voter refuses it for good: its id is a
   * voter's that lost its data (normal joiners are learners until they have caught up), and
   * taking the snapshot would let it vote again in terms it may have voted in (docs/decisions/0009).
   */
  private acceptSnapshotMessage(message: Message): boolean {
    const confState = message.snapshot?.metadata.confState;
    const self = this.options.self.raftId;
    if (
      this.holdsNoLog() &&
      confState !== undefined &&
      (confState.voters.includes(self) || confState.votersOutgoing.includes(self))
    ) {
      this.refuseReusedIdentity();
      return false;
    }
    return this.snapshotReceiver.accept(message);
  }

  // -----------------------------------------------------------------------------------------------
  // Steps of the Ready loop.

  private handleSoftState(role: Role, leaderId: NodeId): void {
    const wasLeader = this.role === 'leader';
    if (leaderId !== this.leaderId) this.metrics.leaderChanges.inc();
    this.role = role;
    this.leaderId = leaderId;
    this.options.logger.info(
      { role, leaderId, leaderReplicaId: this.directory.get(leaderId)?.replicaId ?? null },
      'replica: role changed',
    );
    if (wasLeader && role !== 'leader') {
      // Proposals may still commit under the next leader; the gateway retries them there with
      // the same request id, and the state machine applies each id once.
      this.failEveryWaiter(this.notLeader());
    }
  }

  private sendMessages(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    let outgoing = messages;
    if (messages.some((message) => message.type === 'MsgSnap')) {
      outgoing = messages.filter((message) => message.type !== 'MsgSnap');
      for (const message of messages) if (message.type === 'MsgSnap') void this.snapshotSender.send(message);
    }
    this.transport?.send(outgoing);
  }

  /** Entries applied: their writers and the membership changes asked here are answered. */
  private answerApplied(results: readonly AppliedEntry[], memberships: readonly MembershipToken[]): void {
    this.metrics.proposalsCommitted.inc(results.length);
    for (const result of results) this.proposals.resolveApplied(result);
    for (const token of memberships) {
      const waiter = this.membershipWaiters.get(token);
      this.membershipWaiters.delete(token);
      if (waiter === undefined) continue;
      waiter.timer.cancel();
      waiter.resolve();
    }
  }

  private async installSnapshot(index: number): Promise<void> {
    await this.snapshotReceiver.install(index);
    this.compaction.noteSnapshot(index);
    this.applier.handedOutIndex = Math.max(this.applier.handedOutIndex, index);
    const stored = this.stateMachine.membersRecord;
    if (stored !== undefined)
      this.directory.adopt(
        decodeMembersRecord(stored),
        decodeRemovedRecord(this.stateMachine.removedMembersRecord),
      );
    this.metrics.snapshotsInstalled.inc();
    // The whole state was replaced: a faulted replica is rebuilt by it, as by a rebuild stream.
    if (this.storageFault !== undefined) this.leaveStorageFault(index);
  }

  /** A rebuild stream that arrived whole is installed before the next Ready (see `Rebuild`). */
  private async completeRebuild(): Promise<void> {
    const pending = this.rebuild.pending;
    if (pending === undefined) return;
    this.snapshotReceiver.release(pending);
    const metadata = await this.rebuild.complete(
      this.storageFault !== undefined,
      this.applier.handedOutIndex,
      () => ({ confState: this.rawNode.status().config, memberRecords: this.directory.records() }),
    );
    if (metadata === undefined) return;
    this.compaction.noteSnapshot(metadata.index);
    this.metrics.snapshotsInstalled.inc();
    this.leaveStorageFault(metadata.index);
  }

  // -----------------------------------------------------------------------------------------------
  // Storage faults and identity.

  /** The state machine was replaced by the leader's: the replica serves and may lead again. */
  private leaveStorageFault(snapshotIndex: number): void {
    const fault = this.storageFault;
    if (fault === undefined) return;
    this.storageFault = undefined;
    this.rebuild.reset();
    this.rawNode.allowCampaigns();
    this.metrics.rebuilds.inc();
    this.options.logger.info(
      { snapshotIndex, applied: this.stateMachine.appliedIndex, faultKind: fault.kind },
      "replica: rebuilt from the leader's snapshot; serving again",
    );
  }

  /** No log at all: a replica that joined and has not yet received its first snapshot. */
  private holdsNoLog(): boolean {
    return this.logStore.lastIndex() === 0 && this.logStore.snapshot().metadata.index === 0;
  }

  /**
   * Its id is a voter's, yet it holds no log: it lost its data and was started again under its old
   * id. It refuses every snapshot and every vote from now on, and says what to do, until stopped.
   */
  private refuseReusedIdentity(): void {
    if (this.reusedIdentity !== undefined) return;
    this.reusedIdentity = `replica ${this.options.self.replicaId} (raft id ${this.options.self.raftId}) is a voter of group ${this.options.groupId}, but started with no Raft log: it lost its data, and must not vote again under its old id. Stop it, remove it from its group (DELETE /admin/members/${this.options.self.replicaId} on the leader) and add it back under a new replica id with --join`;
    this.options.logger.error({ code: 'REPLICA_ID_REUSED' }, `replica: ${this.reusedIdentity}`);
    this.snapshotReceiver.abortIncoming();
  }

  private notLeader(): ImpulseError {
    const leader = this.directory.get(this.leaderId);
    return new ImpulseError('NOT_LEADER', 'this replica is not the leader of its group', {
      details: {
        group: this.options.groupId,
        leaderHint: leader?.replicaId ?? null,
        leaderUrl: leader?.url ?? null,
      },
    });
  }

  private assertServing(): void {
    if (this.stopped || this.failure !== undefined)
      throw new ImpulseError('NOT_READY', 'the replica is stopping');
    if (this.storageFault !== undefined) throw this.storageFaultError(this.storageFault);
  }

  /** The answer to a client while this replica has a storage fault. */
  private storageFaultError(fault: StorageFault): ImpulseError {
    return new ImpulseError(
      'STORAGE_FAULT',
      `replica ${this.options.self.replicaId} found its stored state damaged and serves nothing until it is rebuilt; its group's other replicas serve`,
      {
        details: {
          group: this.options.groupId,
          replica: this.options.self.replicaId,
          faultKind: fault.kind,
          faultKey: fault.key ?? null,
          faultKeyRangeStart: fault.keyRange?.start ?? null,
          faultKeyRangeEnd: fault.keyRange?.end ?? null,
          faultFile: fault.file ?? null,
        },
        cause: fault,
      },
    );
  }

  /** A state machine failure as the client sees it: a storage fault stops the replica first. */
  private faultOf(error: unknown): unknown {
    if (!(error instanceof StorageFault)) return error;
    this.enterStorageFault(error);
    return this.storageFaultError(error);
  }

  /**
   * Stops this replica from serving, for good, on its first storage fault: it logs the fault, sets
   * the fault metrics, answers every waiting client with STORAGE_FAULT, and makes the core
   * unpromotable (a leader steps down at once). The process and the Raft log go on: the replica
   * still appends, acknowledges and votes, so that the group keeps its durability margin.
   */
  private enterStorageFault(fault: StorageFault): void {
    if (this.storageFault !== undefined) return;
    this.storageFault = fault;
    this.metrics.storageFaults.inc();
    this.options.logger.error(
      {
        faultKind: fault.kind,
        faultKey: fault.key,
        faultKeyRange: fault.keyRange,
        faultFile: fault.file,
        err: fault,
      },
      'replica: storage fault; this replica serves nothing and never leads until it is rebuilt (docs/replication.md)',
    );
    this.clockBeforeInput();
    this.rawNode.forbidCampaigns();
    this.failEveryWaiter(this.storageFaultError(fault));
    // At start-up the fault is entered before the transport exists; the first Ready waits for it.
    if (this.transport !== undefined) this.readyLoop.schedule();
  }

  private failEveryWaiter(error: Error): void {
    this.proposals.failAll(error);
    this.reads.failAll(error);
  }

  /**
   * A failed write to the log or the state machine: the replica stops serving rather than risk
   * divergence, and its host is told (a process of one replica exits; a restart recovers from the
   * durable log and state machine).
   */
  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.options.logger.fatal({ err: error }, 'replica: the Ready loop failed; the replica stops');
    this.failEveryWaiter(new ImpulseError('NOT_READY', 'the replica failed'));
    this.tickTimer?.cancel();
    this.readyLoop.stop();
    this.compaction.settleRequested('stopped');
    this.options.onFailure(error);
  }
}

/**
 * The directory a replica starts with. The one written by the last membership change replaces
 * the start-up configuration, which may name replicas that are not (or no longer) members: a
 * newcomer the operator listed before adding it, a removed one. Counting those as members made
 * the leader refuse to add the newcomer ("already a member") and let a removed one's messages
 * through.
 */
function initialDirectory(
  options: ReplicaOptions,
  stateMachine: ReplicaStateMachine,
  rawNode: RawNode,
): readonly MemberSpec[] {
  const stored = stateMachine.membersRecord;
  if (stored !== undefined) return decodeMembersRecord(stored);
  const configuration = rawNode.status().config;
  const inConfiguration = new Set([
    ...configuration.voters,
    ...configuration.learners,
    ...configuration.votersOutgoing,
  ]);
  // A joiner has no configuration: it learns the directory with its first snapshot.
  if (inConfiguration.size === 0) return options.initialMembers;
  return options.initialMembers.filter((member) => inConfiguration.has(member.raftId));
}

/** The production transport: a `PeerTransport` on the replica's peer port. */
function openPeerTransport(options: ReplicaOptions): OpenReplicaTransport {
  return async (peers, handlers) => {
    const transport = await PeerTransport.start({
      listenHost: options.peerListenHost,
      listenPort: options.peerListenPort ?? options.self.peerPort,
      selfId: options.self.raftId,
      clusterId: options.clusterId,
      ...(options.clusterSecret === undefined ? {} : { secret: options.clusterSecret }),
      groupId: options.groupId,
      peers,
      // Its hello names the sender's Raft id, not an address to answer at: only members are taken.
      onMessages: (messages) => handlers.onMessages(messages),
      onSnapshotChunk: handlers.onSnapshotChunk,
      onSnapshotAborted: handlers.onSnapshotAborted,
      onUnreachable: handlers.onUnreachable,
      onSnapshotMessageDropped: handlers.onSnapshotMessageDropped,
      logger: options.logger,
      registry: options.registry,
    });
    return {
      get port() {
        return transport.port;
      },
      send: (messages) => transport.send(messages),
      sendSnapshotChunks: (to, snapshotId, chunks) => transport.sendSnapshotChunks(to, snapshotId, chunks),
      hasPeer: (raftId) => transport.peerStatus(raftId) !== undefined,
      addPeer: (raftId, address) => transport.addPeer(raftId, address),
      updatePeer: (raftId, address) => transport.updatePeer(raftId, address),
      removePeer: (raftId) => transport.removePeer(raftId),
      stop: () => transport.stop(),
    };
  };
}

export type ReplicaRole = 'leader' | 'follower' | 'candidate' | 'learner';

export interface ReplicaStatus {
  readonly groupId: string;
  readonly replicaId: string;
  readonly raftId: number;
  readonly role: ReplicaRole;
  readonly term: number;
  readonly leaderId: number;
  readonly leaderReplicaId: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly logBytes: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  readonly members: readonly { raftId: number; replicaId: string; url: string; peerAddress: string }[];
  readonly pendingProposals: number;
  /** The storage fault that stopped this replica (kind, message, key or key range, file), if any. */
  readonly storageFault: Record<string, string | null> | null;
}
