/**
 * The configuration of one Raft node, validated once by `validateConfig` and frozen.
 */
import { assert } from './errors.js';
import { isRaftMutant, type RaftMutant } from './mutants.js';
import type { Storage } from './storage.js';
import type { Logger, NodeId } from './types.js';

/** How the leader confirms its leadership for a read (thesis §6.4). */
export type ReadOnlyOption = 'safe' | 'leaseBased';

export interface Config {
  /** This node's id; positive. */
  readonly id: NodeId;
  /**
   * Ticks a follower waits without hearing from a leader before campaigning. The actual timeout is
   * drawn uniformly from [electionTimeoutTicks, 2 * electionTimeoutTicks) each time. Default 10.
   */
  readonly electionTimeoutTicks?: number;
  /** Ticks between the leader's heartbeats; must be less than the election timeout. Default 1. */
  readonly heartbeatTicks?: number;
  /** The node's log storage; its initial state (hard state, conf state) is read at start. */
  readonly storage: Storage;
  /**
   * The last index the application has applied (on restart); 0 for a fresh node. Default 0. The
   * core re-delivers committed entries after it. Conf changes are part of what is applied: the
   * configuration in `storage.initialState()` must be the one as of `applied` (restarting from
   * the latest snapshot's index is always right).
   */
  readonly applied?: number;
  /**
   * Upper bound on the entry bytes of one MsgApp (at least one entry is always sent). 0 sends one
   * entry per message. Default 1 MiB.
   */
  readonly maxSizePerMessageBytes?: number;
  /** Maximum number of MsgApp in flight to one follower in replicate state. Default 256. */
  readonly maxInflightMessages?: number;
  /** Maximum payload bytes in flight to one follower; 0 means no byte limit. Default 0. */
  readonly maxInflightBytes?: number;
  /**
   * Maximum payload bytes of the leader's uncommitted tail; proposals beyond it are dropped with
   * RAFT_UNCOMMITTED_LIMIT. 0 means no limit. Default 0.
   */
  readonly maxUncommittedEntriesBytes?: number;
  /** Maximum bytes of committed entries in one Ready (at least one entry). Default 64 MiB. */
  readonly maxCommittedBytesPerReady?: number;
  /**
   * Whether a leader steps down when it has not heard from a quorum within an election timeout,
   * which also makes followers ignore votes while their leader is alive. Default false.
   */
  readonly checkQuorum?: boolean;
  /** Whether to run a pre-election before raising the term (thesis §9.6). Default false. */
  readonly preVote?: boolean;
  /**
   * How reads are confirmed; `leaseBased` requires `checkQuorum`. Default 'safe'. A `leaseBased`
   * leader answers at once only while it holds a lease (see "Lease reads" in README.md), and
   * through a heartbeat round otherwise.
   */
  readonly readOnlyOption?: ReadOnlyOption;
  /** Whether followers drop proposals instead of forwarding them to the leader. Default false. */
  readonly disableProposalForwarding?: boolean;
  /**
   * Whether a commit index that moved with no new entries to send waits for the next append or
   * heartbeat to reach the followers, instead of an empty MsgApp to each at once (etcd's way, the
   * default: false). Only the followers' knowledge of the commit index waits, by at most a
   * heartbeat interval: the leader commits, applies and answers as before, and neither safety nor
   * the leader's reads depend on when a follower learns it. What it saves, for a write that is
   * alone in its round (a group among many, each seeing few writes), is half the messages: the
   * empty MsgApp and its response to and from each follower, and the follower's Ready for them;
   * the follower applies what it learned with its next append's entries, in one Ready.
   */
  readonly deferCommitBroadcast?: boolean;
  /** A seeded generator in [0, 1); see `createSeededRandom`. */
  readonly random: () => number;
  /** Where the core logs; defaults to a logger that drops everything. */
  readonly logger?: Logger;
  /**
   * Test-only: planted bugs (`mutants.ts`), for the simulator's mutation tests. Production never
   * sets it: the shard node's host leaves it out and nothing on its command line reaches it.
   * Default none.
   */
  readonly mutants?: readonly RaftMutant[];
}

/** A validated configuration with every default filled in. */
export type ResolvedConfig = Readonly<Required<Config>>;

/** A logger that drops every line. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

function isNonNegativeInteger(value: number): boolean {
  return Number.isInteger(value) && value >= 0;
}

/** Fills in defaults and checks every field; throws an Error naming the first bad field. */
export function validateConfig(config: Config): ResolvedConfig {
  const resolved: ResolvedConfig = Object.freeze({
    id: config.id,
    electionTimeoutTicks: config.electionTimeoutTicks ?? 10,
    heartbeatTicks: config.heartbeatTicks ?? 1,
    storage: config.storage,
    applied: config.applied ?? 0,
    maxSizePerMessageBytes: config.maxSizePerMessageBytes ?? 1024 * 1024,
    maxInflightMessages: config.maxInflightMessages ?? 256,
    maxInflightBytes: config.maxInflightBytes ?? 0,
    maxUncommittedEntriesBytes: config.maxUncommittedEntriesBytes ?? 0,
    maxCommittedBytesPerReady: config.maxCommittedBytesPerReady ?? 64 * 1024 * 1024,
    checkQuorum: config.checkQuorum ?? false,
    preVote: config.preVote ?? false,
    readOnlyOption: config.readOnlyOption ?? 'safe',
    disableProposalForwarding: config.disableProposalForwarding ?? false,
    deferCommitBroadcast: config.deferCommitBroadcast ?? false,
    random: config.random,
    logger: config.logger ?? silentLogger,
    mutants: Object.freeze([...(config.mutants ?? [])]),
  });
  assert(Number.isInteger(resolved.id) && resolved.id > 0, 'config.id must be a positive integer');
  assert(
    Number.isInteger(resolved.heartbeatTicks) && resolved.heartbeatTicks > 0,
    'config.heartbeatTicks must be a positive integer',
  );
  assert(
    Number.isInteger(resolved.electionTimeoutTicks) &&
      resolved.electionTimeoutTicks > resolved.heartbeatTicks,
    'config.electionTimeoutTicks must be an integer greater than heartbeatTicks',
  );
  assert(isNonNegativeInteger(resolved.applied), 'config.applied must be a non-negative integer');
  assert(
    isNonNegativeInteger(resolved.maxSizePerMessageBytes),
    'config.maxSizePerMessageBytes must be a non-negative integer',
  );
  assert(
    Number.isInteger(resolved.maxInflightMessages) && resolved.maxInflightMessages > 0,
    'config.maxInflightMessages must be a positive integer',
  );
  assert(
    isNonNegativeInteger(resolved.maxInflightBytes),
    'config.maxInflightBytes must be a non-negative integer',
  );
  assert(
    resolved.maxInflightBytes === 0 || resolved.maxInflightBytes >= resolved.maxSizePerMessageBytes,
    'config.maxInflightBytes must be 0 or at least maxSizePerMessageBytes',
  );
  assert(
    isNonNegativeInteger(resolved.maxUncommittedEntriesBytes),
    'config.maxUncommittedEntriesBytes must be a non-negative integer',
  );
  assert(
    Number.isInteger(resolved.maxCommittedBytesPerReady) && resolved.maxCommittedBytesPerReady > 0,
    'config.maxCommittedBytesPerReady must be a positive integer',
  );
  assert(
    resolved.readOnlyOption === 'safe' || resolved.readOnlyOption === 'leaseBased',
    "config.readOnlyOption must be 'safe' or 'leaseBased'",
  );
  // A lease is only sound if the leader steps down when it loses its quorum, which is what
  // CheckQuorum does; without it a partitioned leader could serve stale reads forever.
  assert(
    resolved.readOnlyOption !== 'leaseBased' || resolved.checkQuorum,
    "config.readOnlyOption 'leaseBased' requires checkQuorum",
  );
  assert(typeof resolved.random === 'function', 'config.random must be a function returning [0, 1)');
  assert(resolved.storage !== undefined, 'config.storage is required');
  assert(
    resolved.mutants.every((name) => isRaftMutant(name)),
    'config.mutants must name mutants of raftMutants',
  );
  return resolved;
}
