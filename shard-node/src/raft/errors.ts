/**
 * Errors of the Raft core. Operating errors (a proposal dropped, a message from an unknown peer, a
 * storage range compacted away) are `RaftError`s with a stable `code` that callers match on.
 * Programmer errors (a broken invariant, misuse of the API) are plain `Error`s thrown by `assert`.
 */

/** Every code a `RaftError` can carry, with what it means. */
export const raftErrorCodes = {
  RAFT_PROPOSAL_DROPPED: 'The proposal was dropped (e.g. this leader is being removed); retry elsewhere.',
  RAFT_NO_LEADER: 'The proposal was dropped: no leader is known.',
  RAFT_FORWARDING_DISABLED: 'The proposal was dropped: this follower does not forward proposals.',
  RAFT_TRANSFER_IN_PROGRESS: 'The proposal was dropped: a leadership transfer is in progress.',
  RAFT_UNCOMMITTED_LIMIT: 'The proposal was dropped: the uncommitted log is over its size limit.',
  RAFT_CONF_CHANGE_PENDING: 'The conf change was refused: an earlier one is not applied yet.',
  RAFT_CONF_CHANGE_INVALID: 'The conf change was refused: it does not fit the current configuration.',
  RAFT_STEP_LOCAL_MESSAGE: 'A local message type was received from the network.',
  RAFT_STEP_PEER_NOT_FOUND: 'A response arrived from a node outside the configuration.',
  RAFT_STORAGE_COMPACTED: 'The requested index is older than the first index in storage.',
  RAFT_STORAGE_UNAVAILABLE: 'The requested index is past the last index in storage.',
  RAFT_SNAPSHOT_TEMPORARILY_UNAVAILABLE: 'No snapshot can be produced right now; try again later.',
  RAFT_SNAPSHOT_OUT_OF_DATE: 'The snapshot is older than the one storage already holds.',
} as const;

export type RaftErrorCode = keyof typeof raftErrorCodes;

/** An operating error of the core, identified by its stable `code`. */
export class RaftError extends Error {
  readonly code: RaftErrorCode;

  constructor(code: RaftErrorCode, message: string = raftErrorCodes[code]) {
    super(message);
    this.name = 'RaftError';
    this.code = code;
  }
}

/** Storage: the index was compacted away; the caller falls back to a snapshot. */
export class CompactedError extends RaftError {
  constructor() {
    super('RAFT_STORAGE_COMPACTED');
    this.name = 'CompactedError';
  }
}

/** Storage: the index is not (yet) in the log. */
export class UnavailableError extends RaftError {
  constructor() {
    super('RAFT_STORAGE_UNAVAILABLE');
    this.name = 'UnavailableError';
  }
}

/** Storage: a snapshot is being prepared; the leader retries on a later heartbeat. */
export class SnapshotTemporarilyUnavailableError extends RaftError {
  constructor() {
    super('RAFT_SNAPSHOT_TEMPORARILY_UNAVAILABLE');
    this.name = 'SnapshotTemporarilyUnavailableError';
  }
}

/** Storage: `applySnapshot`/`createSnapshot` with an index at or below the current snapshot. */
export class SnapshotOutOfDateError extends RaftError {
  constructor() {
    super('RAFT_SNAPSHOT_OUT_OF_DATE');
    this.name = 'SnapshotOutOfDateError';
  }
}

/** Throws a programmer error (a broken invariant) when `condition` is false. */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(`raft: assertion failed: ${message}`);
  }
}

/**
 * Throws a programmer error. Hot paths write `if (!condition) fail(\`...\`)` instead of `assert`
 * so that the message (often a template string) is only built when the check fails.
 */
export function fail(message: string): never {
  throw new Error(`raft: assertion failed: ${message}`);
}
