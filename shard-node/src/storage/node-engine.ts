/**
 * One LevelDB per node, shared by the state machines of every group the node hosts (decision
 * 0019). Each group's state lives under a key prefix of its own, one per generation of the group's
 * state machine (a snapshot install builds the next generation beside the live one):
 *
 *     0x01 · length of the group id (u8) · group id (UTF-8) · generation (u32, big-endian) · key
 *
 * and a `NodeEngineView` is the `Engine` of one such prefix: the state machine sees the keys
 * without their prefix, in the same byte order, and cannot reach another group's keys.
 *
 * Why: each group applying its committed entries to an engine of its own made one LevelDB write,
 * one trip through libuv's thread pool, per group per round; on a node of 64 groups with an entry
 * or two per group per round those trips were the largest cost of a write. Here every write of
 * every view goes to one queue, and the queue writes what it holds as **one LevelDB batch**, one
 * trip, with one write in flight at a time: the writes that arrive while one is in flight (every
 * group whose apply completed in the same round) go together in the next. Each view's batch stays
 * atomic: a LevelDB batch applies whole or not at all, and the combined batch contains each view's
 * operations in the order they were given.
 *
 * The keys below 0x01 are the engine's own (the sync marker, the flush range); no group key sorts
 * there.
 */
import { setImmediate } from 'node:timers';

import { BaseEngine } from './base-engine.js';
import type { EntryCursor, KeyBatchOperation, KeyRange, SnapshotView } from './base-engine.js';
import type { Engine } from './engine.js';
import { EngineError } from './engine-error.js';
import {
  countLevelKeys,
  flushRangeKey,
  hasOnLoopKeysMax,
  levelCursor,
  openLevelDatabase,
  syncMarkerKey,
  syncMarkerValue,
  writeLevelBatch,
  type Database,
  type LevelDbTuning,
} from './leveldb-engine.js';

/** The first byte of every group key. */
const groupSpaceTag = 0x01;

/** The most bytes a group id takes in a prefix (its length is one byte). */
export const nodeEngineGroupIdBytesMax = 255;

/**
 * A node's memtable holds every group's recent writes: larger than LevelDB's 4 MiB default, so
 * that many groups do not turn it into many small level-0 tables. The block cache likewise.
 */
export const nodeEngineTuning: LevelDbTuning = { writeBufferBytes: 16 << 20, cacheBytes: 32 << 20 };

/** What a node engine reports of its work (the node turns it into metrics). */
export interface NodeEngineObserver {
  /** One LevelDB write: how many views' writes (batches) and operations it carried, and whether it was synced. */
  onWrite(batches: number, operations: number, synced: boolean, seconds: number): void;
  /** One flush of the memtable to a table (a snapshot install, or the state made durable before a log compaction). */
  onFlush(seconds: number): void;
}

export interface NodeEngineOptions {
  /** The database's folder; created with its parents when missing. */
  readonly directory: string;
  readonly tuning?: LevelDbTuning;
  readonly observer?: NodeEngineObserver;
}

type LevelOperation = KeyBatchOperation;

/**
 * The most bytes (keys and values) of one LevelDB write: the writes queued beyond it wait for the
 * next one, so that one group's large batch (a snapshot chunk, a slot deletion) does not make one
 * huge write that every other group's applies of the round wait behind. A write always takes at
 * least one queued batch, whatever its size.
 */
export const nodeEngineWriteBytesMax = 4 << 20;

/** One view's write, queued: its operations go to LevelDB together, in one write. */
interface QueuedWrite {
  readonly operations: readonly LevelOperation[];
  readonly bytes: number;
  readonly sync: boolean;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class NodeEngine {
  readonly directory: string;
  readonly #database: Database;
  readonly #observer: NodeEngineObserver | undefined;
  /** The writes waiting for the next LevelDB write, in the order they were given. */
  #queue: QueuedWrite[] = [];
  #writing = false;
  /** Resolved when a write ends with nothing queued (what `close` waits for). */
  #drained: (() => void) | undefined;
  /** The flush asked for and not yet started: later callers share it. */
  #flushWaiting: Promise<void> | undefined;
  /** The newest flush started or asked for: flushes run one after another. */
  #flushLatest: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(database: Database, options: NodeEngineOptions) {
    this.directory = options.directory;
    this.#database = database;
    this.#observer = options.observer;
  }

  /** Opens (and creates when missing) the node's engine; rejects with `ENGINE_OPEN_FAILED`. */
  static async open(options: NodeEngineOptions): Promise<NodeEngine> {
    if (typeof options.directory !== 'string' || options.directory.length === 0) {
      throw new EngineError('ENGINE_INVALID_ARGUMENT', 'node engine: directory must be a non-empty string');
    }
    const database = await openLevelDatabase(options.directory, options.tuning ?? nodeEngineTuning);
    return new NodeEngine(database, options);
  }

  /** The generations of one group's state machine, each under its own prefix. */
  space(groupId: string): GroupSpace {
    return new GroupSpace(this, this.#database, groupId, groupPrefixOf(groupId));
  }

  /**
   * The groups that have keys here, in byte order of their ids: one seek per group, whatever
   * their sizes. For the node to find the state of groups it no longer hosts.
   */
  async storedGroups(): Promise<string[]> {
    this.#assertOpen();
    const groups: string[] = [];
    let from: Buffer = Buffer.from([groupSpaceTag]);
    const end = Buffer.from([groupSpaceTag + 1]);
    for (;;) {
      const [key] = await this.#database.keys({ gte: from, lt: end, limit: 1 }).all();
      if (key === undefined) return groups;
      const length = key[1] ?? 0;
      const prefix = key.subarray(0, 2 + length);
      groups.push(prefix.subarray(2).toString('utf8'));
      from = prefixEnd(prefix);
    }
  }

  /**
   * Queues `operations` (keys already prefixed) for the next LevelDB write; resolves once it is
   * written (and synced, when `sync`). With nothing queued, a synced write writes the sync marker:
   * LevelDB skips an empty batch.
   */
  write(operations: readonly LevelOperation[], sync: boolean): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    let bytes = 0;
    for (const operation of operations) {
      bytes += operation.key.length + (operation.type === 'put' ? operation.value.length : 0);
    }
    return new Promise((resolve, reject) => {
      if (this.#queue.length === 0 && !this.#writing) setImmediate(() => void this.#writeQueued());
      this.#queue.push({ operations, bytes, sync, resolve, reject });
    });
  }

  /** Makes every write resolved so far durable: one synced LevelDB write, shared by every caller meanwhile. */
  sync(): Promise<void> {
    return this.write([], true);
  }

  /**
   * Moves every write resolved so far out of LevelDB's write-ahead log into fsynced tables (see
   * `LevelDbEngine.flush` for why a compaction of an empty range does that). Callers that ask
   * while one waits to start share it; one that asks while one runs gets the next.
   */
  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    if (this.#flushWaiting !== undefined) return this.#flushWaiting;
    const run = this.#flushLatest
      .catch(() => undefined)
      .then(async () => {
        this.#flushWaiting = undefined;
        const started = performance.now();
        await this.#database.compactRange(flushRangeKey, flushRangeKey);
        await this.sync();
        this.#observer?.onFlush((performance.now() - started) / 1000);
      });
    this.#flushWaiting = run;
    this.#flushLatest = run;
    return run;
  }

  /**
   * Closes the database once the flushes and queued writes are done (the node closes it after its
   * replicas, so nothing new arrives meanwhile). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#flushLatest.catch(() => undefined);
    this.#closed = true;
    if (this.#writing || this.#queue.length > 0) {
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
    }
    await this.#database.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw closedError();
  }

  /** Writes the queued writes, up to `nodeEngineWriteBytesMax` of them, as one LevelDB batch. */
  async #writeQueued(): Promise<void> {
    if (this.#queue.length === 0) return;
    let taken = 0;
    let bytes = 0;
    let sync = false;
    const operations: LevelOperation[] = [];
    for (const queued of this.#queue) {
      if (taken > 0 && bytes + queued.bytes > nodeEngineWriteBytesMax) break;
      taken++;
      bytes += queued.bytes;
      sync ||= queued.sync;
      for (const operation of queued.operations) operations.push(operation);
    }
    const written = this.#queue.splice(0, taken);
    this.#writing = true;
    const started = performance.now();
    let failure: { error: unknown } | undefined;
    try {
      await writeLevelBatch(
        this.#database,
        operations.length > 0 ? operations : [{ type: 'put', key: syncMarkerKey, value: syncMarkerValue }],
        sync,
      );
    } catch (error) {
      failure = { error };
    }
    this.#writing = false;
    for (const queued of written) {
      if (failure === undefined) queued.resolve();
      else queued.reject(failure.error);
    }
    if (failure === undefined) {
      try {
        this.#observer?.onWrite(
          written.length,
          operations.length,
          sync,
          (performance.now() - started) / 1000,
        );
      } catch {
        // Metrics never fail a write that happened.
      }
    }
    // What arrived meanwhile goes in the next write, on the next turn: writes that complete in
    // this one still join it.
    if (this.#queue.length > 0) setImmediate(() => void this.#writeQueued());
    else this.#drained?.();
  }
}

/** The generations of one group's state machine in a node engine. */
export class GroupSpace {
  constructor(
    private readonly engine: NodeEngine,
    private readonly database: Database,
    readonly groupId: string,
    private readonly groupPrefix: Buffer,
  ) {}

  /** Where the generations' keys are (the node engine's folder), for fault reports and logs. */
  location(): string {
    return this.engine.directory;
  }

  /** The engine of one generation: its keys, under the generation's prefix. */
  engineOf(generation: number): Engine {
    return new NodeEngineView(this.engine, this.database, this.prefixOf(generation));
  }

  /** The generations that hold keys, in ascending order: one seek per generation. */
  async generations(): Promise<number[]> {
    const found: number[] = [];
    const end = prefixEnd(this.groupPrefix);
    let from = this.groupPrefix;
    for (;;) {
      const [key] = await this.database.keys({ gte: from, lt: end, limit: 1 }).all();
      if (key === undefined) return found;
      const generation = key.readUInt32BE(this.groupPrefix.length);
      found.push(generation);
      if (generation === 0xffff_ffff) return found;
      from = this.prefixOf(generation + 1);
    }
  }

  /** Deletes every key of one generation (not synced: a leftover is removed again at the next open). */
  async remove(generation: number): Promise<void> {
    const prefix = this.prefixOf(generation);
    await this.database.clear({ gte: prefix, lt: prefixEnd(prefix) });
  }

  /**
   * Deletes every key of every generation of the group, durably: the deletions are flushed to
   * tables (a synced write would not do: a memtable switched during the deletion leaves an older
   * write-ahead log that nothing syncs), so that no power cut brings the keys back.
   */
  async removeAll(): Promise<void> {
    await this.database.clear({ gte: this.groupPrefix, lt: prefixEnd(this.groupPrefix) });
    await this.engine.flush();
  }

  private prefixOf(generation: number): Buffer {
    if (!Number.isInteger(generation) || generation < 0 || generation > 0xffff_ffff) {
      throw new EngineError(
        'ENGINE_INVALID_ARGUMENT',
        `node engine: generation ${generation} is out of range`,
      );
    }
    const prefix = Buffer.alloc(this.groupPrefix.length + 4);
    this.groupPrefix.copy(prefix);
    prefix.writeUInt32BE(generation, this.groupPrefix.length);
    return prefix;
  }
}

/**
 * The engine of one prefix of a node engine. Writes go through the node engine's queue (one
 * LevelDB write for every view's writes of a round); reads go straight to LevelDB.
 */
class NodeEngineView extends BaseEngine {
  readonly #end: Buffer;

  constructor(
    private readonly engine: NodeEngine,
    private readonly database: Database,
    private readonly prefix: Buffer,
  ) {
    super('leveldb');
    this.#end = prefixEnd(prefix);
  }

  protected override async _get(key: Buffer): Promise<Buffer | undefined> {
    return this.database.get(this.#key(key));
  }

  /** As `LevelDbEngine`: a few keys on this thread, more in one trip to the pool. */
  protected override async _hasMany(keys: readonly Buffer[]): Promise<boolean[]> {
    if (keys.length <= hasOnLoopKeysMax) {
      return keys.map((key) => this.database.getSync(this.#key(key)) !== undefined);
    }
    return this.database.hasMany(keys.map((key) => this.#key(key)));
  }

  protected override _put(key: Buffer, value: Buffer): Promise<void> {
    return this.engine.write([{ type: 'put', key: this.#key(key), value }], false);
  }

  protected override _delete(key: Buffer): Promise<void> {
    return this.engine.write([{ type: 'delete', key: this.#key(key) }], false);
  }

  protected override _batch(operations: readonly KeyBatchOperation[]): Promise<void> {
    return this.engine.write(
      operations.map((operation) =>
        operation.type === 'put'
          ? { type: 'put' as const, key: this.#key(operation.key), value: operation.value }
          : { type: 'delete' as const, key: this.#key(operation.key) },
      ),
      false,
    );
  }

  protected override _iterate(range: KeyRange): EntryCursor {
    return levelCursor(this.database, this.#range(range), undefined, this.prefix.length);
  }

  protected override async _snapshot(): Promise<SnapshotView> {
    const snapshot = this.database.snapshot();
    return {
      get: (key) => this.database.get(this.#key(key), { snapshot }),
      cursor: (range) => levelCursor(this.database, this.#range(range), snapshot, this.prefix.length),
      close: () => snapshot.close(),
    };
  }

  protected override _countKeys(range: KeyRange): Promise<number> {
    return countLevelKeys(this.database, this.#range(range));
  }

  protected override _sync(): Promise<void> {
    return this.engine.sync();
  }

  protected override _flush(): Promise<void> {
    return this.engine.flush();
  }

  /** The node engine stays open: it belongs to the node, which closes it after its replicas. */
  protected override async _close(): Promise<void> {}

  #key(key: Buffer): Buffer {
    return Buffer.concat([this.prefix, key], this.prefix.length + key.length);
  }

  #range(range: KeyRange): KeyRange {
    return {
      start: range.start === undefined ? this.prefix : this.#key(range.start),
      end: range.end === undefined ? this.#end : this.#key(range.end),
      limit: range.limit,
    };
  }
}

function groupPrefixOf(groupId: string): Buffer {
  const id = Buffer.from(groupId, 'utf8');
  if (id.length === 0 || id.length > nodeEngineGroupIdBytesMax) {
    throw new EngineError(
      'ENGINE_INVALID_ARGUMENT',
      `node engine: a group id takes 1 to ${nodeEngineGroupIdBytesMax} bytes, not ${id.length}`,
    );
  }
  return Buffer.concat([Buffer.from([groupSpaceTag, id.length]), id]);
}

/** The first key past every key that starts with `prefix` (which is never all 0xff bytes here). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let index = end.length - 1; index >= 0; index--) {
    if ((end[index] as number) < 0xff) {
      end[index] = (end[index] as number) + 1;
      return end.subarray(0, index + 1);
    }
  }
  throw new EngineError('ENGINE_INVALID_ARGUMENT', 'node engine: a prefix of only 0xff bytes has no end');
}

function closedError(): EngineError {
  return new EngineError('ENGINE_CLOSED', 'node engine: closed');
}
