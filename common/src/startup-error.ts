/**
 * Why a process refused to start. Start-up failures are not HTTP answers: every Impulse process
 * (gateway, shard-node, the `npm start` launcher) prints the cause as the first line on stderr and
 * exits with the status below, so that an operator, a supervisor or a script can tell a mistake in
 * the configuration (2: fix it, retrying will not help) from a problem of the environment (1: a
 * port taken, a data directory held by another process; retrying later may help).
 */

export interface StartupErrorDefinition {
  readonly exitCode: 1 | 2;
  readonly description: string;
}

/** Every start-up code, with its exit status. `docs/errors.md` documents the same list. */
export const startupErrorRegistry = {
  CONFIG_INVALID: {
    exitCode: 2,
    description:
      'A flag, an environment variable or the cluster configuration is invalid; every problem is listed.',
  },
  DATA_DIRECTORY_IDENTITY_MISMATCH: {
    exitCode: 2,
    description:
      'The data directory was created for another cluster, group, replica or engine; both identities are named. Nothing was written.',
  },
  DATA_DIRECTORY_UNUSABLE: {
    exitCode: 2,
    description:
      'The data directory cannot hold data: it is on a pseudo file system (`/proc`, `/sys`, ...) or its path goes through something that is not a directory. Nothing was written.',
  },
  DATA_DIRECTORY_EMPTY: {
    exitCode: 2,
    description:
      'The data directory holds no Raft state and the replica was given neither `--bootstrap` (the first start of its group) nor `--join`: starting would found its group again with no data. A replica that lost its data is removed from its group and added back under a new replica id.',
  },
  DATA_DIRECTORY_NOT_WRITABLE: {
    exitCode: 1,
    description: 'The data directory (or the folder it is to be created in) is not writable by this process.',
  },
  DATA_DIRECTORY_LOCKED: {
    exitCode: 1,
    description:
      'Another live process holds the data directory (its `LOCK` file). Nothing was written; the lock of a dead process never blocks.',
  },
  DATA_DIRECTORY_DAMAGED: {
    exitCode: 1,
    description:
      'The data directory cannot be trusted: its Raft log is damaged other than at its torn tail (a flipped byte, a cut or missing segment: the message names the file and offset), or missing under a state machine that applied entries. The replica must be removed from its group and added back under a new replica id, as the message says.',
  },
  DATA_DIRECTORY_FORMAT_UNSUPPORTED: {
    exitCode: 2,
    description:
      'The state machine in the data directory was written in a format this version does not convert (format 1, before per-record checksums, or a format newer than 3; format 2 is converted at start). Start the replica on an empty data directory and add it to its group again.',
  },
  ADDRESS_IN_USE: {
    exitCode: 1,
    description: 'A port the process must listen on is taken, or the address is not available on this host.',
  },
  START_FAILED: { exitCode: 1, description: 'Any other failure during start-up; the cause is printed.' },
} as const satisfies Record<string, StartupErrorDefinition>;

export type StartupErrorCode = keyof typeof startupErrorRegistry;

export const startupErrorCodes = Object.keys(startupErrorRegistry) as StartupErrorCode[];

/** A refusal to start, with a stable code and the exit status that code maps to. */
export class StartupError extends Error {
  readonly code: StartupErrorCode;
  readonly exitCode: 1 | 2;

  constructor(code: StartupErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StartupError';
    this.code = code;
    this.exitCode = startupErrorRegistry[code].exitCode;
  }
}

/**
 * The start-up error an arbitrary failure stands for: a `StartupError` as it is; a listen that
 * failed because the address is taken or missing as `ADDRESS_IN_USE`, naming the address; anything
 * else as `START_FAILED` with its message.
 */
export function startupErrorOf(error: unknown): StartupError {
  if (error instanceof StartupError) return error;
  const failure = error as NodeJS.ErrnoException & { address?: string; port?: number };
  const code = typeof failure?.code === 'string' ? failure.code : undefined;
  if (
    code === 'EADDRINUSE' ||
    code === 'EADDRNOTAVAIL' ||
    (code === 'EACCES' && failure.syscall === 'listen')
  ) {
    const address =
      failure.address === undefined ? 'the address' : `${failure.address}:${String(failure.port ?? '')}`;
    return new StartupError('ADDRESS_IN_USE', `cannot listen on ${address}: ${code}`, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new StartupError('START_FAILED', message, { cause: error });
}

/**
 * The lines a process prints on stderr when it cannot start: the first one names the program and
 * the cause, so that a launcher relaying only one line still relays the cause.
 */
export function startupErrorLines(program: string, error: StartupError): string[] {
  const [first = '', ...rest] = error.message.split('\n');
  return [`${program}: ${first} [${error.code}]`, ...rest];
}
