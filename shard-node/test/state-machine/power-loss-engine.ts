import type {
  BatchOperation,
  Engine,
  EngineName,
  EngineSnapshot,
  Entry,
  RangeOptions,
} from '../../src/storage/index.js';

/**
 * A test double around a real engine that knows what a power loss would leave of it: every write
 * goes to the real engine, and is also held as pending until the engine's next `sync()` or
 * `flush()` completes, which makes it (and every write before it) durable. `durable` is then what
 * survives a power cut at that moment, in the most pessimistic reading of the engine's promise:
 * an unsynced write may be lost whole, whatever the page cache still held.
 */
export class PowerLossEngine implements Engine {
  /** Key (latin1) to value, as a power cut now would leave it. */
  readonly durable = new Map<string, Buffer>();
  #pending: { readonly key: string; readonly value: Buffer | undefined }[] = [];

  constructor(readonly inner: Engine) {}

  get name(): EngineName {
    return this.inner.name;
  }

  get(key: Uint8Array): Promise<Buffer | undefined> {
    return this.inner.get(key);
  }

  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.#pending.push({ key: Buffer.from(key).toString('latin1'), value: Buffer.from(value) });
    await this.inner.put(key, value);
  }

  async delete(key: Uint8Array): Promise<void> {
    this.#pending.push({ key: Buffer.from(key).toString('latin1'), value: undefined });
    await this.inner.delete(key);
  }

  async batch(operations: readonly BatchOperation[]): Promise<void> {
    for (const operation of operations) {
      this.#pending.push({
        key: Buffer.from(operation.key).toString('latin1'),
        value: operation.type === 'put' ? Buffer.from(operation.value) : undefined,
      });
    }
    await this.inner.batch(operations);
  }

  iterate(options?: RangeOptions): AsyncIterableIterator<Entry> {
    return this.inner.iterate(options);
  }

  snapshot(): Promise<EngineSnapshot> {
    return this.inner.snapshot();
  }

  async sync(): Promise<void> {
    const upTo = this.#pending.length;
    await this.inner.sync();
    this.#makeDurable(upTo);
  }

  async flush(): Promise<void> {
    const upTo = this.#pending.length;
    await this.inner.flush();
    this.#makeDurable(upTo);
  }

  hasMany(keys: readonly Uint8Array[]): Promise<boolean[]> {
    return this.inner.hasMany(keys);
  }

  countKeys(range?: RangeOptions): Promise<number> {
    return this.inner.countKeys(range);
  }

  /** Closing makes nothing durable here: the power may go before the process ends. */
  close(): Promise<void> {
    return this.inner.close();
  }

  #makeDurable(upTo: number): void {
    for (const { key, value } of this.#pending.slice(0, upTo)) {
      if (value === undefined) this.durable.delete(key);
      else this.durable.set(key, value);
    }
    this.#pending = this.#pending.slice(upTo);
  }
}
