/**
 * Errors of the durable Raft log. Operating errors (a corrupt file found at open, a write that
 * failed) are `RaftLogError`s with a stable `code` that callers match on. Programmer errors (a gap
 * in appended indexes, a record over its size limit) are plain `Error`s thrown by `assert`.
 */

/** Every code a `RaftLogError` can carry, with what it means. */
export const raftLogErrorCodes = {
  RAFT_LOG_CORRUPT:
    'The log refused to open: a record in the middle of the log (not a torn tail) is damaged or missing.',
  RAFT_LOG_CLOSED: 'The log was used after close().',
  RAFT_LOG_FAILED: 'An earlier write or fsync failed; the log must be closed and opened again.',
} as const;

export type RaftLogErrorCode = keyof typeof raftLogErrorCodes;

/** Where a corrupt record was found, for the operator. */
export interface CorruptionLocation {
  readonly file: string;
  readonly offsetBytes: number;
}

/** An operating error of the log, identified by its stable `code`. */
export class RaftLogError extends Error {
  readonly code: RaftLogErrorCode;
  /** The file and offset of the damage, for RAFT_LOG_CORRUPT. */
  readonly location: CorruptionLocation | undefined;

  constructor(
    code: RaftLogErrorCode,
    message: string = raftLogErrorCodes[code],
    options: { cause?: unknown; location?: CorruptionLocation } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RaftLogError';
    this.code = code;
    this.location = options.location;
  }
}

export function isRaftLogError(error: unknown, code?: RaftLogErrorCode): error is RaftLogError {
  return error instanceof RaftLogError && (code === undefined || error.code === code);
}

/** Builds the RAFT_LOG_CORRUPT error, with the file and offset in its message. */
export function corruptionError(file: string, offsetBytes: number, reason: string): RaftLogError {
  return new RaftLogError(
    'RAFT_LOG_CORRUPT',
    `raft-log: ${file} is corrupt at offset ${offsetBytes}: ${reason}`,
    {
      location: { file, offsetBytes },
    },
  );
}

/** Throws a programmer error (a broken precondition or invariant) when `condition` is false. */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(`raft-log: assertion failed: ${message}`);
  }
}
