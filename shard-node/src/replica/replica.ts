import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ImpulseError, StartupError, type Logger, type Registry } from '@impulse/common';
import {
  RawNode,
  RaftError,
  createSeededRandom,
  decodeConfChange,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type Ready,
  type ReadState,
  type Role,
  type SnapshotMetadata,
} from '../raft/index.js';
import { RaftLogStore, isRaftLogError } from '../raft-log/index.js';
import {
  ReplicaStateMachine,
  StorageFault,
  consistencyVerdictOf,
  encodeCommand,
  type AppliedEntry,
  type Command,
  type ConsistencyHash,
  type SnapshotInstall,
  type UserKeyRange,
} from '../state-machine/index.js';
import type { Engine, EngineName, Entry as EngineEntry } from '../storage/index.js';
import { PeerTransport, WarningLimiter, type SnapshotChunk } from '../transport/index.js';
import { createReplicaMetrics, type ReplicaMetrics } from './metrics.js';
import { refusalOf, type PeerMessageContext, type PeerMessageRefusal } from './peer-message-check.js';
import { MonotonicTicks } from './monotonic-ticks.js';
import { raftLoggerOf } from './raft-logger.js';

/** One member of the group, as the replica knows it. */
export interface MemberSpec {
  readonly raftId: NodeId;
  readonly replicaId: string;
  /** Base URL of the member's client API (for leader hints). */
  readonly url: string;
  readonly peerHost: string;
  readonly peerPort: number;
}

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
   * For fault-injection tests only (see `StateMachineOptions.wrapEngine`): wraps every engine the
   * state machine opens. `ShardNode` never sets it.
   */
  readonly wrapEngine?: (engine: Engine) => Engine;
}

export type ReadMode = 'readindex' | 'lease';

/**
 * A state machine must never be behind its log's snapshot: the entries before the snapshot are
 * gone, and the state they made is only in the state machine. One case is routine: a state machine
 * that kept nothing (a memory engine from before its image was written) over a log never compacted,
 * whose snapshot is the founding one at index 1; its whole state is the founding configuration,
 * which the log's snapshot holds, so it is founded again from there, and the log replays the rest.
 * Any other case means the state machine's files were lost (state/ removed): a storage fault of
 * kind `lost`. The replica starts faulted and is rebuilt from its leader's snapshot; its Raft log,
 * which is whole, keeps its identity, its votes and the entries it acknowledged.
 */
async function catchUpWithLogSnapshot(
  stateMachine: ReplicaStateMachine,
  logStore: RaftLogStore,
  stateDirectory: string,
): Promise<void> {
  const logSnapshot = logStore.snapshot().metadata;
  if (stateMachine.appliedIndex >= logSnapshot.index) return;
  if (stateMachine.appliedIndex === 0 && logSnapshot.index === 1) {
    await stateMachine.bootstrap(logSnapshot.confState);
    return;
  }
  stateMachine.declareFault(
    new StorageFault(
      `the state machine has applied up to index ${stateMachine.appliedIndex}, behind the Raft log's snapshot at index ${logSnapshot.index}: the state between is lost (was state/ removed?)`,
      { kind: 'lost', file: stateDirectory },
    ),
  );
}

/**
 * A Raft log created by this start under a state machine that applied entries means the log was
 * lost (its folder removed) while the state machine was kept. The state machine alone cannot
 * stand in for it: the log held the replica's hard state (the vote it cast in its term) and the
 * entries it acknowledged after its applied index, which a leader may have counted toward a
 * commit. Rebuilding an empty log from the state machine would let the replica vote twice in one
 * term and forget acknowledged entries: refused. (An interrupted snapshot install also leaves
 * the state machine ahead of the log, but over a log that existed; that is repaired below.)
 */
function refuseLostLog(
  options: ReplicaOptions,
  stateMachine: ReplicaStateMachine,
  logStore: RaftLogStore,
): void {
  if (!logStore.created || (stateMachine.appliedIndex === 0 && stateMachine.fault === undefined)) return;
  throw new StartupError(
    'DATA_DIRECTORY_DAMAGED',
    `the Raft log in ${join(options.dataDirectory, 'raft')} is missing while the state machine has applied up to index ${stateMachine.appliedIndex}: the votes and the entries this replica acknowledged are lost, so it must not vote again under its id. Remove it from its group (DELETE /admin/members/${options.self.replicaId} on the leader) and add it back under a new replica id with --join`,
  );
}

/**
 * A Raft log damaged other than at its torn tail (`RAFT_LOG_CORRUPT`) is a data directory that
 * cannot be trusted: its votes and acknowledged entries may be gone, so the replica must be
 * replaced under a new id, which the refusal says. Other failures pass as they are.
 */
function raftLogRefusal(options: ReplicaOptions, error: unknown): unknown {
  if (!isRaftLogError(error, 'RAFT_LOG_CORRUPT')) return error;
  return new StartupError(
    'DATA_DIRECTORY_DAMAGED',
    `${error.message}. The votes and entries this replica acknowledged cannot be trusted, so it must not take part again under its id: remove it from its group (DELETE /admin/members/${options.self.replicaId} on the leader), wipe ${options.dataDirectory}, and add it back under a new replica id with --join`,
    { cause: error },
  );
}

type Waiter<T = void> = {
  resolve: (value: T) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
};

/** Reads waiting for one ReadIndex round, then for the state machine to reach its index. */
interface ReadBatch {
  readonly waiters: Waiter[];
  index: number | undefined;
}

/** Memory engine: an image of the state machine written in the background (see `maybeCompactBehindImage`). */
interface PendingImage {
  readonly metadata: SnapshotMetadata;
  state: 'writing' | 'written' | 'failed';
}

/** A snapshot stream being received from the leader, and its fate. */
interface IncomingSnapshot {
  readonly snapshotId: string;
  readonly from: NodeId;
  readonly install: SnapshotInstall;
  complete: boolean;
}

/**
 * The host of one replica: it runs the Raft core (`RawNode`) against the durable log
 * (`RaftLogStore`), the peer transport and the key-value state machine, and serves the client
 * API's writes and reads.
 *
 * The Ready loop, for each Ready, in this order: installs a snapshot received from the leader;
 * persists snapshot metadata, entries and hard state with ONE fsync (group commit: every proposal
 * made while the previous Ready was being written is in this one); sends the messages; applies
 * the committed entries in one engine batch; answers the reads whose index is applied; then
 * advances the core. Anything the core asks for while a Ready is being handled waits for the next.
 */
export class Replica {
  private readonly rawNode: RawNode;
  private readonly members = new Map<NodeId, MemberSpec>();
  private readonly metrics: ReplicaMetrics;
  private role: Role = 'follower';
  private leaderId: NodeId = 0;
  private term = 0;
  private processing = false;
  private readyScheduled = false;
  private stopped = false;
  private failure: unknown;
  private tickTimer: NodeJS.Timeout | undefined;
  /** Lease mode: the core's clock, caught up with monotonic time before every input. */
  private readonly monotonicTicks: MonotonicTicks | undefined;
  /** Proposals of this turn, proposed together at the end of it. */
  private proposalQueue: Uint8Array[] = [];
  private proposalFlushScheduled = false;
  /** Proposals waiting for their entry to apply, by request id (latin1); resolved with its index. */
  private readonly proposals = new Map<string, Waiter<number>[]>();
  /** Reads of this turn, sharing one ReadIndex request. */
  private readBatch: ReadBatch | undefined;
  /** ReadIndex requests in flight, by context (latin1). */
  private readonly readsInFlight = new Map<string, ReadBatch>();
  /** Reads whose index is known, waiting for the state machine to apply it. */
  private readsWaitingForApply: ReadBatch[] = [];
  private readContextCounter = 0;
  private lastSnapshotIndex: number;
  private readonly snapshotsSending = new Set<NodeId>();
  private snapshotCounter = 0;
  private incomingSnapshot: IncomingSnapshot | undefined;
  /** A received snapshot stepped into the core, waiting for its Ready. */
  private snapshotToInstall: IncomingSnapshot | undefined;
  /** Set when this replica's id turned out to be a voter's that lost its data: why it refuses all. */
  private reusedIdentity: string | undefined;
  private readonly membershipWaiters = new Map<MembershipToken, Waiter>();
  private membershipCounter = 0;
  /** Memory engine: the image being written in the background, or written and not yet compacted behind. */
  private memoryImage: PendingImage | undefined;
  /**
   * The storage fault that stopped this replica's state machine, if one did. From then on it
   * answers no read and takes no write, never campaigns, and applies nothing; it still appends,
   * acknowledges and votes, since its Raft log is healthy (docs/decisions/0008-storage-faults.md).
   */
  private storageFault: StorageFault | undefined;
  /**
   * The highest committed index the core has handed to this host: applied, or passed over while
   * the state machine was faulted (a rebuild replays what lies past its snapshot from the log).
   */
  private handedOutIndex = 0;
  /** While faulted: the rebuild stream last asked of the leader, and when to ask again. */
  private rebuildSnapshotId: string | undefined;
  private nextRebuildRequestAt = 0;
  private rebuildRetryMs = rebuildRetryMinMs;
  /** A rebuild stream received whole, for the Ready loop to install. */
  private rebuildToInstall: IncomingSnapshot | undefined;

  private constructor(
    private readonly options: ReplicaOptions,
    private readonly logStore: RaftLogStore,
    private readonly stateMachine: ReplicaStateMachine,
    private transport: PeerTransport | undefined,
    rawNode: RawNode,
  ) {
    this.rawNode = rawNode;
    this.peerRefusalWarnings = new WarningLimiter(options.logger, 10_000, () => performance.now());
    this.peerMessageContext = {
      selfId: options.self.raftId,
      isMember: (id) => this.members.has(id),
      lastIndex: () => this.rawNode.lastIndex(),
    };
    this.metrics = createReplicaMetrics(options.registry, () => this.status());
    // The directory written by the last membership change replaces the start-up configuration,
    // which may name replicas that are not (or no longer) members: a newcomer the operator listed
    // before adding it, a removed one. Counting those as members made the leader refuse to add the
    // newcomer ("already a member") and let a removed one's messages through.
    const stored = stateMachine.membersRecord;
    const configuration = rawNode.status().config;
    const inConfiguration = new Set([
      ...configuration.voters,
      ...configuration.learners,
      ...configuration.votersOutgoing,
    ]);
    const known =
      stored !== undefined
        ? decodeMembersRecord(stored)
        : inConfiguration.size === 0
          ? options.initialMembers // a joiner: it learns the directory with its first snapshot
          : options.initialMembers.filter((member) => inConfiguration.has(member.raftId));
    for (const member of known) this.members.set(member.raftId, member);
    this.lastSnapshotIndex = stateMachine.appliedIndex;
    this.monotonicTicks =
      options.readMode === 'lease'
        ? new MonotonicTicks(options.tickIntervalMs, 4 * options.electionTimeoutTicks, () =>
            this.rawNode.tick(),
          )
        : undefined;
  }

  static async start(options: ReplicaOptions): Promise<Replica> {
    const logger = options.logger;
    const initialConfState: ConfState = {
      // A replica that joins a live group starts with no configuration: it learns it from the leader.
      voters: options.join ? [] : options.initialMembers.map((member) => member.raftId).sort((a, b) => a - b),
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    const stateMachine = await ReplicaStateMachine.open({
      directory: join(options.dataDirectory, 'state'),
      engine: options.engine,
      logger,
      ...(options.wrapEngine === undefined ? {} : { wrapEngine: options.wrapEngine }),
    });
    let metricsHooks: ReplicaMetrics | undefined;
    const logStore = await RaftLogStore.open({
      directory: join(options.dataDirectory, 'raft'),
      ...(options.logSegmentBytesMax === undefined ? {} : { segmentBytesMax: options.logSegmentBytesMax }),
      confState: initialConfState,
      logger: raftLoggerOf(logger.child({ component: 'raft-log' })),
      observer: {
        onAppend: (bytes, seconds) => metricsHooks?.observeAppend(bytes, seconds),
        onFsync: (seconds) => metricsHooks?.observeFsync(seconds),
        onSegmentsChanged: (totalBytes) => metricsHooks?.setLogBytes(totalBytes),
      },
    }).catch(async (error: unknown) => {
      await stateMachine.close();
      throw raftLogRefusal(options, error);
    });
    try {
      // A brand-new group starts from a snapshot at index 1 that holds the founding configuration,
      // on every founding replica alike. A replica that joins later has an empty log and no
      // configuration; the leader cannot send it entries from before index 2, so it sends the
      // snapshot, which carries the configuration (and everything else) to the newcomer.
      //
      // A group is founded once: only a start told so (`bootstrap`) founds it. An empty directory
      // is also what a replica that lost its files looks like, and founding there would elect a
      // leader of an empty group at term 1 once a majority of replicas lost their files, or let
      // this one vote a second time in a term it already voted in (see found-a-group-once.md).
      refuseLostLog(options, stateMachine, logStore);
      // A faulted state machine held state (its applied index cannot be trusted): never founded again.
      const faulted = stateMachine.fault !== undefined;
      const holdsRaftState = faulted || stateMachine.appliedIndex > 0 || logStore.lastIndex() > 0;
      let founded = false;
      if (!holdsRaftState && !options.join) {
        if (!options.bootstrap) {
          throw new StartupError(
            'DATA_DIRECTORY_EMPTY',
            `data directory ${options.dataDirectory} holds no Raft state: starting would found group ${options.groupId} again, with no data. On the group's first start, pass --bootstrap; a replica that lost its data must be removed from its group (DELETE /admin/members/${options.self.replicaId} on the leader) and added back under a new replica id with --join`,
          );
        }
        await stateMachine.bootstrap(initialConfState);
        founded = true;
        logger.info({ voters: initialConfState.voters }, 'replica: founded the group');
      } else if (options.bootstrap && holdsRaftState) {
        logger.info(
          { applied: stateMachine.appliedIndex, lastIndex: logStore.lastIndex() },
          'replica: --bootstrap ignored: the data directory holds Raft state (the group is founded)',
        );
      }
      // A faulted state machine's applied index cannot be trusted: nothing is repaired from it.
      if (!faulted)
        await catchUpWithLogSnapshot(stateMachine, logStore, join(options.dataDirectory, 'state'));
      // The state machine is switched before the log records an installed snapshot: a crash in
      // between leaves a state machine ahead of the log, which the log catches up with here. A
      // founding replica takes the same path on purpose (its founding snapshot is in the state
      // machine only), which is routine and not worth a warning.
      if (
        stateMachine.fault === undefined &&
        stateMachine.appliedIndex > logStore.lastIndex() &&
        stateMachine.appliedIndex > logStore.snapshot().metadata.index
      ) {
        if (!founded) {
          logger.warn(
            { applied: stateMachine.appliedIndex, lastIndex: logStore.lastIndex() },
            'replica: the state machine is ahead of the log (interrupted snapshot install); repairing the log',
          );
        }
        await logStore.applySnapshotMetadata({
          index: stateMachine.appliedIndex,
          term: stateMachine.appliedTerm,
          confState: stateMachine.confState,
        });
        const hardState = logStore.hardState();
        await logStore.setHardState({
          term: Math.max(hardState.term, stateMachine.appliedTerm),
          vote: hardState.term >= stateMachine.appliedTerm ? hardState.vote : 0,
          commit: Math.max(hardState.commit, stateMachine.appliedIndex),
        });
      }
      const rawNode = new RawNode({
        id: options.self.raftId,
        storage: logStore,
        // The core restarts from the log's snapshot, not from the state machine's applied index: it
        // hands back the committed entries after the snapshot, so that membership changes among
        // them rebuild the configuration. The host skips the commands it already applied.
        applied: logStore.snapshot().metadata.index,
        electionTimeoutTicks: options.electionTimeoutTicks,
        heartbeatTicks: options.heartbeatTicks,
        checkQuorum: true,
        preVote: true,
        readOnlyOption: options.readMode === 'lease' ? 'leaseBased' : 'safe',
        // The gateway sends writes to the leader; a follower answers NOT_LEADER rather than forward.
        disableProposalForwarding: true,
        maxSizePerMessageBytes: 1024 * 1024,
        maxInflightMessages: 256,
        maxUncommittedEntriesBytes: 64 * 1024 * 1024,
        random: createSeededRandom(randomBytes(4).readUInt32BE()),
        logger: raftLoggerOf(logger.child({ component: 'raft' })),
      });
      const replica = new Replica(options, logStore, stateMachine, undefined, rawNode);
      replica.handedOutIndex = logStore.snapshot().metadata.index;
      metricsHooks = replica.metrics;
      // Found while opening (a lost batch, a meta record that fails its checksum): the replica
      // starts all the same, reports it and keeps its log serving the group.
      if (stateMachine.fault !== undefined) replica.enterStorageFault(stateMachine.fault);
      replica.metrics.setLogBytes(logStore.logBytes());
      replica.transport = await PeerTransport.start({
        listenHost: options.peerListenHost,
        listenPort: options.peerListenPort ?? options.self.peerPort,
        selfId: options.self.raftId,
        clusterId: options.clusterId,
        ...(options.clusterSecret === undefined ? {} : { secret: options.clusterSecret }),
        groupId: options.groupId,
        peers: new Map(
          [...replica.members.values()]
            .filter((member) => member.raftId !== options.self.raftId)
            .map((member) => [member.raftId, { host: member.peerHost, port: member.peerPort }]),
        ),
        onMessages: (messages) => replica.handleMessages(messages),
        onSnapshotChunk: (chunk) => replica.handleSnapshotChunk(chunk),
        onSnapshotAborted: (abort) => replica.abortIncomingSnapshot(abort.snapshotId),
        onUnreachable: (peerId) => {
          replica.clockBeforeInput();
          replica.rawNode.reportUnreachable(peerId);
          replica.scheduleReady();
        },
        onSnapshotMessageDropped: (peerId) => {
          replica.clockBeforeInput();
          replica.rawNode.reportSnapshot(peerId, false);
          replica.scheduleReady();
        },
        logger,
        registry: options.registry,
      });
      replica.tickTimer = setInterval(() => replica.tick(), options.tickIntervalMs);
      // A group of one has no one to wait for: it elects itself at once.
      if (options.initialMembers.length === 1 && !options.join) replica.rawNode.campaign();
      replica.scheduleReady();
      logger.info(
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
    const data = encodeCommand({ ...command, requestId });
    const idKey = requestId.toString('latin1');
    return new Promise<number>((resolve, reject) => {
      const waiter: Waiter<number> = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.removeProposal(idKey, waiter);
          this.metrics.proposalsFailed.inc({ reason: 'timeout' });
          reject(
            new ImpulseError(
              'COMMIT_TIMEOUT',
              `the write did not apply within ${this.options.proposalTimeoutMs} ms`,
              {
                details: { group: this.options.groupId },
              },
            ),
          );
        }, this.options.proposalTimeoutMs),
      };
      const waiters = this.proposals.get(idKey);
      if (waiters !== undefined) {
        // The same request is already in flight (a client retried while it waited): wait with it.
        waiters.push(waiter);
        return;
      }
      this.proposals.set(idKey, [waiter]);
      this.proposalQueue.push(data);
      if (this.proposalQueue.length >= this.options.proposalBatchMax) this.flushProposals();
      else this.scheduleProposalFlush();
    });
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
    if (this.role !== 'leader') return Promise.reject(this.notLeader());
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          waiter.reject(new ImpulseError('COMMIT_TIMEOUT', 'the read could not be confirmed in time'));
        }, this.options.proposalTimeoutMs),
      };
      if (this.readBatch === undefined) {
        const batch: ReadBatch = { waiters: [], index: undefined };
        this.readBatch = batch;
        // Every read of this turn shares one ReadIndex request, and the core makes every request
        // of one Ready share one heartbeat round.
        setImmediate(() => this.requestReadIndex(batch));
      }
      this.readBatch.waiters.push(waiter);
    });
  }

  /**
   * Proposes a membership change on the leader and resolves once it is applied here. Adding takes
   * the new member's addresses, which travel in the entry so that every replica (and every
   * snapshot) learns them. Promotion is refused while the learner is behind, and every change is
   * refused while another one is pending.
   */
  async changeMembership(change: MembershipChange): Promise<void> {
    this.assertServing();
    if (this.role !== 'leader') throw this.notLeader();
    const status = this.rawNode.status();
    const token = `${this.options.self.raftId}-${Date.now()}-${this.membershipCounter++}`;
    let proposal: ConfChange;
    switch (change.type) {
      case 'addLearner': {
        // Membership is the configuration's: the directory only holds members' addresses.
        const inConfiguration = new Set([
          ...status.config.voters,
          ...status.config.learners,
          ...status.config.votersOutgoing,
        ]);
        if (
          inConfiguration.has(change.member.raftId) ||
          [...this.members.values()].some(
            (m) => m.replicaId === change.member.replicaId && inConfiguration.has(m.raftId),
          )
        ) {
          throw membershipRefused(
            `raft id ${change.member.raftId} or replica ${change.member.replicaId} is already a member`,
          );
        }
        proposal = {
          type: 'addLearnerNode',
          nodeId: change.member.raftId,
          context: membershipContext(token, change.member),
        };
        break;
      }
      case 'promote': {
        if (!status.config.learners.includes(change.raftId))
          throw membershipRefused(`raft id ${change.raftId} is not a learner`);
        const match = status.progress?.get(change.raftId)?.match ?? 0;
        // A learner that acknowledged nothing holds nothing, however short the log: it must take
        // its first snapshot as a learner (a joiner whose first snapshot names it a voter takes it
        // for a voter that lost its data, and refuses it).
        if (match === 0)
          throw membershipRefused(
            'the learner has not received its snapshot yet; promote it once it caught up',
          );
        if (status.commit - match > this.options.snapshotCatchUpEntries) {
          throw membershipRefused(
            `the learner is ${status.commit - match} entries behind; promote it once it caught up`,
          );
        }
        proposal = { type: 'addNode', nodeId: change.raftId, context: membershipContext(token) };
        break;
      }
      case 'remove': {
        const isMember =
          status.config.voters.includes(change.raftId) || status.config.learners.includes(change.raftId);
        if (!isMember) throw membershipRefused(`raft id ${change.raftId} is not a member`);
        proposal = { type: 'removeNode', nodeId: change.raftId, context: membershipContext(token) };
        break;
      }
    }
    try {
      this.clockBeforeInput();
      this.rawNode.proposeConfChange(proposal);
    } catch (error) {
      if (error instanceof RaftError) throw membershipRefused(`${error.code}: ${error.message}`);
      throw error;
    }
    this.scheduleReady();
    await new Promise<void>((resolve, reject) => {
      this.membershipWaiters.set(token, {
        resolve,
        reject,
        timer: setTimeout(() => {
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
    this.scheduleReady();
    const deadline = Date.now() + this.options.tickIntervalMs * this.options.electionTimeoutTicks * 3;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, this.options.tickIntervalMs));
      if (this.leaderId === raftId) return;
    }
    throw new ImpulseError('COMMIT_TIMEOUT', `leadership did not move to ${raftId} in time`);
  }

  /** The member with this replica id, if the replica knows it. */
  memberByReplicaId(replicaId: string): MemberSpec | undefined {
    return [...this.members.values()].find((member) => member.replicaId === replicaId);
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
      leaderReplicaId: this.members.get(status.leaderId)?.replicaId ?? null,
      commitIndex: status.commit,
      appliedIndex: this.stateMachine.appliedIndex,
      firstIndex: this.logStore.firstIndex(),
      lastIndex: this.logStore.lastIndex(),
      snapshotIndex: this.logStore.snapshot().metadata.index,
      logBytes: this.logStore.logBytes(),
      voters: [...status.config.voters],
      learners: [...status.config.learners],
      members: [...this.members.values()].map((member) => ({
        raftId: member.raftId,
        replicaId: member.replicaId,
        url: member.url,
        peerAddress: `${member.peerHost}:${member.peerPort}`,
      })),
      pendingProposals: this.proposals.size,
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
    clearInterval(this.tickTimer);
    const stopping = new ImpulseError('NOT_READY', 'the replica is stopping');
    this.failEveryWaiter(stopping);
    await this.transport?.stop();
    // Let a Ready being written finish, so that the log is not closed under it.
    while (this.processing) await new Promise((resolve) => setTimeout(resolve, 5));
    await this.incomingSnapshot?.install.abort();
    await this.logStore.close();
    await this.stateMachine.close();
    this.options.logger.info('replica: stopped');
  }

  // -----------------------------------------------------------------------------------------------
  // Inputs to the core.

  private tick(): void {
    if (this.stopped) return;
    if (this.monotonicTicks === undefined) this.rawNode.tick();
    else this.monotonicTicks.catchUp();
    this.maybeRequestRebuild();
    this.scheduleReady();
  }

  /**
   * Lease mode: brings the core's clock up to monotonic time before it takes any input (see
   * MonotonicTicks for why the order matters to a lease, on the leader and on the followers).
   */
  private clockBeforeInput(): void {
    this.monotonicTicks?.catchUp();
  }

  private handleMessages(messages: Message[]): void {
    if (this.stopped) return;
    // Before stepping anything: a heartbeat that waited out a pause in the socket must restart the
    // election timer after the pause is counted, not before (see MonotonicTicks).
    this.clockBeforeInput();
    for (const message of messages) {
      const refusal = refusalOf(message, this.peerMessageContext);
      if (refusal !== undefined) {
        this.refusePeerMessage(message, refusal);
        continue;
      }
      if (message.type === 'MsgRebuildRequest') {
        void this.sendRebuildSnapshot(message);
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
    this.scheduleReady();
  }

  private readonly peerMessageContext: PeerMessageContext;
  /** One warning per kind of refused peer message per 10 s; the ones between are counted in it. */
  private readonly peerRefusalWarnings: WarningLimiter;

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

  private scheduleProposalFlush(): void {
    if (this.proposalFlushScheduled) return;
    this.proposalFlushScheduled = true;
    setImmediate(() => {
      this.proposalFlushScheduled = false;
      this.flushProposals();
    });
  }

  private flushProposals(): void {
    const batch = this.proposalQueue;
    if (batch.length === 0) return;
    this.clockBeforeInput();
    this.proposalQueue = [];
    try {
      this.rawNode.proposeBatch(batch);
      this.metrics.proposalsBatched.observe(batch.length);
    } catch (error) {
      // Dropped before it entered the log: certainly not applied, so the client may go elsewhere.
      const code = error instanceof RaftError ? error.code : 'unknown';
      this.metrics.proposalsFailed.inc({ reason: code }, batch.length);
      const failure =
        code === 'RAFT_UNCOMMITTED_LIMIT'
          ? new ImpulseError('TOO_MANY_REQUESTS', 'the group is overloaded')
          : this.notLeader();
      for (const data of batch) this.rejectProposal(data, failure);
      return;
    }
    this.scheduleReady();
  }

  private requestReadIndex(batch: ReadBatch): void {
    if (this.readBatch === batch) this.readBatch = undefined;
    if (this.stopped) return;
    if (this.role !== 'leader') {
      for (const waiter of batch.waiters) this.settle(waiter, this.notLeader());
      return;
    }
    const context = Buffer.allocUnsafe(12);
    context.writeUInt32BE(this.options.self.raftId, 0);
    context.writeUInt32BE(Math.floor(this.readContextCounter / 2 ** 32), 4);
    context.writeUInt32BE(this.readContextCounter % 2 ** 32, 8);
    this.readContextCounter++;
    // The lease is judged on the core's clock: after a pause, the paused time must count before
    // any read is answered from the lease.
    this.clockBeforeInput();
    this.readsInFlight.set(context.toString('latin1'), batch);
    this.rawNode.readIndex(context);
    this.scheduleReady();
  }

  // -----------------------------------------------------------------------------------------------
  // The Ready loop.

  private scheduleReady(): void {
    if (this.readyScheduled || this.processing || this.stopped) return;
    this.readyScheduled = true;
    setImmediate(() => {
      this.readyScheduled = false;
      void this.processReadys();
    });
  }

  private async processReadys(): Promise<void> {
    if (this.processing || this.stopped) return;
    this.processing = true;
    try {
      if (this.rebuildToInstall !== undefined) await this.completeRebuild(this.rebuildToInstall);
      // No await between the last hasReady() and the end of the loop: nothing can slip in unseen.
      while (!this.stopped && this.rawNode.hasReady()) {
        const ready = this.rawNode.ready();
        await this.handleReady(ready);
        this.rawNode.advance(ready);
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.processing = false;
    }
  }

  private async handleReady(ready: Ready): Promise<void> {
    if (ready.softState !== undefined) this.handleSoftState(ready.softState.role, ready.softState.leaderId);
    if (ready.hardState !== undefined && ready.hardState.term !== this.term) {
      this.term = ready.hardState.term;
    }
    if (ready.snapshot !== undefined) await this.installSnapshot(ready.snapshot.metadata.index);
    if (ready.hardState !== undefined || ready.entries.length > 0 || ready.snapshot !== undefined) {
      await this.logStore.save(
        {
          ...(ready.hardState === undefined ? {} : { hardState: ready.hardState }),
          entries: ready.entries,
          ...(ready.snapshot === undefined ? {} : { snapshot: ready.snapshot.metadata }),
        },
        { sync: ready.mustSync && this.options.logSync },
      );
    }
    this.sendMessages(ready.messages);
    if (ready.committedEntries.length > 0) await this.applyEntries(ready.committedEntries);
    for (const readState of ready.readStates) this.handleReadState(readState);
    this.serveReadsUpTo(this.stateMachine.appliedIndex);
    await this.maybeCompact();
  }

  private handleSoftState(role: Role, leaderId: NodeId): void {
    const wasLeader = this.role === 'leader';
    if (leaderId !== this.leaderId) this.metrics.leaderChanges.inc();
    this.role = role;
    this.leaderId = leaderId;
    this.options.logger.info(
      { role, leaderId, leaderReplicaId: this.members.get(leaderId)?.replicaId ?? null },
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
      for (const message of messages) if (message.type === 'MsgSnap') void this.sendSnapshot(message);
    }
    this.transport?.send(outgoing);
  }

  private async applyEntries(committed: readonly Entry[]): Promise<void> {
    this.handedOutIndex = Math.max(this.handedOutIndex, committed.at(-1)?.index ?? 0);
    if (this.storageFault !== undefined) {
      // Nothing reaches a damaged state machine; the configuration and the member directory still
      // follow the log, so that the core keeps counting votes and acknowledgements in the group's
      // real configuration, and the transport reaches members that joined meanwhile. A rebuild
      // replays these entries from the log into the rebuilt state machine.
      for (const entry of committed) if (entry.type !== 'normal') this.followMembershipChange(entry);
      return;
    }
    const alreadyApplied = this.stateMachine.appliedIndex;
    let entries = committed;
    if ((committed[0]?.index ?? Infinity) <= alreadyApplied) {
      // Replayed after a restart, or after a rebuild from a snapshot past them: the state machine
      // has these; only the configuration and the member directory follow them (in order, each
      // change ends as the state machine's member directory has it).
      for (const entry of committed) {
        if (entry.index > alreadyApplied || entry.type === 'normal') continue;
        this.followMembershipChange(entry);
      }
      entries = committed.filter((entry) => entry.index > alreadyApplied);
      if (entries.length === 0) return;
    }
    const confStates = new Map<number, ConfState>();
    const applied: MembershipToken[] = [];
    let membersChanged = false;
    for (const entry of entries) {
      if (entry.type === 'normal') continue;
      const change = this.followMembershipChange(entry);
      confStates.set(entry.index, change.confState);
      membersChanged ||= change.membersChanged;
      if (change.token !== undefined) applied.push(change.token);
    }
    const membersRecord = membersChanged
      ? Buffer.from(JSON.stringify([...this.members.values()]))
      : undefined;
    let results: AppliedEntry[];
    try {
      results = await this.stateMachine.apply(entries, confStates, membersRecord);
    } catch (error) {
      if (!(error instanceof StorageFault)) throw error;
      this.enterStorageFault(error);
      return;
    }
    this.metrics.proposalsCommitted.inc(results.length);
    for (const result of results) this.resolveApplied(result);
    for (const result of results) {
      if (result.outcome !== 'consistency-verdict') continue;
      const entry = entries.find((candidate) => candidate.index === result.index) as Entry;
      void this.judgeConsistencyVerdict(entry);
    }
    for (const token of applied) {
      const waiter = this.membershipWaiters.get(token);
      this.membershipWaiters.delete(token);
      if (waiter !== undefined) {
        clearTimeout(waiter.timer);
        waiter.resolve();
      }
    }
  }

  /**
   * Follows one committed membership change: the member directory (kept with the state machine,
   * so that every replica knows every peer), the transport's peers, and the core's configuration.
   */
  private followMembershipChange(entry: Entry): {
    confState: ConfState;
    membersChanged: boolean;
    token: MembershipToken | undefined;
  } {
    const change = decodeConfChange(entry.type, entry.data);
    const context = parseMembershipContext(change.context);
    const singles = 'changes' in change ? change.changes : [change];
    let confState: ConfState;
    try {
      confState = this.rawNode.applyConfChange(change);
    } catch (error) {
      // A change the configuration cannot take (removing every voter, a second change while
      // joint): the leader never proposes one, but a member could. It depends only on the
      // configuration before it, which every replica shares at this index, so every replica
      // skips it alike; ending the process on it would hand any member a way to stop the group.
      if (!(error instanceof RaftError) || error.code !== 'RAFT_CONF_CHANGE_INVALID') throw error;
      this.options.logger.error(
        { index: entry.index, change: JSON.stringify(singles), err: error },
        'replica: a committed membership change is invalid in the configuration; skipped',
      );
      return { confState: this.rawNode.status().config, membersChanged: false, token: context?.token };
    }
    let membersChanged = false;
    for (const single of singles) {
      if (single.type === 'removeNode') {
        membersChanged = this.members.has(single.nodeId) || membersChanged;
        this.forgetMember(single.nodeId);
      } else if (context?.member !== undefined && context.member.raftId === single.nodeId) {
        this.reachMember(context.member);
        membersChanged = true;
      }
    }
    this.options.logger.info(
      { index: entry.index, change: JSON.stringify(singles) },
      'replica: membership change applied',
    );
    return { confState, membersChanged, token: context?.token };
  }

  /**
   * A consistency verdict: the hash a majority of the group's voters computed at a check's index.
   * A replica whose own hash there differs has diverged: a storage fault of kind `divergent`,
   * which its rebuild from the leader's snapshot ends. A replica that did not hash that index (it
   * started later, or installed a snapshot past it) has nothing to compare and goes on.
   */
  private async judgeConsistencyVerdict(entry: Entry): Promise<void> {
    const verdict = consistencyVerdictOf(entry.data);
    if (verdict === undefined) return;
    const reference = Buffer.from(verdict.hash).toString('hex');
    const own = await this.stateMachine.consistencyHashAt(verdict.checkIndex);
    if (own === undefined || this.stopped) return;
    if (own.hash === reference) {
      this.options.logger.info(
        { checkIndex: verdict.checkIndex, hash: own.hash },
        'replica: consistency verdict: this replica agrees with its group',
      );
      return;
    }
    this.enterStorageFault(
      new StorageFault(
        `a consistency check at index ${verdict.checkIndex} found this replica's state different from its group's: it hashes to ${own.hash} (${own.keys} records), a majority of the voters to ${reference}`,
        { kind: 'divergent', file: join(this.options.dataDirectory, 'state') },
      ),
    );
  }

  private resolveApplied(result: AppliedEntry): void {
    if (result.requestId === undefined) return;
    const idKey = result.requestId.toString('latin1');
    const waiters = this.proposals.get(idKey);
    if (waiters === undefined) return;
    this.proposals.delete(idKey);
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(result.index);
    }
  }

  private handleReadState(readState: ReadState): void {
    const key = Buffer.from(readState.requestContext).toString('latin1');
    const batch = this.readsInFlight.get(key);
    if (batch === undefined) return;
    this.readsInFlight.delete(key);
    batch.index = readState.index;
    this.readsWaitingForApply.push(batch);
  }

  private serveReadsUpTo(appliedIndex: number): void {
    if (this.readsWaitingForApply.length === 0) return;
    const waiting: ReadBatch[] = [];
    for (const batch of this.readsWaitingForApply) {
      if ((batch.index ?? Infinity) <= appliedIndex) {
        for (const waiter of batch.waiters) {
          clearTimeout(waiter.timer);
          waiter.resolve();
        }
      } else {
        waiting.push(batch);
      }
    }
    this.readsWaitingForApply = waiting;
  }

  /** After enough applied entries: make the state machine durable, then drop the log behind it. */
  private async maybeCompact(): Promise<void> {
    // A damaged state machine cannot be made durable: the log keeps everything after its last
    // snapshot, which is what rebuilding the replica, or its peers, may need.
    if (this.storageFault !== undefined) return;
    if (this.options.engine === 'memory') return this.maybeCompactBehindImage();
    const applied = this.stateMachine.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.options.snapshotEntries) return;
    const compactIndex = applied - this.options.snapshotCatchUpEntries;
    this.lastSnapshotIndex = applied;
    if (compactIndex <= this.logStore.firstIndex()) return;
    try {
      await this.stateMachine.sync();
    } catch (error) {
      if (!(error instanceof StorageFault)) throw error;
      this.enterStorageFault(error);
      return;
    }
    await this.logStore.createSnapshot(applied, this.stateMachine.confState);
    await this.logStore.compact(compactIndex);
    this.options.logger.debug({ applied, compactIndex }, 'replica: log compacted');
  }

  /**
   * The memory engine's durable state is its image, a copy of the whole state: seconds at a million
   * keys, longer than an election timeout. So the image is written in the background from a
   * snapshot taken here (copy-on-write, at once), and a later Ready compacts the log behind it once
   * it is durable; until then the log keeps everything after the previous image.
   */
  private async maybeCompactBehindImage(): Promise<void> {
    const image = this.memoryImage;
    if (image !== undefined) {
      if (image.state === 'writing') return;
      this.memoryImage = undefined;
      // A failed write was logged; the next one, snapshotEntries later, tries again.
      if (image.state === 'failed') return;
      const { index, confState } = image.metadata;
      // A snapshot installed from the leader meanwhile may have moved the log past this image.
      if (index <= this.logStore.snapshot().metadata.index) return;
      await this.logStore.createSnapshot(index, confState);
      const compactIndex = index - this.options.snapshotCatchUpEntries;
      if (compactIndex > this.logStore.firstIndex()) await this.logStore.compact(compactIndex);
      this.options.logger.debug(
        { imageIndex: index, compactIndex },
        'replica: log compacted behind the image',
      );
      return;
    }
    const applied = this.stateMachine.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.options.snapshotEntries) return;
    this.lastSnapshotIndex = applied;
    if (applied - this.options.snapshotCatchUpEntries <= this.logStore.firstIndex()) return;
    const snapshot = await this.stateMachine.openSnapshot();
    const pending: PendingImage = { metadata: snapshot.metadata, state: 'writing' };
    this.memoryImage = pending;
    this.stateMachine
      .writeImage(snapshot)
      .then(
        () => {
          pending.state = 'written';
        },
        (error: unknown) => {
          pending.state = 'failed';
          if (error instanceof StorageFault) this.enterStorageFault(error);
          this.options.logger.warn(
            { index: pending.metadata.index, err: (error as Error).message },
            'replica: writing the memory-engine image failed; the log is kept',
          );
        },
      )
      .finally(() => void snapshot.close().catch(() => undefined));
  }

  // -----------------------------------------------------------------------------------------------
  // Snapshots: the leader streams its state machine; the follower installs it atomically.

  private async sendSnapshot(message: Message): Promise<void> {
    const to = message.to;
    const snapshotId = `${this.options.self.raftId}-${Date.now()}-${this.snapshotCounter++}`;
    const metadata = await this.streamStateMachine(to, snapshotId);
    if (metadata === 'busy') return;
    this.clockBeforeInput();
    if (metadata !== undefined) {
      // The stream is acknowledged: the follower holds it, and can act on the message at once.
      // The metadata is the state machine's own (at least as new as what the core asked for).
      this.transport?.send([{ ...message, snapshot: { metadata, data: Buffer.from(snapshotId) } }]);
    }
    this.rawNode.reportSnapshot(to, metadata !== undefined);
    this.scheduleReady();
  }

  /**
   * A faulted follower asks for a snapshot to rebuild its state machine from (`MsgRebuildRequest`,
   * its context naming the stream). Only a leader answers, and only a member of its configuration:
   * the stream goes out as any snapshot does, and no MsgSnap follows it, since the follower's core
   * and log are not concerned: the follower installs the stream into its state machine alone.
   */
  private async sendRebuildSnapshot(message: Message): Promise<void> {
    const snapshotId = Buffer.from(message.context).toString('latin1');
    const config = this.rawNode.status().config;
    const member = config.voters.includes(message.from) || config.learners.includes(message.from);
    if (this.role !== 'leader' || !member || !rebuildSnapshotIdPattern.test(snapshotId)) {
      this.options.logger.debug(
        { from: message.from, role: this.role, member },
        'replica: rebuild request ignored (not the leader, not a member, or malformed)',
      );
      return;
    }
    this.options.logger.info(
      { to: message.from, snapshotId },
      'replica: a faulted member asks for a rebuild',
    );
    await this.streamStateMachine(message.from, snapshotId);
  }

  /**
   * Streams this replica's state machine to `to` under `snapshotId`, one stream per peer at a time.
   * Answers the snapshot's metadata once the follower acknowledged the whole stream, `undefined`
   * when it failed, and `busy` when a stream to `to` is already going.
   */
  private async streamStateMachine(
    to: NodeId,
    snapshotId: string,
  ): Promise<SnapshotMetadata | undefined | 'busy'> {
    const transport = this.transport;
    if (this.snapshotsSending.has(to) || transport === undefined) return 'busy';
    this.snapshotsSending.add(to);
    let snapshot: Awaited<ReturnType<ReplicaStateMachine['openSnapshot']>> | undefined;
    try {
      snapshot = await this.stateMachine.openSnapshot();
      this.options.logger.info(
        { to, index: snapshot.metadata.index, snapshotId },
        'replica: sending snapshot',
      );
      await transport.sendSnapshotChunks(to, snapshotId, snapshot.chunks());
      this.metrics.snapshotsSent.inc();
      return snapshot.metadata;
    } catch (error) {
      // A record that failed its checksum on the way out is this replica's fault, not the stream's.
      if (error instanceof StorageFault) this.enterStorageFault(error);
      this.options.logger.warn({ to, err: (error as Error).message }, 'replica: sending snapshot failed');
      return undefined;
    } finally {
      this.snapshotsSending.delete(to);
      // Never thrown: the callers run detached, and a rejection there would end the process.
      await snapshot?.close().catch((error: unknown) => {
        this.options.logger.warn(
          { to, err: (error as Error).message },
          'replica: closing a sent snapshot failed',
        );
      });
    }
  }

  private async handleSnapshotChunk(chunk: SnapshotChunk): Promise<void> {
    if (this.stopped) throw new Error('stopping');
    if (this.reusedIdentity !== undefined) throw new Error(this.reusedIdentity);
    let incoming = this.incomingSnapshot;
    if (incoming === undefined || incoming.snapshotId !== chunk.snapshotId) {
      if (chunk.sequence !== 0)
        throw new Error(`snapshot ${chunk.snapshotId}: chunk ${chunk.sequence} without its start`);
      // A newer stream replaces one that never completed.
      if (incoming !== undefined && incoming !== this.snapshotToInstall) await incoming.install.abort();
      incoming = {
        snapshotId: chunk.snapshotId,
        from: chunk.from,
        install: await this.stateMachine.beginInstall(),
        complete: false,
      };
      this.incomingSnapshot = incoming;
    }
    const rebuilding = incoming.snapshotId === this.rebuildSnapshotId;
    // A rebuild stream that is still arriving is not asked for again.
    if (rebuilding) this.nextRebuildRequestAt = Date.now() + this.rebuildRetryMs;
    if (chunk.bytes.byteLength > 0) await incoming.install.write(chunk.bytes);
    if (!chunk.last) return;
    incoming.complete = true;
    if (rebuilding && this.storageFault !== undefined) {
      this.rebuildToInstall = incoming;
      this.scheduleReady();
    }
  }

  private abortIncomingSnapshot(snapshotId: string): void {
    const incoming = this.incomingSnapshot;
    if (
      incoming?.snapshotId !== snapshotId ||
      incoming === this.snapshotToInstall ||
      incoming === this.rebuildToInstall
    )
      return;
    this.incomingSnapshot = undefined;
    void incoming.install.abort();
  }

  /**
   * A MsgSnap is stepped only when its stream arrived whole; otherwise the leader sends again. A
   * replica with no log whose first snapshot names it a voter refuses it for good: its id is a
   * voter's that lost its data (normal joiners are learners until they have caught up), and
   * taking the snapshot would let it vote again in terms it may have voted in (docs/decisions/0009).
   */
  private acceptSnapshotMessage(message: Message): boolean {
    const snapshotId = Buffer.from(message.snapshot?.data ?? []).toString();
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
    const incoming = this.incomingSnapshot;
    if (incoming === undefined || incoming.snapshotId !== snapshotId || !incoming.complete) {
      this.options.logger.warn(
        { snapshotId, from: message.from },
        'replica: snapshot message without its stream; dropped',
      );
      return false;
    }
    this.snapshotToInstall = incoming;
    return true;
  }

  /** Records a member's addresses, and has the transport reach it at them. */
  private reachMember(member: MemberSpec): void {
    const previous = this.members.get(member.raftId);
    this.members.set(member.raftId, member);
    const transport = this.transport;
    if (member.raftId === this.options.self.raftId || transport === undefined) return;
    const address = { host: member.peerHost, port: member.peerPort };
    if (transport.peerStatus(member.raftId) === undefined) transport.addPeer(member.raftId, address);
    else if (previous?.peerHost !== member.peerHost || previous.peerPort !== member.peerPort)
      transport.updatePeer(member.raftId, address);
  }

  /** Forgets a member that left: its messages are refused and the transport stops reaching it. */
  private forgetMember(raftId: NodeId): void {
    this.members.delete(raftId);
    if (raftId !== this.options.self.raftId) this.transport?.removePeer(raftId);
  }

  /**
   * After a snapshot replaced the state machine, takes its member directory: the membership
   * changes it covers never pass through this replica's log. Without it, a replica that caught up
   * by snapshot kept refusing the members added meanwhile (`unknownPeer`), both ways, and its
   * group lost its quorum as soon as the one member it still reached stopped.
   */
  private adoptMemberDirectory(): void {
    const stored = this.stateMachine.membersRecord;
    if (stored === undefined) return;
    const directory = decodeMembersRecord(stored);
    const kept = new Set(directory.map((member) => member.raftId));
    for (const raftId of [...this.members.keys()]) if (!kept.has(raftId)) this.forgetMember(raftId);
    for (const member of directory) this.reachMember(member);
  }

  private async installSnapshot(index: number): Promise<void> {
    const incoming = this.snapshotToInstall;
    if (incoming === undefined)
      throw new Error(`replica: the core installs snapshot ${index}, which was never received`);
    const metadata = await this.stateMachine.install(incoming.install);
    if (metadata.index !== index) {
      throw new Error(`replica: received state is at ${metadata.index}, the core installs ${index}`);
    }
    // A newer snapshot may have been received and stepped while this one was being installed
    // (the install awaits; messages are stepped meanwhile): it is the core's next snapshot, so it
    // must stay. Clearing it unconditionally made the next Ready fail with "never received" and the
    // replica exit (found by the container linearizability run).
    if (this.snapshotToInstall === incoming) this.snapshotToInstall = undefined;
    if (this.incomingSnapshot === incoming) this.incomingSnapshot = undefined;
    this.lastSnapshotIndex = index;
    this.handedOutIndex = Math.max(this.handedOutIndex, index);
    this.adoptMemberDirectory();
    this.metrics.snapshotsInstalled.inc();
    // The whole state was replaced: a faulted replica is rebuilt by it, as by a rebuild stream.
    if (this.storageFault !== undefined) this.leaveStorageFault(index);
  }

  // -----------------------------------------------------------------------------------------------
  // Rebuilding a faulted replica from its leader's snapshot (docs/replication.md).

  /**
   * While faulted, asks the leader for a snapshot of its state machine, again after a pause that
   * doubles up to `rebuildRetryMaxMs` while no rebuild completes (a leader that is gone, a stream
   * that failed). Only the state machine is rebuilt: the Raft log is whole and keeps the replica's
   * votes and acknowledged entries, so the replica keeps its id.
   */
  private maybeRequestRebuild(): void {
    const transport = this.transport;
    if (this.storageFault === undefined || transport === undefined || this.rebuildToInstall !== undefined)
      return;
    const now = Date.now();
    const leaderId = this.leaderId;
    if (now < this.nextRebuildRequestAt || leaderId === 0 || leaderId === this.options.self.raftId) return;
    const snapshotId = `rebuild-${this.options.self.raftId}-${now}-${this.snapshotCounter++}`;
    this.rebuildSnapshotId = snapshotId;
    this.nextRebuildRequestAt = now + this.rebuildRetryMs;
    this.rebuildRetryMs = Math.min(this.rebuildRetryMs * 2, rebuildRetryMaxMs);
    this.options.logger.info(
      { leaderId, leaderReplicaId: this.members.get(leaderId)?.replicaId ?? null, snapshotId },
      'replica: asking the leader for a snapshot to rebuild the state machine from',
    );
    transport.send([
      {
        type: 'MsgRebuildRequest',
        from: this.options.self.raftId,
        to: leaderId,
        term: this.term,
        logTerm: 0,
        index: 0,
        entries: [],
        commit: 0,
        reject: false,
        rejectHint: 0,
        context: Buffer.from(snapshotId, 'latin1'),
      },
    ]);
  }

  /**
   * Installs a rebuild stream into the state machine, in the Ready loop (nothing else touches the
   * state machine meanwhile). The snapshot is at index S, committed; the log must hold what comes
   * after it, so S must not be behind the log's own snapshot (else: abort and ask later, once the
   * leader applied further). The entries the core handed out past S while the replica was faulted
   * are then applied from the log, and later ones arrive as usual (those up to S are skipped).
   */
  private async completeRebuild(incoming: IncomingSnapshot): Promise<void> {
    this.rebuildToInstall = undefined;
    if (this.incomingSnapshot === incoming) this.incomingSnapshot = undefined;
    if (this.storageFault === undefined) {
      await incoming.install.abort();
      return;
    }
    let metadata: SnapshotMetadata;
    try {
      metadata = await incoming.install.finish();
    } catch (error) {
      await incoming.install.abort();
      this.options.logger.warn(
        { err: error },
        'replica: the rebuild snapshot was refused; asking again later',
      );
      return;
    }
    const logSnapshotIndex = this.logStore.snapshot().metadata.index;
    if (metadata.index < logSnapshotIndex) {
      await incoming.install.abort();
      this.options.logger.warn(
        { snapshotIndex: metadata.index, logSnapshotIndex },
        "replica: the leader's snapshot is behind this replica's log; asking again later",
      );
      return;
    }
    try {
      await this.stateMachine.install(incoming.install);
      const replay = this.logStore.entries(
        metadata.index + 1,
        this.handedOutIndex + 1,
        Number.MAX_SAFE_INTEGER,
      );
      if (replay.length > 0) {
        // The core has applied these entries' membership changes already: the state machine gets
        // the configuration and member directory as they are now, which is what it would hold.
        const lastChange = replay.findLast((entry) => entry.type !== 'normal');
        const confStates = new Map<number, ConfState>();
        if (lastChange !== undefined) confStates.set(lastChange.index, this.rawNode.status().config);
        const membersRecord =
          lastChange === undefined ? undefined : Buffer.from(JSON.stringify([...this.members.values()]));
        await this.stateMachine.apply(replay, confStates, membersRecord);
      }
    } catch (error) {
      if (!(error instanceof StorageFault)) throw error;
      this.options.logger.warn(
        { err: error },
        'replica: rebuilding failed on a storage fault; asking again later',
      );
      return;
    }
    this.lastSnapshotIndex = metadata.index;
    this.metrics.snapshotsInstalled.inc();
    this.leaveStorageFault(metadata.index);
  }

  /** The state machine was replaced by the leader's: the replica serves and may lead again. */
  private leaveStorageFault(snapshotIndex: number): void {
    const fault = this.storageFault;
    if (fault === undefined) return;
    this.storageFault = undefined;
    this.rebuildSnapshotId = undefined;
    this.nextRebuildRequestAt = 0;
    this.rebuildRetryMs = rebuildRetryMinMs;
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
    const incoming = this.incomingSnapshot;
    this.incomingSnapshot = undefined;
    void incoming?.install.abort();
  }

  // -----------------------------------------------------------------------------------------------
  // Helpers.

  private notLeader(): ImpulseError {
    const leader = this.members.get(this.leaderId);
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
    if (this.transport !== undefined) this.scheduleReady();
  }

  private settle(waiter: Waiter<never>, error: Error): void {
    clearTimeout(waiter.timer);
    waiter.reject(error);
  }

  private removeProposal(idKey: string, waiter: Waiter<number>): void {
    const waiters = this.proposals.get(idKey);
    if (waiters === undefined) return;
    const remaining = waiters.filter((candidate) => candidate !== waiter);
    if (remaining.length === 0) this.proposals.delete(idKey);
    else this.proposals.set(idKey, remaining);
  }

  private rejectProposal(data: Uint8Array, error: Error): void {
    const requestIdBytes = data[2] ?? 0;
    const idKey = Buffer.from(data.buffer, data.byteOffset + 3, requestIdBytes).toString('latin1');
    const waiters = this.proposals.get(idKey) ?? [];
    this.proposals.delete(idKey);
    for (const waiter of waiters) this.settle(waiter, error);
  }

  private failEveryWaiter(error: Error): void {
    for (const waiters of this.proposals.values()) for (const waiter of waiters) this.settle(waiter, error);
    this.proposals.clear();
    this.proposalQueue = [];
    for (const batch of this.readsInFlight.values())
      for (const waiter of batch.waiters) this.settle(waiter, error);
    this.readsInFlight.clear();
    for (const batch of this.readsWaitingForApply)
      for (const waiter of batch.waiters) this.settle(waiter, error);
    this.readsWaitingForApply = [];
  }

  /** A failed write to the log or the state machine: stop serving rather than risk divergence. */
  private fail(error: unknown): void {
    this.failure = error;
    this.options.logger.fatal({ err: error }, 'replica: the Ready loop failed; exiting');
    this.failEveryWaiter(new ImpulseError('NOT_READY', 'the replica failed'));
    // Exiting is the safe answer: a restart recovers from the durable log and state machine.
    process.exitCode = 70;
    setImmediate(() => process.exit(70));
  }
}

export type ReplicaRole = 'leader' | 'follower' | 'candidate' | 'learner';

/** The first pause before a faulted replica asks its leader for a rebuild again; it doubles. */
const rebuildRetryMinMs = 2_000;
/** The longest pause between two rebuild requests. */
const rebuildRetryMaxMs = 60_000;
/** What a rebuild request's context must be: the stream's name, made by the faulted replica. */
const rebuildSnapshotIdPattern = /^rebuild-\d{1,10}-\d{1,16}-\d{1,16}$/;

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

export type MembershipChange =
  | { readonly type: 'addLearner'; readonly member: MemberSpec }
  | { readonly type: 'promote'; readonly raftId: NodeId }
  | { readonly type: 'remove'; readonly raftId: NodeId };

type MembershipToken = string;

/** The context of a membership entry: who asked (to answer them) and, when adding, who joins. */
function membershipContext(token: MembershipToken, member?: MemberSpec): Uint8Array {
  return Buffer.from(JSON.stringify(member === undefined ? { token } : { token, member }));
}

function parseMembershipContext(
  context: Uint8Array | undefined,
): { token?: string; member?: MemberSpec } | undefined {
  if (context === undefined || context.byteLength === 0) return undefined;
  try {
    const value = JSON.parse(Buffer.from(context).toString('utf8')) as {
      token?: unknown;
      member?: MemberSpec;
    };
    return {
      ...(typeof value.token === 'string' ? { token: value.token } : {}),
      ...(isMemberSpec(value.member) ? { member: value.member } : {}),
    };
  } catch {
    return undefined;
  }
}

function isMemberSpec(value: unknown): value is MemberSpec {
  const candidate = value as Partial<MemberSpec> | undefined;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.raftId === 'number' &&
    typeof candidate.replicaId === 'string' &&
    typeof candidate.url === 'string' &&
    typeof candidate.peerHost === 'string' &&
    typeof candidate.peerPort === 'number'
  );
}

function membershipRefused(message: string): ImpulseError {
  return new ImpulseError('MEMBERSHIP_CHANGE_REFUSED', message);
}

/** The member directory the state machine keeps (written by `applyEntries` on each change). */
function decodeMembersRecord(record: Buffer): MemberSpec[] {
  return JSON.parse(record.toString('utf8')) as MemberSpec[];
}
