/**
 * Errors raised by storage engines. They carry a stable `code` so that callers (the state machine,
 * the client API server) can match on it and map it to the HTTP error registry of `common`
 * (usually `STORAGE_ERROR`), never on the message.
 */

export type EngineErrorCode =
  /** The engine, or the engine behind a snapshot, was closed before or during the operation. */
  | 'ENGINE_CLOSED'
  /** The snapshot was closed before or during the operation. */
  | 'ENGINE_SNAPSHOT_CLOSED'
  /** The engine could not be opened (for example its directory is locked by another process). */
  | 'ENGINE_OPEN_FAILED'
  /** An argument has the wrong type or value; nothing was changed. */
  | 'ENGINE_INVALID_ARGUMENT'
  /** The underlying store failed the operation; `cause` holds its error. */
  | 'ENGINE_OPERATION_FAILED';

export class EngineError extends Error {
  readonly code: EngineErrorCode;

  constructor(code: EngineErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EngineError';
    this.code = code;
  }
}

export function isEngineError(error: unknown, code?: EngineErrorCode): error is EngineError {
  return error instanceof EngineError && (code === undefined || error.code === code);
}
