import { access, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { createDirectoryDurably, syncDirectory } from '@impulse/common';

import { ClassicLevel } from 'classic-level';

import { BaseEngine } from './base-engine.js';
import type { EntryCursor, KeyBatchOperation, KeyRange, SnapshotView } from './base-engine.js';
import { EngineError } from './engine-error.js';

/**
 * The LevelDB engine (through `classic-level`): the default state machine store of a replica.
 *
 * Reads through a snapshot and every iteration use LevelDB's own snapshots, which pin a sequence
 * number and cost nothing up front.
 */

export interface LevelDbEngineOptions {
  /** The data directory; created (with its parents) when missing. One engine per directory. */
  readonly directory: string;
  /**
   * When true, each write is fsynced before it is acknowledged. LevelDB groups concurrent
   * synced writers into one log write, which gives group commit at this layer. A state machine
   * whose Raft log is durable may pass false: after a crash it replays the log from the applied
   * index, which is written in the same batch as the data.
   */
  readonly sync: boolean;
}

/** LevelDB's sizes where classic-level's defaults do not suit (a node's engine holds many groups). */
export interface LevelDbTuning {
  /** Bytes of writes LevelDB buffers in its memtable before it writes a table (default 4 MiB). */
  readonly writeBufferBytes?: number;
  /** Bytes of uncompressed blocks LevelDB caches (default 8 MiB). */
  readonly cacheBytes?: number;
}

function openDatabase(directory: string, tuning: LevelDbTuning = {}): Database {
  return new ClassicLevel<Buffer, Buffer>(directory, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    createIfMissing: true,
    ...(tuning.writeBufferBytes === undefined ? {} : { writeBufferSize: tuning.writeBufferBytes }),
    ...(tuning.cacheBytes === undefined ? {} : { cacheSize: tuning.cacheBytes }),
  });
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Tables and non-empty write-ahead logs in `directory` (none when it does not exist). */
async function filesHoldingData(directory: string): Promise<string[]> {
  const entries = await readdir(directory).catch(() => [] as string[]);
  const found: string[] = [];
  for (const entry of entries) {
    if (/\.(ldb|sst)$/.test(entry)) found.push(entry);
    else if (/\.log$/.test(entry) && (await stat(join(directory, entry))).size > 0) found.push(entry);
  }
  return found;
}

/**
 * Creates an empty database at `directory`, atomically and durably. LevelDB writes a new
 * database's first manifest without fsyncing it (`DBImpl::NewDB` of LevelDB 1.20) and its first
 * open then points CURRENT at a second one: a power cut in between can leave CURRENT naming an
 * empty manifest, a database that never opens again. So the database is made under a temporary
 * name, opened once, closed, its folder fsynced, and only then renamed into place (the parent
 * folder fsynced too). A crash before the rename leaves a temporary folder that the next attempt
 * replaces. A folder that exists without CURRENT is replaced only when it holds no data (no table,
 * no non-empty write-ahead log: what a crash inside LevelDB's own creation leaves); otherwise it is
 * refused, never emptied.
 */
async function createDatabase(directory: string): Promise<void> {
  const temporary = join(dirname(directory), `.${basename(directory)}.creating`);
  await rm(temporary, { recursive: true, force: true });
  await createDirectoryDurably(dirname(directory));
  await mkdir(temporary);
  const database = openDatabase(temporary);
  await database.open();
  await database.close();
  await syncDirectory(temporary);
  const holdingData = await filesHoldingData(directory);
  if (holdingData.length > 0) {
    throw new Error(
      `it has no CURRENT file but holds data (${holdingData.slice(0, 3).join(', ')}): not replacing it`,
    );
  }
  await rm(directory, { recursive: true, force: true });
  await rename(temporary, directory);
  await syncDirectory(dirname(directory));
}

/**
 * Bytes of entries an iterator reads ahead of the consumer, so that a scan over large values
 * holds a bounded amount of memory. LevelDB always returns at least one entry per read.
 */
export const levelDbIteratorBytesMax = 256 * 1024;

/** Keys counted per read by `countKeys()`. */
const keyCountChunkKeysMax = 1024;

export type Database = ClassicLevel<Buffer, Buffer>;

/**
 * Keys up to which `hasMany` looks them up on the calling thread rather than in the thread pool.
 * A lookup of a key a batch writes costs microseconds: the key is mostly in the memtable or the
 * block cache, and an absent one is mostly ruled out by the tables' Bloom filters (classic-level
 * builds them, 10 bits a key) without a read. The hand-off to a pool thread and back costs more:
 * on a node that hosts many groups, each applies a batch of an entry or two per round, and each
 * of those pool round trips wakes a thread and takes the pool's lock (futex waits on a busy
 * machine). The price: a present key's value is copied out (`getSync` has no keys-only form),
 * and a lookup that misses every cache reads a block from disk on the event loop. Bounded by this
 * count per call; bigger calls (a batch of many keys) go to the pool as one call.
 */
export const hasOnLoopKeysMax = 16;

export const syncMarkerKey = Buffer.from([0x00, 0x73, 0x79, 0x6e, 0x63]); // "\0sync"
export const syncMarkerValue = Buffer.alloc(0);
/**
 * The one-key range `flush()` compacts: two zero bytes sort below the sync marker and below every
 * key the replica writes (each starts with a letter), so no table overlaps it.
 */
export const flushRangeKey = Buffer.from([0x00, 0x00]);
export type DatabaseSnapshot = ReturnType<Database['snapshot']>;

/**
 * Opens (and creates when missing, durably: see `createDatabase`) the LevelDB database in
 * `directory`, with explicit snapshots. Rejects with code `ENGINE_OPEN_FAILED` and the cause when it
 * cannot, for example when another process (or another engine in this process) holds its lock.
 */
export async function openLevelDatabase(directory: string, tuning: LevelDbTuning = {}): Promise<Database> {
  let database: Database;
  try {
    if (!(await exists(join(directory, 'CURRENT')))) await createDatabase(directory);
    database = openDatabase(directory, tuning);
    await database.open();
    // Opening writes a new manifest and points CURRENT at it by a rename, then removes the old
    // manifest, without fsyncing the folder: made durable here, before anything relies on them.
    await syncDirectory(directory);
  } catch (error) {
    throw new EngineError(
      'ENGINE_OPEN_FAILED',
      `leveldb: cannot open ${directory}: ${describeOpenError(error)}`,
      {
        cause: error,
      },
    );
  }
  if (!database.supports.explicitSnapshots) {
    await database.close();
    throw new EngineError('ENGINE_OPEN_FAILED', 'leveldb: this classic-level lacks explicit snapshots');
  }
  return database;
}

export class LevelDbEngine extends BaseEngine {
  readonly directory: string;
  readonly #database: Database;
  readonly #writeOptions: { readonly sync: boolean };

  private constructor(database: Database, options: LevelDbEngineOptions) {
    super('leveldb');
    this.directory = options.directory;
    this.#database = database;
    this.#writeOptions = { sync: options.sync };
  }

  /**
   * Opens (and creates when missing) the database in `options.directory`. Rejects with code
   * `ENGINE_OPEN_FAILED` and the cause when it cannot, for example when another process (or
   * another engine in this process) holds the directory's lock.
   */
  static async open(options: LevelDbEngineOptions): Promise<LevelDbEngine> {
    if (typeof options.directory !== 'string' || options.directory.length === 0) {
      throw new EngineError('ENGINE_INVALID_ARGUMENT', 'leveldb: directory must be a non-empty string');
    }
    if (typeof options.sync !== 'boolean') {
      throw new EngineError('ENGINE_INVALID_ARGUMENT', 'leveldb: sync must be a boolean');
    }
    const database = await openLevelDatabase(options.directory);
    return new LevelDbEngine(database, options);
  }

  protected override async _get(key: Buffer): Promise<Buffer | undefined> {
    return this.#database.get(key);
  }

  /**
   * LevelDB has no Has(). Up to `hasOnLoopKeysMax` keys are looked up on this thread (`getSync`);
   * more go to the thread pool in one call (`db_has_many`: one iterator seek per key, no value
   * copied out).
   */
  protected override async _hasMany(keys: readonly Buffer[]): Promise<boolean[]> {
    if (keys.length <= hasOnLoopKeysMax) return keys.map((key) => this.#database.getSync(key) !== undefined);
    return this.#database.hasMany([...keys]);
  }

  protected override async _put(key: Buffer, value: Buffer): Promise<void> {
    await this.#database.put(key, value, this.#writeOptions);
  }

  protected override async _delete(key: Buffer): Promise<void> {
    await this.#database.del(key, this.#writeOptions);
  }

  /**
   * LevelDB has no flush call; a synced write flushes its log, and with it every earlier write.
   * An empty synced batch is skipped by LevelDB, so one tiny record is written under a key that
   * sorts before every key the replica uses (byte 0x00 prefix).
   */
  protected override async _sync(): Promise<void> {
    await this.#database.put(syncMarkerKey, syncMarkerValue, { sync: true });
  }

  /**
   * LevelDB's `CompactRange` first writes the memtable to a level-0 table and waits for it
   * (`DBImpl::CompactRange` calls `TEST_CompactMemTable`, whatever the range; db/db_impl.cc of
   * LevelDB 1.20, which classic-level 3 builds). The table is fsynced (`BuildTable`) and the
   * manifest that names it too (`LogAndApply`), and the write-ahead log is replaced by a new one.
   * The range given overlaps no table (no key is this small; see `flushRangeKey`), so nothing but
   * the memtable is compacted. `CompactRange` reports no error: a failed flush leaves LevelDB's
   * background error set, which fails every later write, so a synced write after it proves the
   * flush happened.
   */
  protected override async _flush(): Promise<void> {
    await this.#database.compactRange(flushRangeKey, flushRangeKey);
    await this.#database.put(syncMarkerKey, syncMarkerValue, { sync: true });
  }

  /** A LevelDB write batch is atomic, and applies its operations in order. */
  protected override async _batch(operations: readonly KeyBatchOperation[]): Promise<void> {
    await writeLevelBatch(this.#database, operations, this.#writeOptions.sync);
  }

  /** A LevelDB iterator reads from an implicit snapshot taken when it is created. */
  protected override _iterate(range: KeyRange): EntryCursor {
    return this.#cursor(range, undefined);
  }

  protected override async _snapshot(): Promise<SnapshotView> {
    const snapshot = this.#database.snapshot();
    return {
      get: (key) => this.#database.get(key, { snapshot }),
      cursor: (range) => this.#cursor(range, snapshot),
      close: () => snapshot.close(),
    };
  }

  /**
   * Exact, but O(n): it reads every key (not the values) of a consistent view. LevelDB keeps no
   * count; the state machine keeps its own count of user keys, and calls this at open only.
   */
  protected override async _countKeys(range: KeyRange): Promise<number> {
    return countLevelKeys(this.#database, range);
  }

  protected override async _close(): Promise<void> {
    await this.#database.close();
  }

  #cursor(range: KeyRange, snapshot: DatabaseSnapshot | undefined): EntryCursor {
    return levelCursor(this.#database, range, snapshot, 0);
  }
}

/**
 * Writes `operations` to `database` as one atomic LevelDB batch, built as a chained batch:
 * classic-level's array form (`batch([...])`) costs several microseconds per operation in
 * JavaScript and in the conversion of each operation object (about 12 µs per operation, against 4
 * for the chained form, at 40 operations a batch on this machine: `docs/decisions/0019`), which
 * on a node writing every group's applies of a round at once is most of the write.
 */
export async function writeLevelBatch(
  database: Database,
  operations: readonly KeyBatchOperation[],
  sync: boolean,
): Promise<void> {
  const batch = database.batch();
  try {
    for (const operation of operations) {
      if (operation.type === 'put') batch.put(operation.key, operation.value);
      else batch.del(operation.key);
    }
  } catch (error) {
    await batch.close();
    throw error;
  }
  await batch.write({ sync });
}

/**
 * A cursor over `range` of `database` (through `snapshot` when given), that drops the first
 * `prefixBytes` bytes of every key it returns (a node engine's view strips its prefix).
 */
export function levelCursor(
  database: Database,
  range: KeyRange,
  snapshot: DatabaseSnapshot | undefined,
  prefixBytes: number,
): EntryCursor {
  const iterator = database.iterator({
    ...(range.start === undefined ? {} : { gte: range.start }),
    ...(range.end === undefined ? {} : { lt: range.end }),
    ...(range.limit === undefined ? {} : { limit: range.limit }),
    ...(snapshot === undefined ? {} : { snapshot }),
    highWaterMarkBytes: levelDbIteratorBytesMax,
  });
  return {
    nextChunk: async (countMax) => {
      const pairs = await iterator.nextv(countMax);
      return pairs.map(([key, value]) => ({
        key: prefixBytes === 0 ? key : key.subarray(prefixBytes),
        value,
      }));
    },
    close: () => iterator.close(),
  };
}

/** The number of keys in `range` of `database`, read (keys only) from one implicit snapshot. */
export async function countLevelKeys(database: Database, range: KeyRange): Promise<number> {
  const iterator = database.keys({
    ...(range.start === undefined ? {} : { gte: range.start }),
    ...(range.end === undefined ? {} : { lt: range.end }),
    highWaterMarkBytes: levelDbIteratorBytesMax,
  });
  try {
    let count = 0;
    for (;;) {
      const keys = await iterator.nextv(keyCountChunkKeysMax);
      if (keys.length === 0) return count;
      count += keys.length;
    }
  } finally {
    await iterator.close();
  }
}

/** LevelDB reports the real reason (a held lock, a corrupt file) in the cause of its open error. */
function describeOpenError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause: unknown = error.cause;
  if (cause instanceof Error) {
    const code: unknown = (cause as { code?: unknown }).code;
    return typeof code === 'string' ? `${cause.message} (${code})` : cause.message;
  }
  return error.message;
}
