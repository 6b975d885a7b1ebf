/**
 * The storage engine interface: every engine (memory, leveldb) implements it, and one conformance
 * suite (`engine-conformance.ts`) runs against each of them.
 *
 * Keys and values are bytes. Keys order by unsigned byte comparison (as LevelDB orders them), so a
 * range scan returns the same order whatever the engine.
 */

export type EngineName = 'memory' | 'leveldb';

export const engineNames: readonly EngineName[] = ['memory', 'leveldb'];

/** One operation of an atomic batch. */
export type BatchOperation =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'delete'; readonly key: Uint8Array };

/** A forward range: keys k with `start <= k < end`, at most `limit` of them. */
export interface RangeOptions {
  /** Inclusive lower bound; the first key when absent. */
  readonly start?: Uint8Array;
  /** Exclusive upper bound; past the last key when absent. */
  readonly end?: Uint8Array;
  /** Maximum number of entries; unlimited when absent. */
  readonly limit?: number;
}

export interface Entry {
  readonly key: Buffer;
  readonly value: Buffer;
}

/**
 * A consistent, read-only view of the engine at the moment it was taken: writes made after it do
 * not show through it. Must be closed, or the engine keeps what it pins.
 */
export interface EngineSnapshot {
  get(key: Uint8Array): Promise<Buffer | undefined>;
  iterate(options?: RangeOptions): AsyncIterableIterator<Entry>;
  close(): Promise<void>;
}

export interface Engine {
  readonly name: EngineName;
  /** Resolves to the value, or `undefined` when the key is absent. */
  get(key: Uint8Array): Promise<Buffer | undefined>;
  /**
   * Whether each key is present, in the order given, from one view of the engine, in one call and
   * without reading the values: for a caller that must know which keys a batch creates.
   */
  hasMany(keys: readonly Uint8Array[]): Promise<boolean[]>;
  put(key: Uint8Array, value: Uint8Array): Promise<void>;
  /** Deleting an absent key succeeds and changes nothing. */
  delete(key: Uint8Array): Promise<void>;
  /** Applies every operation or none. Later operations on the same key win. */
  batch(operations: readonly BatchOperation[]): Promise<void>;
  /**
   * Ordered forward iteration over a consistent view taken when the iteration starts, that is at
   * the first `next()`: an iterator that is created and never used holds nothing. Writes made
   * while it runs do not show. Leave a `for await` loop early (or call `return()`) to release it.
   * Invalid options and a closed engine reject the first `next()`.
   */
  iterate(options?: RangeOptions): AsyncIterableIterator<Entry>;
  /** A consistent snapshot for long reads (Raft snapshots, range scans over many calls). */
  snapshot(): Promise<EngineSnapshot>;
  /**
   * Makes every write acknowledged so far durable, as one fsync. Engines opened without per-write
   * sync (a state machine behind a durable Raft log) call it before the log can no longer replay
   * their writes.
   */
  sync(): Promise<void>;
  /**
   * Moves every write acknowledged so far out of the engine's write-ahead log into its sorted
   * tables, fsynced. After it, damage to the write-ahead log can no longer take those writes away
   * (LevelDB drops a damaged log block silently on open). Slower than `sync()`: for rare points
   * such as before the Raft log is compacted. A no-op for engines with nothing on disk.
   */
  flush(): Promise<void>;
  /**
   * The exact number of keys in a range (`limit` is ignored), from one consistent view: O(n), it
   * reads every key (not the values). For start-up and rare points, never per request.
   */
  countKeys(range?: RangeOptions): Promise<number>;
  /** Flushes what is buffered and releases every resource. Idempotent. */
  close(): Promise<void>;
}
