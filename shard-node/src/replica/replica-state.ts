import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { StartupError, type FileSystem, type Logger } from '@impulse/common';
import { RawNode, createSeededRandom, type ConfState, type Config } from '../raft/index.js';
import { RaftLogStore, isRaftLogError, type RaftLogObserver, type ReplicaLog } from '../raft-log/index.js';
import { ReplicaStateMachine, StorageFault, type GenerationSpace } from '../state-machine/index.js';
import type { Engine, EngineName } from '../storage/index.js';
import { raftLoggerOf } from './raft-logger.js';

/** What opening a replica's durable state needs. */
export interface ReplicaStateOptions {
  readonly groupId: string;
  readonly raftId: number;
  readonly replicaId: string;
  /** The founding voters (ignored when joining, or once the directory holds Raft state). */
  readonly initialVoters: readonly number[];
  readonly join: boolean;
  readonly bootstrap: boolean;
  readonly dataDirectory: string;
  readonly engine: EngineName;
  readonly logSegmentBytesMax?: number | undefined;
  readonly electionTimeoutTicks: number;
  readonly heartbeatTicks: number;
  readonly leaseReads: boolean;
  readonly logger: Logger;
  readonly logObserver: Partial<RaftLogObserver>;
  readonly wrapEngine?: ((engine: Engine) => Engine) | undefined;
  /** Seeds the core's election timeouts (the simulator passes its own). */
  readonly randomSeed?: number | undefined;
  /** Where the log and the state machine keep their files (default: the real file system). */
  readonly fileSystem?: FileSystem | undefined;
  /** Opens the replica's Raft log (default: a `RaftLogStore` in `<data directory>/raft`). */
  readonly openLog?: OpenReplicaLog | undefined;
  /** LevelDB: the state machine's generations in the node's engine (see `ReplicaOptions`). */
  readonly generationSpace?: GenerationSpace | undefined;
  /** Simulator only (see `ReplicaOptions.adjustCore`). */
  readonly adjustCore?: ((config: Config) => Config) | undefined;
}

/**
 * Opens a replica's Raft log: a log of its own, or its group's share of its node's log. The
 * configuration is the bootstrap one of a log that does not exist yet; `observer` gets its metrics.
 */
export type OpenReplicaLog = (input: {
  readonly confState: ConfState;
  readonly observer: Partial<RaftLogObserver>;
}) => Promise<ReplicaLog>;

/** A replica's durable state, opened and reconciled: the state machine, the log and the core over it. */
export interface ReplicaState {
  readonly stateMachine: ReplicaStateMachine;
  readonly logStore: ReplicaLog;
  readonly rawNode: RawNode;
}

/**
 * Opens a replica's state machine and Raft log and reconciles them: the one founding story.
 *
 * A brand-new group starts from a snapshot at index 1 that holds the founding configuration, on
 * every founding replica alike. A replica that joins later has an empty log and no configuration;
 * the leader cannot send it entries from before index 2, so it sends the snapshot, which carries
 * the configuration (and everything else) to the newcomer.
 *
 * A group is founded once: only a start told so (`bootstrap`) founds it. An empty directory is
 * also what a replica that lost its files looks like, and founding there would elect a leader of an
 * empty group at term 1 once a majority of replicas lost their files, or let this one vote a second
 * time in a term it already voted in (docs/decisions/0009-found-a-group-once.md).
 */
export async function openReplicaState(options: ReplicaStateOptions): Promise<ReplicaState> {
  const logger = options.logger;
  const initialConfState: ConfState = {
    // A replica that joins a live group starts with no configuration: it learns it from the leader.
    voters: options.join ? [] : [...options.initialVoters].sort((a, b) => a - b),
    learners: [],
    votersOutgoing: [],
    learnersNext: [],
    autoLeave: false,
  };
  const stateDirectory = join(options.dataDirectory, 'state');
  const stateMachine = await ReplicaStateMachine.open({
    directory: stateDirectory,
    engine: options.engine,
    logger,
    ...(options.wrapEngine === undefined ? {} : { wrapEngine: options.wrapEngine }),
    ...(options.fileSystem === undefined ? {} : { fileSystem: options.fileSystem }),
    ...(options.generationSpace === undefined ? {} : { generationSpace: options.generationSpace }),
  });
  const openLog: OpenReplicaLog =
    options.openLog ??
    ((input) =>
      RaftLogStore.open({
        directory: join(options.dataDirectory, 'raft'),
        ...(options.logSegmentBytesMax === undefined ? {} : { segmentBytesMax: options.logSegmentBytesMax }),
        confState: input.confState,
        logger: raftLoggerOf(logger.child({ component: 'raft-log' })),
        observer: input.observer,
        ...(options.fileSystem === undefined ? {} : { fileSystem: options.fileSystem }),
      }));
  const logStore = await openLog({ confState: initialConfState, observer: options.logObserver }).catch(
    async (error: unknown) => {
      await stateMachine.close();
      throw raftLogRefusal(options, error);
    },
  );
  try {
    refuseLostLog(options, stateMachine, logStore);
    // A faulted state machine held state (its applied index cannot be trusted): never founded again.
    const faulted = stateMachine.fault !== undefined;
    const holdsRaftState = faulted || stateMachine.appliedIndex > 0 || logStore.lastIndex() > 0;
    let founded = false;
    if (!holdsRaftState && !options.join) {
      if (!options.bootstrap) {
        throw new StartupError(
          'DATA_DIRECTORY_EMPTY',
          `data directory ${options.dataDirectory} holds no Raft state: starting would found group ${options.groupId} again, with no data. On the group's first start, pass --bootstrap; a replica that lost its data must be removed from its group (DELETE /admin/members/${options.replicaId} on the leader) and added back under a new replica id with --join`,
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
    if (!faulted) await catchUpWithLogSnapshot(stateMachine, logStore, stateDirectory);
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
    // A commit index alone is written without an fsync (a Ready with no entries and the same term
    // and vote needs none: etcd's MustSync), while the state machine applies the entries as soon
    // as they commit. A crash can so leave the log's commit behind what the state machine applied.
    // Those entries were committed (nothing else is applied), so the log's commit is raised to
    // them, durably, before the core starts: else a snapshot of the state machine (a compaction)
    // could be recorded past the core's commit, which the next start refuses.
    const hardStateBefore = logStore.hardState();
    if (
      !faulted &&
      hardStateBefore.commit < stateMachine.appliedIndex &&
      stateMachine.appliedIndex <= logStore.lastIndex()
    ) {
      logger.info(
        { commit: hardStateBefore.commit, applied: stateMachine.appliedIndex },
        "replica: the log's commit index is behind the state machine (a crash before it was synced); raised to the applied index",
      );
      await logStore.setHardState({ ...hardStateBefore, commit: stateMachine.appliedIndex });
    }
    const adjust = options.adjustCore ?? ((config: Config): Config => config);
    const rawNode = new RawNode(
      adjust({
        id: options.raftId,
        storage: logStore,
        // The core restarts from the log's snapshot, not from the state machine's applied index: it
        // hands back the committed entries after the snapshot, so that membership changes among
        // them rebuild the configuration. The host skips the commands it already applied.
        applied: logStore.snapshot().metadata.index,
        electionTimeoutTicks: options.electionTimeoutTicks,
        heartbeatTicks: options.heartbeatTicks,
        checkQuorum: true,
        preVote: true,
        readOnlyOption: options.leaseReads ? 'leaseBased' : 'safe',
        // The gateway sends writes to the leader; a follower answers NOT_LEADER rather than forward.
        disableProposalForwarding: true,
        // A follower learns a commit index with the next append or heartbeat, not from an empty
        // MsgApp of its own: half the messages of a write alone in its round (decision 0018).
        deferCommitBroadcast: true,
        maxSizePerMessageBytes: 1024 * 1024,
        maxInflightMessages: 256,
        maxUncommittedEntriesBytes: 64 * 1024 * 1024,
        random: createSeededRandom(options.randomSeed ?? randomBytes(4).readUInt32BE()),
        logger: raftLoggerOf(logger.child({ component: 'raft' })),
      }),
    );
    return { stateMachine, logStore, rawNode };
  } catch (error) {
    await logStore.close();
    await stateMachine.close();
    throw error;
  }
}

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
  logStore: ReplicaLog,
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
 * the state machine ahead of the log, but over a log that existed; that is repaired above.)
 */
function refuseLostLog(
  options: ReplicaStateOptions,
  stateMachine: ReplicaStateMachine,
  logStore: ReplicaLog,
): void {
  if (!logStore.created || (stateMachine.appliedIndex === 0 && stateMachine.fault === undefined)) return;
  throw new StartupError(
    'DATA_DIRECTORY_DAMAGED',
    `the Raft log in ${join(options.dataDirectory, 'raft')} is missing while the state machine has applied up to index ${stateMachine.appliedIndex}: the votes and the entries this replica acknowledged are lost, so it must not vote again under its id. Remove it from its group (DELETE /admin/members/${options.replicaId} on the leader) and add it back under a new replica id with --join`,
  );
}

/**
 * A Raft log damaged other than at its torn tail (`RAFT_LOG_CORRUPT`) is a data directory that
 * cannot be trusted: its votes and acknowledged entries may be gone, so the replica must be
 * replaced under a new id, which the refusal says. Other failures pass as they are.
 */
function raftLogRefusal(options: ReplicaStateOptions, error: unknown): unknown {
  if (!isRaftLogError(error, 'RAFT_LOG_CORRUPT')) return error;
  return new StartupError(
    'DATA_DIRECTORY_DAMAGED',
    `${error.message}. The votes and entries this replica acknowledged cannot be trusted, so it must not take part again under its id: remove it from its group (DELETE /admin/members/${options.replicaId} on the leader), wipe ${options.dataDirectory}, and add it back under a new replica id with --join`,
    { cause: error },
  );
}
