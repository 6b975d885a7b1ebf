/**
 * Errors of the peer transport. Operating errors (bytes from a peer that do not parse, a refused
 * handshake, a snapshot stream that failed) are `TransportError`s with a stable `code` that
 * callers match on. Programmer errors (misuse of the API, a broken invariant) are plain `Error`s
 * thrown by `assert`.
 */

/** Every code a `TransportError` can carry, with what it means. */
export const transportErrorCodes = {
  PEER_FRAME_MALFORMED: 'Bytes from a peer do not form a valid frame or message; the connection is closed.',
  PEER_HANDSHAKE_REJECTED: 'The hello of a connection names another cluster, group or replica.',
  PEER_UNKNOWN: 'The replica id is not a peer of this transport.',
  PEER_DISCONNECTED: 'The connection to the peer closed or failed before the operation completed.',
  PEER_TIMEOUT: 'The peer did not answer within the deadline.',
  TRANSPORT_STOPPED: 'The transport was stopped.',
} as const;

export type TransportErrorCode = keyof typeof transportErrorCodes;

/** An operating error of the transport, identified by its stable `code`. */
export class TransportError extends Error {
  readonly code: TransportErrorCode;

  constructor(code: TransportErrorCode, message: string = transportErrorCodes[code], cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'TransportError';
    this.code = code;
  }
}

/**
 * Untrusted bytes did not decode. `reason` is one of a small fixed set (it becomes a metric label);
 * the message says what exactly was wrong.
 */
export class PeerFrameMalformedError extends TransportError {
  readonly reason: MalformedReason;

  constructor(reason: MalformedReason, message: string) {
    super('PEER_FRAME_MALFORMED', `transport: malformed frame (${reason}): ${message}`);
    this.name = 'PeerFrameMalformedError';
    this.reason = reason;
  }
}

/**
 * Why bytes were refused. Kept small because it labels `impulse_transport_frames_malformed_total`.
 * - `tooLarge`: a frame announced more bytes than `frameBytesMax` (or fewer than a header).
 * - `checksum`: the CRC-32 of the frame does not match.
 * - `version`: the frame's version nibble is not one this transport speaks.
 * - `kind`: an unknown frame kind, or a kind not allowed at this point of the connection.
 * - `decode`: the payload does not decode (bad tag, length out of bounds, unsafe integer...).
 * - `truncated`: the connection ended in the middle of a frame.
 * - `protocol`: a well-formed frame that breaks the protocol (wrong sender, chunk out of order).
 */
export type MalformedReason =
  'tooLarge' | 'checksum' | 'version' | 'kind' | 'decode' | 'truncated' | 'protocol';

/** Throws a plain `Error` (a programmer error) when `condition` is false. */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(`transport: assertion failed: ${message}`);
  }
}
