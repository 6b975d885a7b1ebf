/**
 * The error registry: every error Impulse answers with has a stable code, an HTTP status and a
 * message. Callers (clients, the gateway, tests) match on the code, never on the message.
 *
 * The body of every error response is `{"error": {"code": "...", "message": "...", ...details}}`.
 */

export interface ErrorDefinition {
  readonly status: number;
  readonly description: string;
}

/** Every code, with its status and what it means. `docs/errors.md` documents the same list. */
export const errorRegistry = {
  INVALID_KEY: { status: 400, description: 'The key is empty, over the key size limit, or not valid UTF-8.' },
  INVALID_ENCODING: {
    status: 400,
    description: 'The key path segment or a query parameter has an invalid percent-encoding.',
  },
  INVALID_REQUEST: { status: 400, description: 'A query parameter or header has an invalid value.' },
  INVALID_TARGET: {
    status: 400,
    description:
      'The request target cannot name a key or route unambiguously: a raw `#` or `\\`, or an absolute-form or asterisk-form target. Percent-encode the key and send the path only.',
  },
  BODY_NOT_ALLOWED: {
    status: 400,
    description:
      'A `GET`, `HEAD` or `DELETE` came with a body (a non-zero `Content-Length` or a `Transfer-Encoding`).',
  },
  SLOT_MISMATCH: {
    status: 400,
    description:
      'The request named a slot (`x-impulse-slot`) that its key does not hash to: the key changed on its way. Nothing was written.',
  },
  MALFORMED_REQUEST: {
    status: 400,
    description:
      'The request is not valid HTTP/1.1 (bad framing, conflicting or duplicate length headers, an invalid header, no `Host`); the connection is closed.',
  },
  INVALID_CONTINUATION: {
    status: 400,
    description: 'The `continue` token of a scan is not one that a scan answered as `next`.',
  },
  ADMIN_UNAUTHORIZED: {
    status: 401,
    description:
      "An admin route (`/admin/...`) was asked without the process's admin token: no `Authorization: Bearer <token>` header, a malformed one, or a wrong token; or an admin change was asked of a process given no admin token. See `reason` (`missing`, `malformed`, `invalid`, `notConfigured`) and `WWW-Authenticate`. Nothing was changed.",
  },
  NOT_FOUND: { status: 404, description: 'The key does not exist.' },
  ROUTE_NOT_FOUND: { status: 404, description: 'No route matches the request path.' },
  METHOD_NOT_ALLOWED: { status: 405, description: 'The route exists but not for this method; see `Allow`.' },
  REQUEST_TIMEOUT: {
    status: 408,
    description:
      'The client did not send its headers within `--header-timeout`, or its whole request within `--request-timeout`; the connection is closed.',
  },
  VALUE_TOO_LARGE: { status: 413, description: 'The request body is over the value size limit.' },
  HEADERS_TOO_LARGE: {
    status: 431,
    description: 'The request line and headers are over 16 KiB; the connection is closed.',
  },
  MEMBERSHIP_CHANGE_REFUSED: {
    status: 409,
    description:
      'The membership change cannot be made now (another is pending, the learner is behind, or the member is unknown).',
  },
  NOT_LEADER: { status: 421, description: 'This replica is not the leader of its group; see `leaderHint`.' },
  WRONG_GROUP: { status: 421, description: "The key's slot is not owned by this group at its epoch." },
  GROUP_NOT_HOSTED: {
    status: 421,
    description:
      'This node hosts no replica of the group named in `x-impulse-group` (or the header is missing on a node of several groups); see `hostedGroups`.',
  },
  TOO_MANY_REQUESTS: { status: 429, description: 'A queue or in-flight limit is full; retry later.' },
  INTERNAL: { status: 500, description: 'An unexpected error; the process logs the cause.' },
  GROUP_UNAVAILABLE: { status: 503, description: 'No replica of the shard group answered.' },
  NOT_READY: { status: 503, description: 'The process is starting or stopping.' },
  REPLICA_FAILED: {
    status: 503,
    description:
      "This node's replica of the group failed (a failed Raft log write or apply) and is stopped until the node restarts; the group's other replicas serve. See `/admin/status`.",
  },
  STORAGE_ERROR: { status: 503, description: 'The storage engine failed the operation.' },
  STORAGE_FAULT: {
    status: 503,
    description:
      'This replica found its stored state damaged (a checksum mismatch, an unreadable block, a lost batch) and serves nothing until it is rebuilt; the other replicas of its group serve. See `fault` for the file and keys.',
  },
  COMMIT_TIMEOUT: {
    status: 503,
    description:
      'A write was proposed but did not apply in time; it may still apply. Retry with the same request id.',
  },
  TOO_MANY_CONNECTIONS: {
    status: 503,
    description:
      'The process has `--connections-max` client connections open; this one is closed. Retry later.',
  },
  UPSTREAM_TIMEOUT: { status: 504, description: 'The shard group did not answer within the deadline.' },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof errorRegistry;

export const errorCodes = Object.keys(errorRegistry) as ErrorCode[];

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorRegistry, code);
}

export type ErrorDetails = Readonly<Record<string, string | number | boolean | null | readonly string[]>>;

export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string } & ErrorDetails;
}

/** An operating error: bad input, a peer gone, a limit hit. Answered, logged, never fatal. */
export class ImpulseError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetails; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ImpulseError';
    this.code = code;
    this.status = errorRegistry[code].status;
    this.details = options.details ?? {};
  }

  toBody(): ErrorBody {
    return { error: { ...this.details, code: this.code, message: this.message } };
  }
}

export function errorBody(code: ErrorCode, message: string, details: ErrorDetails = {}): ErrorBody {
  return { error: { ...details, code, message } };
}
