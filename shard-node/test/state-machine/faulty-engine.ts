import type {
  BatchOperation,
  Engine,
  EngineName,
  EngineSnapshot,
  Entry,
  RangeOptions,
} from '../../src/storage/index.js';

/**
 * A test double around a real engine, for fault injection: every call goes to the real engine,
 * except that what a read returns can be altered (as a damaged table block would alter it), a read
 * can fail (as LevelDB fails on a block it cannot decode), one batch can be dropped (as LevelDB
 * drops a damaged block of its write-ahead log: the caller was told it was written), batches can
 * stop being written from one on (a crash), and a snapshot can fail to open.
 */
export class FaultyEngine implements Engine {
  /** Returns the bytes a read of `key` gives instead of `stored`; identity when unset. */
  alterRead: ((key: Buffer, stored: Buffer) => Buffer) | undefined;
  /** Thrown by every read while set. */
  readError: Error | undefined;
  /** The number (1-based) of the next batch call to drop silently; none when undefined. */
  dropBatchNumber: number | undefined;
  /**
   * The number (1-based) of the batch call from which every batch fails, writing nothing, as if
   * the process had died there; none when undefined.
   */
  crashBatchNumber: number | undefined;
  /** Asked at every `snapshot()`: an error to fail it with (as an engine out of resources would), or none. */
  snapshotError: (() => Error | undefined) | undefined;
  /**
   * Awaited before the first entry of every iteration of a snapshot opened while it is set: a
   * snapshot that streams slowly (a large state, a loaded disk).
   */
  snapshotIterationGate: Promise<void> | undefined;
  #batches = 0;

  constructor(readonly inner: Engine) {}

  get name(): EngineName {
    return this.inner.name;
  }

  async get(key: Uint8Array): Promise<Buffer | undefined> {
    if (this.readError !== undefined) throw this.readError;
    const stored = await this.inner.get(key);
    return stored === undefined ? undefined : this.#altered(Buffer.from(key), stored);
  }

  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    return this.inner.put(key, value);
  }

  delete(key: Uint8Array): Promise<void> {
    return this.inner.delete(key);
  }

  async batch(operations: readonly BatchOperation[]): Promise<void> {
    this.#batches++;
    if (this.crashBatchNumber !== undefined && this.#batches >= this.crashBatchNumber)
      throw new Error(`simulated crash at batch ${this.#batches}`);
    if (this.#batches === this.dropBatchNumber) return;
    await this.inner.batch(operations);
  }

  iterate(options?: RangeOptions): AsyncIterableIterator<Entry> {
    return this.#alteredEntries(this.inner.iterate(options));
  }

  async snapshot(): Promise<EngineSnapshot> {
    const error = this.snapshotError?.();
    if (error !== undefined) throw error;
    const snapshot = await this.inner.snapshot();
    const gate = this.snapshotIterationGate;
    return {
      get: async (key) => {
        if (this.readError !== undefined) throw this.readError;
        const stored = await snapshot.get(key);
        return stored === undefined ? undefined : this.#altered(Buffer.from(key), stored);
      },
      iterate: (options) => this.#alteredEntries(snapshot.iterate(options), gate),
      close: () => snapshot.close(),
    };
  }

  sync(): Promise<void> {
    return this.inner.sync();
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  async hasMany(keys: readonly Uint8Array[]): Promise<boolean[]> {
    if (this.readError !== undefined) throw this.readError;
    return this.inner.hasMany(keys);
  }

  async countKeys(range?: RangeOptions): Promise<number> {
    if (this.readError !== undefined) throw this.readError;
    return this.inner.countKeys(range);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  #altered(key: Buffer, stored: Buffer): Buffer {
    return this.alterRead === undefined ? stored : this.alterRead(key, stored);
  }

  async *#alteredEntries(
    entries: AsyncIterableIterator<Entry>,
    gate?: Promise<void>,
  ): AsyncIterableIterator<Entry> {
    await gate;
    for await (const entry of entries) {
      if (this.readError !== undefined) throw this.readError;
      yield { key: entry.key, value: this.#altered(entry.key, entry.value) };
    }
  }
}

/** Flips the last bit of the last byte: the smallest damage there is. */
export function flipLastBit(bytes: Buffer): Buffer {
  const altered = Buffer.from(bytes);
  if (altered.length > 0) altered[altered.length - 1] = (altered[altered.length - 1] as number) ^ 0x01;
  return altered;
}
