/**
 * The history format a checker reads: one record per event, in the order the events happened
 * (JSON-lines friendly). `README.md` in this folder documents it.
 */

export type OperationFunction = 'get' | 'put' | 'delete' | 'cas';

/**
 * `invoke` starts an operation; `ok` says it took effect (and carries what a read saw); `fail`
 * says it certainly did not take effect; `info` says the outcome is unknown (timeout, connection
 * lost), so it may have taken effect at any moment after its invocation, or never.
 */
export type EventType = 'invoke' | 'ok' | 'fail' | 'info';

export interface HistoryEvent {
  /** The process that issued the operation; it has at most one operation outstanding. */
  readonly client: number;
  readonly type: EventType;
  readonly f: OperationFunction;
  readonly key: string;
  /**
   * On `invoke` of `put` and `cas` (required, a string): the value written. On `ok` of `get`
   * (required): the value read, `null` when the key was absent. Ignored elsewhere.
   */
  readonly value?: string | null;
  /**
   * On `invoke` of `cas` (required): the value the key must hold for the write to happen, `null`
   * when it must be absent.
   */
  readonly expected?: string | null;
  /** Monotonic time of the event (any unit, nanoseconds or milliseconds; only order matters). */
  readonly time: number;
}

/** One operation, its invocation paired with its completion. */
export interface Operation {
  /** Position of the invocation in the history; stable, used to name operations in reports. */
  readonly id: number;
  readonly client: number;
  readonly f: OperationFunction;
  readonly key: string;
  /** `put`/`cas`: the value written. */
  readonly input: string | null;
  /** `cas`: the value expected. */
  readonly expected: string | null;
  /** `get` with status `ok`: the value read. */
  readonly output: string | null;
  /** `info` operations may or may not have taken effect. */
  readonly status: 'ok' | 'info';
  readonly invokeTime: number;
  /** `Infinity` for `info` operations: they may take effect at any moment after invocation. */
  readonly returnTime: number;
}

/** The history is malformed (empty, a completion without an invocation, two calls outstanding, ...). */
export class HistoryFormatError extends Error {
  override readonly name = 'HistoryFormatError';
}

/**
 * Pairs invocations with completions. Operations that failed are dropped: they certainly did not
 * take effect. Invocations never completed are treated as `info`. Reads whose outcome is unknown
 * are dropped too: a read that may not have happened, and whose result nobody saw, constrains
 * nothing.
 */
export function operationsFromHistory(events: readonly HistoryEvent[]): Operation[] {
  const pending = new Map<number, { event: HistoryEvent; id: number }>();
  const operations: Operation[] = [];
  let lastTime = -Infinity;
  events.forEach((event, index) => {
    if (!Number.isFinite(event.time)) {
      throw new HistoryFormatError(`event ${index}: time must be a finite number`);
    }
    if (event.time < lastTime) {
      throw new HistoryFormatError(`event ${index}: time goes backwards (${event.time} < ${lastTime})`);
    }
    lastTime = event.time;
    if (event.type === 'invoke') {
      if ((event.f === 'put' || event.f === 'cas') && typeof event.value !== 'string') {
        throw new HistoryFormatError(`event ${index}: ${event.f} needs a string value`);
      }
      if (event.f === 'cas' && !isValue(event.expected)) {
        // A missing or non-string expectation would either read as "absent" or never match.
        throw new HistoryFormatError(
          `event ${index}: cas needs expected: the value the key must hold (a string), or null for absent`,
        );
      }
      if (pending.has(event.client)) {
        throw new HistoryFormatError(
          `event ${index}: client ${event.client} already has an operation outstanding`,
        );
      }
      pending.set(event.client, { event, id: index });
      return;
    }
    const call = pending.get(event.client);
    if (call === undefined) {
      throw new HistoryFormatError(`event ${index}: ${event.type} of client ${event.client} without invoke`);
    }
    if (call.event.f !== event.f || call.event.key !== event.key) {
      throw new HistoryFormatError(
        `event ${index}: completion ${event.f} ${event.key} does not match invoke ${call.event.f} ${call.event.key}`,
      );
    }
    pending.delete(event.client);
    if (event.type === 'fail') return;
    if (event.type === 'ok' && event.f === 'get' && !isValue(event.value)) {
      // A missing value must not silently read as "absent": that is a claim the history never made.
      throw new HistoryFormatError(
        `event ${index}: a get that completed ok needs a value (the value read, or null when absent)`,
      );
    }
    const operation = makeOperation(call.event, call.id, event.type, event.value ?? null, event.time);
    if (operation !== undefined) operations.push(operation);
  });
  for (const call of pending.values()) {
    const operation = makeOperation(call.event, call.id, 'info', null, Infinity);
    if (operation !== undefined) operations.push(operation);
  }
  operations.sort((a, b) => a.id - b.id);
  return operations;
}

function makeOperation(
  invoke: HistoryEvent,
  id: number,
  status: 'ok' | 'info',
  output: string | null,
  returnTime: number,
): Operation | undefined {
  if (status === 'info' && invoke.f === 'get') return undefined;
  return {
    id,
    client: invoke.client,
    f: invoke.f,
    key: invoke.key,
    input: invoke.f === 'put' || invoke.f === 'cas' ? (invoke.value ?? null) : null,
    expected: invoke.f === 'cas' ? (invoke.expected ?? null) : null,
    output: invoke.f === 'get' ? output : null,
    status,
    invokeTime: invoke.time,
    returnTime: status === 'info' ? Infinity : returnTime,
  };
}

/**
 * A value as events carry it: a string, or `null` for "absent". Histories come from JSON, so the
 * types are checked at run time too; `undefined` (a missing field) is not a value.
 */
function isValue(value: unknown): value is string | null {
  return value === null || typeof value === 'string';
}
