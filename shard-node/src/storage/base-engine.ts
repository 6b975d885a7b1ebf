import assert, { AssertionError } from 'node:assert/strict';

import type { BatchOperation, Engine, EngineName, EngineSnapshot, Entry, RangeOptions } from './engine.js';
import { EngineError } from './engine-error.js';
import type { EngineErrorCode } from './engine-error.js';

/**
 * The template method for engines: the public methods of `BaseEngine` check that the engine is
 * open, validate and copy their arguments into Buffers, track the operation so that `close()` can
 * wait for it, and call a small protected method that each engine implements. Every rule that the
 * interface promises (argument checks, closed-engine errors, limits, ordering, idempotent close) is
 * therefore written once, here, and the conformance suite checks it against every engine.
 */

/** A range with validated, copied bounds. */
export interface KeyRange {
  /** Inclusive lower bound, never empty; the first key when undefined. */
  readonly start: Buffer | undefined;
  /** Exclusive upper bound; past the last key when undefined. */
  readonly end: Buffer | undefined;
  /** Maximum number of entries; unlimited when undefined. */
  readonly limit: number | undefined;
}

/** A batch operation with validated, copied key and value. */
export type KeyBatchOperation =
  | { readonly type: 'put'; readonly key: Buffer; readonly value: Buffer }
  | { readonly type: 'delete'; readonly key: Buffer };

/**
 * A forward iteration over a consistent view, pulled in chunks. The base class closes it exactly
 * once, whether the iteration ends, is abandoned through `return()`, or the engine closes.
 */
export interface EntryCursor {
  /**
   * The next entries in ascending key order, within the range it was opened for: at least one and
   * at most `countMax`, or none when the range is exhausted. A short chunk is not the end.
   */
  nextChunk(countMax: number): Promise<Entry[]>;
  close(): Promise<void>;
}

/** What an engine implements for a snapshot; the base class validates and tracks around it. */
export interface SnapshotView {
  get(key: Buffer): Promise<Buffer | undefined>;
  /** Opens a cursor over the snapshot; the range is not empty and `limit` is not 0. */
  cursor(range: KeyRange): EntryCursor;
  /** Releases what the snapshot pins. Called exactly once, after its cursors are closed. */
  close(): Promise<void>;
}

/**
 * Entries pulled from a cursor at a time. Bounded so that a scan over large values holds a bounded
 * amount of memory; engines may return fewer (for example when a chunk reaches a byte budget).
 */
export const iterationChunkEntriesMax = 64;

export abstract class BaseEngine implements Engine {
  readonly name: EngineName;
  readonly #lifecycle: Lifecycle;

  protected constructor(name: EngineName) {
    this.name = name;
    this.#lifecycle = new Lifecycle(name, 'ENGINE_CLOSED', () => this._close(), undefined);
  }

  /** Whether `close()` has been called; operations reject from that moment on. */
  get isClosed(): boolean {
    return !this.#lifecycle.isOpen;
  }

  async get(key: Uint8Array): Promise<Buffer | undefined> {
    this.#lifecycle.assertOpen();
    const keyBuffer = toKeyBuffer(key, 'key');
    const value = await this.#lifecycle.run('get', () => this._get(keyBuffer));
    assert.ok(value === undefined || Buffer.isBuffer(value), 'get resolves to a Buffer or undefined');
    return value;
  }

  async hasMany(keys: readonly Uint8Array[]): Promise<boolean[]> {
    this.#lifecycle.assertOpen();
    if (!Array.isArray(keys)) throw invalidArgument('keys must be an array');
    const keyBuffers = keys.map((key, index) => toKeyBuffer(key, `key ${index}`));
    if (keyBuffers.length === 0) return [];
    const found = await this.#lifecycle.run('hasMany', () => this._hasMany(keyBuffers));
    assert.ok(
      found.length === keyBuffers.length && found.every((each) => typeof each === 'boolean'),
      'hasMany answers one boolean per key',
    );
    return found;
  }

  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.#lifecycle.assertOpen();
    const keyBuffer = toKeyBuffer(key, 'key');
    const valueBuffer = toValueBuffer(value, 'value');
    await this.#lifecycle.run('put', () => this._put(keyBuffer, valueBuffer));
  }

  async delete(key: Uint8Array): Promise<void> {
    this.#lifecycle.assertOpen();
    const keyBuffer = toKeyBuffer(key, 'key');
    await this.#lifecycle.run('delete', () => this._delete(keyBuffer));
  }

  async batch(operations: readonly BatchOperation[]): Promise<void> {
    this.#lifecycle.assertOpen();
    // Every operation is validated before any is applied, so a batch with an invalid operation
    // changes nothing.
    const validated = toBatchOperations(operations);
    if (validated.length === 0) return;
    await this.#lifecycle.run('batch', () => this._batch(validated));
  }

  iterate(options?: RangeOptions): AsyncIterableIterator<Entry> {
    const range = attempt(() => toKeyRange(options));
    return this.#lifecycle.iterate(range, (validRange) => this._iterate(validRange));
  }

  async snapshot(): Promise<EngineSnapshot> {
    // The snapshot is registered inside the tracked operation: `close()` waits for it and then
    // closes it with the others, or it sees the engine closed and releases the view at once.
    return this.#lifecycle.run('snapshot', async () => {
      const view = await this._snapshot();
      if (!this.#lifecycle.isOpen) {
        await view.close();
        this.#lifecycle.assertOpen();
      }
      return new Snapshot(view, this.#lifecycle, this.name);
    });
  }

  async sync(): Promise<void> {
    this.#lifecycle.assertOpen();
    await this.#lifecycle.run('sync', () => this._sync());
  }

  async flush(): Promise<void> {
    this.#lifecycle.assertOpen();
    await this.#lifecycle.run('flush', () => this._flush());
  }

  async countKeys(options?: RangeOptions): Promise<number> {
    this.#lifecycle.assertOpen();
    const { start, end } = toKeyRange(options);
    if (isEmptyRange(start, end)) return 0;
    const count = await this.#lifecycle.run('countKeys', () =>
      this._countKeys({ start, end, limit: undefined }),
    );
    assert.ok(Number.isSafeInteger(count) && count >= 0, 'the key count is a non-negative integer');
    return count;
  }

  /**
   * Rejects new operations at once, waits for the operations in flight, closes every open
   * snapshot and iterator, then releases the engine. Idempotent: every call returns the same
   * promise.
   */
  close(): Promise<void> {
    return this.#lifecycle.close();
  }

  /** Resolves to a copy the caller may keep, or undefined when the key is absent. */
  protected abstract _get(key: Buffer): Promise<Buffer | undefined>;
  /** One boolean per key, in order; never called with no key. */
  protected abstract _hasMany(keys: readonly Buffer[]): Promise<boolean[]>;
  /** The key and value are copies owned by the engine from now on. */
  protected abstract _put(key: Buffer, value: Buffer): Promise<void>;
  protected abstract _delete(key: Buffer): Promise<void>;
  /** Applies every operation or none; never called with an empty batch. */
  protected abstract _batch(operations: readonly KeyBatchOperation[]): Promise<void>;
  /** A cursor over a consistent view taken now; the range is not empty and `limit` is not 0. */
  protected abstract _iterate(range: KeyRange): EntryCursor;
  protected abstract _snapshot(): Promise<SnapshotView>;
  /** The exact number of keys in the range (not empty, no limit), from one consistent view. */
  protected abstract _countKeys(range: KeyRange): Promise<number>;
  /** Makes every write so far durable (fsync); a no-op for engines with nothing on disk. */
  protected abstract _sync(): Promise<void>;
  /** Moves every write so far from the write-ahead log into fsynced tables; a no-op without a disk. */
  protected abstract _flush(): Promise<void>;
  /** Releases the store; called once, after every snapshot and iteration is closed. */
  protected abstract _close(): Promise<void>;
}

/** The public snapshot: the same checks as the engine, around an engine's `SnapshotView`. */
class Snapshot implements EngineSnapshot {
  readonly #view: SnapshotView;
  readonly #lifecycle: Lifecycle;

  constructor(view: SnapshotView, engineLifecycle: Lifecycle, engineName: EngineName) {
    this.#view = view;
    this.#lifecycle = new Lifecycle(
      `${engineName} snapshot`,
      'ENGINE_SNAPSHOT_CLOSED',
      () => view.close(),
      engineLifecycle,
    );
  }

  async get(key: Uint8Array): Promise<Buffer | undefined> {
    this.#lifecycle.assertOpen();
    const keyBuffer = toKeyBuffer(key, 'key');
    const value = await this.#lifecycle.run('snapshot get', () => this.#view.get(keyBuffer));
    assert.ok(value === undefined || Buffer.isBuffer(value), 'get resolves to a Buffer or undefined');
    return value;
  }

  iterate(options?: RangeOptions): AsyncIterableIterator<Entry> {
    const range = attempt(() => toKeyRange(options));
    return this.#lifecycle.iterate(range, (validRange) => this.#view.cursor(validRange));
  }

  close(): Promise<void> {
    return this.#lifecycle.close();
  }
}

type Attempt<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

function attempt<T>(body: () => T): Attempt<T> {
  try {
    return { ok: true, value: body() };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * The open/closed state of an engine or a snapshot, with what must be closed with it: the
 * operations in flight, the cursors of running iterations, and child lifecycles (the snapshots of
 * an engine).
 */
class Lifecycle {
  readonly #description: string;
  readonly #closedCode: EngineErrorCode;
  readonly #finalize: () => Promise<void>;
  readonly #parent: Lifecycle | undefined;
  readonly #children = new Set<Lifecycle>();
  readonly #cursors = new Set<EntryCursor>();
  readonly #pending = new Set<Promise<unknown>>();
  #isOpen = true;
  #closing: Promise<void> | undefined;

  constructor(
    description: string,
    closedCode: EngineErrorCode,
    finalize: () => Promise<void>,
    parent: Lifecycle | undefined,
  ) {
    this.#description = description;
    this.#closedCode = closedCode;
    this.#finalize = finalize;
    this.#parent = parent;
    if (parent !== undefined) {
      // A child is only created by an operation of its open parent, and the parent waits for its
      // operations before it closes its children, so the child cannot be missed.
      assert.ok(parent.#isOpen, 'a child lifecycle is created while its parent is open');
      parent.#children.add(this);
    }
  }

  get isOpen(): boolean {
    return this.#isOpen && (this.#parent === undefined || this.#parent.isOpen);
  }

  /** Throws the closed error of the outermost closed lifecycle (the engine before its snapshot). */
  assertOpen(): void {
    this.#parent?.assertOpen();
    if (!this.#isOpen) throw new EngineError(this.#closedCode, `${this.#description} is closed`);
  }

  /** Runs an operation of the underlying store, tracked so that `close()` waits for it. */
  async run<T>(operation: string, body: () => Promise<T>): Promise<T> {
    this.assertOpen();
    const promise = body();
    this.#pending.add(promise);
    try {
      return await promise;
    } catch (error) {
      throw wrapError(error, `${this.#description}: ${operation} failed`);
    } finally {
      this.#pending.delete(promise);
    }
  }

  /**
   * An iteration that acquires its cursor on the first `next()`, so that an iterator that is
   * created and never used holds nothing. It checks ordering and bounds as it goes: a cursor
   * that breaks them is a bug in the engine.
   */
  async *iterate(
    range: Attempt<KeyRange>,
    openCursor: (range: KeyRange) => EntryCursor,
  ): AsyncGenerator<Entry, void, undefined> {
    this.assertOpen();
    if (!range.ok) throw range.error;
    const { start, end, limit } = range.value;
    if (limit === 0 || isEmptyRange(start, end)) return;
    let cursor: EntryCursor;
    try {
      cursor = openCursor(range.value);
    } catch (error) {
      throw wrapError(error, `${this.#description}: iterate failed`);
    }
    this.#cursors.add(cursor);
    try {
      let countReturned = 0;
      let previousKey: Buffer | undefined;
      while (limit === undefined || countReturned < limit) {
        const countMax = Math.min(iterationChunkEntriesMax, (limit ?? Infinity) - countReturned);
        const chunk = await this.run('iterate', () => cursor.nextChunk(countMax));
        assert.ok(chunk.length <= countMax, 'a chunk holds at most countMax entries');
        if (chunk.length === 0) return;
        for (const entry of chunk) {
          assert.ok(Buffer.isBuffer(entry.key) && Buffer.isBuffer(entry.value), 'entries are Buffers');
          assert.ok(previousKey === undefined || Buffer.compare(previousKey, entry.key) < 0, 'keys ascend');
          assert.ok(start === undefined || Buffer.compare(entry.key, start) >= 0, 'key is at or above start');
          assert.ok(end === undefined || Buffer.compare(entry.key, end) < 0, 'key is below end');
          previousKey = entry.key;
          countReturned += 1;
          yield entry;
          // The engine may have closed while the consumer held this entry.
          this.assertOpen();
        }
      }
    } finally {
      if (this.#cursors.delete(cursor)) await cursor.close();
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#isOpen = false;
    // Operations in flight finish first: a snapshot being created registers as a child before
    // the children are closed below, and no store is closed under a running operation.
    await Promise.allSettled(this.#pending);
    const failures: unknown[] = [];
    for (const child of this.#children) {
      await child.close().catch((error: unknown) => failures.push(error));
    }
    for (const cursor of this.#cursors) {
      this.#cursors.delete(cursor);
      await cursor.close().catch((error: unknown) => failures.push(error));
    }
    assert.equal(this.#children.size, 0, 'every child removed itself on close');
    await this.#finalize().catch((error: unknown) => failures.push(error));
    if (this.#parent !== undefined) this.#parent.#children.delete(this);
    if (failures.length > 0) {
      throw wrapError(
        failures.length === 1 ? failures[0] : new AggregateError(failures),
        `${this.#description}: close failed`,
      );
    }
  }
}

/** Engine errors and failed assertions pass through; anything else is a failure of the store. */
function wrapError(error: unknown, message: string): unknown {
  if (error instanceof EngineError || error instanceof AssertionError) return error;
  const causeMessage = error instanceof Error ? error.message : String(error);
  return new EngineError('ENGINE_OPERATION_FAILED', `${message}: ${causeMessage}`, { cause: error });
}

function invalidArgument(message: string): EngineError {
  return new EngineError('ENGINE_INVALID_ARGUMENT', message);
}

/** Copies the key, so that a caller reusing its array cannot change what the engine stored. */
function toKeyBuffer(key: unknown, what: string): Buffer {
  if (!(key instanceof Uint8Array)) throw invalidArgument(`${what} must be a Uint8Array`);
  if (key.byteLength === 0) throw invalidArgument(`${what} must not be empty`);
  return Buffer.from(key);
}

/** Copies the value; zero bytes is a valid value. */
function toValueBuffer(value: unknown, what: string): Buffer {
  if (!(value instanceof Uint8Array)) throw invalidArgument(`${what} must be a Uint8Array`);
  return Buffer.from(value);
}

/** No key is below an empty end, and none is in `[start, end)` when `start >= end`. */
function isEmptyRange(start: Buffer | undefined, end: Buffer | undefined): boolean {
  if (end === undefined) return false;
  return end.byteLength === 0 || (start !== undefined && Buffer.compare(start, end) >= 0);
}

/** A range bound may be empty: an empty start is the first key, an empty end admits nothing. */
function toBoundBuffer(bound: unknown, what: string): Buffer | undefined {
  if (bound === undefined) return undefined;
  if (!(bound instanceof Uint8Array)) throw invalidArgument(`${what} must be a Uint8Array`);
  return Buffer.from(bound);
}

function toKeyRange(options: RangeOptions | undefined): KeyRange {
  if (options === undefined) return { start: undefined, end: undefined, limit: undefined };
  if (typeof options !== 'object' || options === null)
    throw invalidArgument('range options must be an object');
  const limit: unknown = options.limit;
  if (limit !== undefined && !(typeof limit === 'number' && Number.isSafeInteger(limit) && limit >= 0)) {
    throw invalidArgument(`range limit must be a non-negative integer, got ${String(limit)}`);
  }
  const start = toBoundBuffer(options.start, 'range start');
  return {
    // Every key is at or above an empty start, so engines see it as no bound at all.
    start: start === undefined || start.byteLength === 0 ? undefined : start,
    end: toBoundBuffer(options.end, 'range end'),
    limit: limit as number | undefined,
  };
}

function toBatchOperations(operations: readonly BatchOperation[]): KeyBatchOperation[] {
  if (!Array.isArray(operations)) throw invalidArgument('batch operations must be an array');
  return operations.map((operation: unknown, index): KeyBatchOperation => {
    if (typeof operation !== 'object' || operation === null) {
      throw invalidArgument(`batch operation ${index} must be an object`);
    }
    const { type, key, value } = operation as { type?: unknown; key?: unknown; value?: unknown };
    switch (type) {
      case 'put':
        return {
          type,
          key: toKeyBuffer(key, `batch operation ${index} key`),
          value: toValueBuffer(value, `batch operation ${index} value`),
        };
      case 'delete':
        return { type, key: toKeyBuffer(key, `batch operation ${index} key`) };
      default:
        throw invalidArgument(`batch operation ${index} has type ${String(type)}; expected put or delete`);
    }
  });
}
