import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  StartupError,
  assertSlot,
  createDirectoryDurably,
  nodeFileSystem,
  replaceFileDurably,
  type FileSystem,
  type Logger,
} from '@impulse/common';
import type { ConfState, Entry as LogEntry, SnapshotMetadata } from '../raft/index.js';
import {
  openEngine,
  type BatchOperation,
  type Engine,
  type EngineName,
  type EngineSnapshot,
  type Entry,
} from '../storage/index.js';
import { decodeCommand, isConsistencyCheckCommand } from './command.js';
import { hashRecords, slotIndexMismatchHash, type ConsistencyHash } from './consistency-hash.js';
import {
  appliedKey,
  batchKey,
  batchRange,
  batchRecordRange,
  chainBaseKey,
  confStateKey,
  dataKey,
  dataKeyOfSlotIndexKey,
  dataRange,
  decodeUint64,
  encodeUint64,
  firstIndexOfBatchKey,
  formatKey,
  formatVersion,
  formatVersionWithoutSlotIndex,
  keyAfter,
  membersKey,
  removedMembersKey,
  requestIdOfOrderKey,
  requestOrderKey,
  requestOrderRange,
  slotIndexKey,
  slotIndexRange,
  slotIndexRangeOf,
  userKeyOfSlotIndexKey,
} from './keyspace.js';
import { loadMemoryImage, memoryImageFileName, writeMemoryImage } from './memory-image.js';
import { isSealedRecordOf, openRecord, openRecords, sealRecord, sealedPut } from './sealed-record.js';
import {
  SlotIndexFingerprint,
  rebuildSlotIndex,
  receivedRecordOperations,
  slotIndexOperationOf,
} from './slot-index.js';
import { SnapshotChunkError, decodeSnapshotChunk, encodeSnapshotChunks } from './snapshot-codec.js';
import { StorageFault, describeEngineKey, readFaultOf, writeFaultOf } from './storage-fault.js';

/**
 * How many request ids the state machine remembers. A constant, not a setting: every replica must
 * make the same decision for the same entry, so every replica must remember the same ids. At
 * 10,000 writes per second this covers 20 s of retries, far beyond the gateway's retry deadline.
 */
export const requestIdRetentionCount = 200_000;

/**
 * The most entries one `scanSlot` call answers: each is a point read of its value, and a caller
 * (slot migration) pages through a slot with `afterKey`, so a page stays small in time and memory.
 */
export const slotScanEntriesMax = 1000;

/**
 * The most keys one batch of `deleteSlot` deletes (two records each, the data and its index
 * record): bounded so that deleting a large slot never makes one huge engine batch.
 */
export const slotDeleteBatchKeysMax = 10_000;

export interface StateMachineOptions {
  /** Root directory of the state machine (the engine lives in a generation folder inside it). */
  readonly directory: string;
  readonly engine: EngineName;
  readonly logger: Logger;
  /**
   * The configuration a brand-new group starts with; written at index 0 when the state machine is
   * created, so that a fresh replica knows its peers before any entry is applied.
   */
  readonly initialConfState?: ConfState;
  /**
   * How many request ids to remember; `requestIdRetentionCount` unless a test needs a small
   * number. Every replica of a group must use the same value, so it is not a flag.
   */
  readonly requestIdRetention?: number;
  /**
   * For fault-injection tests only: wraps every engine the state machine opens, so that a test can
   * put a double around the real engine (one that alters what a read returns, or drops a batch).
   */
  readonly wrapEngine?: (engine: Engine) => Engine;
  /**
   * Where the generations, their pointer and the memory engine's image live. Default: the real
   * file system; the simulator's is in memory. (LevelDB keeps its own files: the simulator runs the
   * memory engine.)
   */
  readonly fileSystem?: FileSystem;
  /**
   * LevelDB only: the generations live under key prefixes of the node's engine, shared by the
   * node's groups (`GroupSpace`, decision 0019), rather than in LevelDB folders of their own. The
   * pointer to the live generation is then the file `GENERATION`.
   */
  readonly generationSpace?: GenerationSpace;
}

/**
 * Where a state machine's generations live when they share its node's engine: one key prefix
 * each (`GroupSpace` of `storage/node-engine.ts`).
 */
export interface GenerationSpace {
  /** The engine of one generation. */
  engineOf(generation: number): Engine;
  /** The generations that hold keys, in ascending order. */
  generations(): Promise<number[]>;
  /** Deletes a generation's keys. */
  remove(generation: number): Promise<void>;
  /** Deletes every generation's keys, durably: no power cut brings them back. */
  removeAll(): Promise<void>;
  /** Where the generations' keys are (a folder), for fault reports and logs. */
  location(): string;
}

/** What happened to one applied entry. */
/**
 * The member directory as the replica stores it with a membership change (opaque here): the
 * members and their addresses, and the Raft ids removed from the group, in two records.
 */
export interface MemberRecords {
  readonly members: Buffer;
  readonly removed: Buffer;
}

export interface AppliedEntry {
  readonly index: number;
  /** The request id the entry carried, if any. */
  readonly requestId: Buffer | undefined;
  /**
   * - `applied`: the command changed the state.
   * - `duplicate`: the request id was applied before; nothing changed.
   * - `noop`: an empty entry (a new leader's) or a membership change.
   * - `invalid`: bytes that are not a command; every replica skips them alike.
   * - `consistency-check`: a consistency check; the state at this index is being hashed.
   * - `consistency-verdict`: the hash a majority found at a check; each replica compares its own.
   */
  readonly outcome:
    'applied' | 'duplicate' | 'noop' | 'invalid' | 'consistency-check' | 'consistency-verdict';
}

/** User keys `k` with `start <= k < end` in byte order, as UTF-8 bytes; an absent bound is no bound. */
export interface UserKeyRange {
  readonly start: Uint8Array | undefined;
  readonly end: Uint8Array | undefined;
}

export const emptyConfState: ConfState = Object.freeze({
  voters: [],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

const generationPointerFile = 'CURRENT';
/** The live generation's number, when the generations are prefixes of the node engine. */
const spacePointerFile = 'GENERATION';
const generationPrefix = 'sm-';

/**
 * The replicated key-value state machine of a replica: applies committed entries to the storage
 * engine in atomic batches that also record the applied index (so a restart resumes exactly where
 * it stopped, never applying an entry twice nor skipping one), deduplicates retried writes by
 * request id, and takes and installs whole-state snapshots.
 *
 * Nothing it reads from its engine is trusted unchecked. Every value is stored sealed with a
 * checksum over its key and payload (`sealed-record.ts`) and verified on every read: `get`, scans,
 * the meta records at open, the snapshot it streams, the snapshot it receives, the memory image.
 * On LevelDB every applied batch also writes a batch record (its first and last index), and open
 * proves that these records form an unbroken chain from the chain base to the applied index:
 * LevelDB drops a damaged block of its write-ahead log on open without a word, so a batch can
 * vanish while a later one, with a higher applied index, survives. A failed check, an undecodable
 * record or a failed engine read is a `StorageFault`: the state machine then refuses every further
 * read and write with it (the fault is sticky), and its replica stops serving (see `Replica`).
 *
 * The engine lives in a generation folder (`sm-000001`) named by the file `CURRENT`, or, on a node,
 * under a generation's key prefix of the node's engine named by the file `GENERATION` (decision
 * 0019). Installing a snapshot builds the next generation beside the live one, flushes it, then
 * switches the pointer with an atomic rename: a crash at any point leaves either the old state or
 * the new one, never a mix.
 *
 * On the memory engine, which keeps nothing across a restart, each point where the state is made
 * durable (founding, `sync()` before the log is compacted, an installed snapshot) writes the whole
 * state as an image beside it (`memory-image.ts`), which `open` loads: the replica then replays
 * the log from the image's applied index, as a LevelDB replica does from its own. The memory
 * engine writes no batch records: it has no write-ahead log to lose a batch from.
 */
export class ReplicaStateMachine {
  #engine: Engine;
  #generation: number;
  /** The highest generation handed to an install so far (each install gets its own directory). */
  #generationReserved = 0;
  #appliedIndex: number;
  #appliedTerm: number;
  #confState: ConfState;
  #membersRecord: Buffer | undefined;
  #removedMembersRecord: Buffer | undefined;
  /** Request id (latin1 string) → index that applied it; insertion order is index order. */
  #requests = new Map<string, number>();
  /** Memory engine: the image writes, one after the other (see `writeImage`). */
  #imageWrites: Promise<void> = Promise.resolve();
  /** Memory engine: the applied index of the newest durable image; -1 before the first. */
  #imageIndex = -1;
  /** The first storage fault seen; from then on every read and write is refused with it. */
  #fault: StorageFault | undefined;
  /**
   * User keys (the `d` range) in the live engine: counted at open and at each installed snapshot,
   * then kept by `applyBatch` (see `userKeyCount`).
   */
  #userKeyCount = 0;
  /** The newest consistency hash computed (the highest index), if any since the process started. */
  #consistencyHash: ConsistencyHash | undefined;
  /** Consistency hashes being computed in the background, each from its own engine snapshot. */
  readonly #consistencyHashing = new Set<Promise<void>>();
  /**
   * Whether an apply batch, or a `deleteSlot`, is between its reads and its write: the two must
   * never interleave, or the user key count would be computed against a state that changed.
   */
  #applyingBatch = false;
  #deletingSlot = false;
  /** Generations being deleted from the node engine in the background (see `removeInBackground`). */
  readonly #removals = new Set<Promise<void>>();

  private constructor(
    private readonly options: StateMachineOptions,
    engine: Engine,
    generation: number,
  ) {
    this.#engine = engine;
    this.#generation = generation;
    this.#appliedIndex = 0;
    this.#appliedTerm = 0;
    this.#confState = emptyConfState;
    this.#membersRecord = undefined;
    this.#removedMembersRecord = undefined;
  }

  /**
   * Opens the state machine in `options.directory`. A storage fault found while opening (a record
   * that fails its checksum, a gap in the batch chain) does not reject: the state machine opens
   * faulted (`fault`), so that its replica can report it and keep its Raft log serving the group.
   * A data directory of another format is refused with `DATA_DIRECTORY_FORMAT_UNSUPPORTED`.
   */
  static async open(options: StateMachineOptions): Promise<ReplicaStateMachine> {
    const fs = fileSystemOf(options);
    await createDirectoryDurably(options.directory, fs);
    // Generations are folders of LevelDB's, or prefixes of the node's engine; the memory engine's
    // lives in memory and in its image. A pointer to a generation that does not exist would
    // silently start empty: the state is lost, and the state machine opens on an empty engine,
    // faulted, to be rebuilt from a leader.
    const { generation, missing } =
      options.engine === 'memory'
        ? { generation: 1, missing: false }
        : spaceOf(options) === undefined
          ? await adoptFolderGeneration(options.directory, options.logger, fs)
          : await adoptSpaceGeneration(options, spaceOf(options) as GenerationSpace, fs);
    const engine = await openGeneration(options, generation);
    let imageLoaded = false;
    if (options.engine === 'memory') {
      try {
        imageLoaded = await loadMemoryImage(options.directory, engine, fs);
      } catch (error) {
        await engine.close();
        throw error;
      }
    }
    const stateMachine = new ReplicaStateMachine(options, engine, generation);
    if (missing) {
      stateMachine.#fault = new StorageFault(
        spaceOf(options) === undefined
          ? `the engine folder ${generationName(generation)} that ${generationPointerFile} names is missing: the state is lost`
          : `generation ${generation}, which ${spacePointerFile} names, has no keys in the node's engine (${stateMachine.#folder}): the state is lost`,
        { kind: 'lost', file: stateMachine.#folder },
      );
      return stateMachine;
    }
    try {
      const storedFormat = await stateMachine.checkFormat();
      // The image's frames are checksummed as a whole; each record is verified here as well, so
      // that the memory engine never holds a record it would refuse later.
      if (imageLoaded) await stateMachine.verifyEveryRecord();
      await stateMachine.loadMeta();
      await stateMachine.verifyBatchChain();
      // Converted only once the state is proven whole: an index built from a state missing a
      // batch would be as wrong as the state.
      if (storedFormat === formatVersionWithoutSlotIndex) await stateMachine.upgradeFromFormat2();
      stateMachine.#userKeyCount = await stateMachine.countUserKeysIn(engine);
    } catch (error) {
      if (!(error instanceof StorageFault)) {
        await engine.close();
        throw error;
      }
      stateMachine.#fault = error;
      return stateMachine;
    }
    if (imageLoaded) stateMachine.#imageIndex = stateMachine.#appliedIndex;
    if (stateMachine.#appliedIndex === 0 && options.initialConfState !== undefined) {
      const existing = await stateMachine.readRecord(engine, confStateKey);
      if (existing === undefined) {
        await engine.put(confStateKey, sealRecord(confStateKey, encodeConfState(options.initialConfState)));
        stateMachine.#confState = options.initialConfState;
      }
    }
    return stateMachine;
  }

  /** The live engine. It changes when a snapshot is installed: never keep it across awaits. */
  get engine(): Engine {
    return this.#engine;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  get appliedTerm(): number {
    return this.#appliedTerm;
  }

  get confState(): ConfState {
    return this.#confState;
  }

  /** The member directory as last written by a membership change (opaque here), if any. */
  get membersRecord(): Buffer | undefined {
    return this.#membersRecord;
  }

  /** The removed Raft ids as last written by a membership change (opaque here), if any. */
  get removedMembersRecord(): Buffer | undefined {
    return this.#removedMembersRecord;
  }

  /** The storage fault that stopped this state machine, if one did. */
  get fault(): StorageFault | undefined {
    return this.#fault;
  }

  /**
   * The newest consistency hash this state machine computed: the state exactly as of the index of
   * the newest consistency-check entry applied since the process started, once its background
   * hashing is done.
   */
  get consistencyHash(): ConsistencyHash | undefined {
    return this.#consistencyHash;
  }

  /** Where the live engine keeps its files, for fault reports. */
  get #folder(): string {
    if (this.options.engine === 'memory') return join(this.options.directory, memoryImageFileName);
    const space = spaceOf(this.options);
    return space === undefined
      ? join(this.options.directory, generationName(this.#generation))
      : space.location();
  }

  /**
   * Writes the founding state of a brand-new group: applied index and term 1 and the founding
   * configuration, as if a snapshot at index 1 had been installed (see `Replica.start`).
   */
  async bootstrap(confState: ConfState): Promise<void> {
    this.throwIfFaulted();
    if (this.#appliedIndex !== 0)
      throw new Error('state machine: bootstrap of a state machine that applied entries');
    const operations: BatchOperation[] = [
      sealedPut(appliedKey, Buffer.concat([encodeUint64(1), encodeUint64(1)])),
      sealedPut(confStateKey, encodeConfState(confState)),
    ];
    if (this.keepsBatchChain) operations.push(sealedPut(chainBaseKey, encodeUint64(1)));
    await this.#engine.batch(operations);
    await this.#engine.sync();
    this.#appliedIndex = 1;
    this.#appliedTerm = 1;
    this.#confState = confState;
    await this.persistImage();
  }

  /**
   * Memory engine: writes `snapshot` (of this state machine) as its image, after the image writes
   * before it, and resolves once it is durable. An image older than the newest durable one is
   * skipped, so that an image written in the background never replaces a newer one (an installed
   * snapshot's). The caller closes the snapshot.
   */
  writeImage(snapshot: StateMachineSnapshot): Promise<void> {
    const write = this.#imageWrites.then(async () => {
      if (snapshot.metadata.index <= this.#imageIndex) return;
      await writeMemoryImage(this.options.directory, snapshot.chunks(), fileSystemOf(this.options));
      this.#imageIndex = snapshot.metadata.index;
    });
    this.#imageWrites = write.catch(() => undefined);
    return this.guard(write);
  }

  /** Memory engine: makes the live state durable as the image; nothing to do on LevelDB. */
  private async persistImage(): Promise<void> {
    if (this.options.engine !== 'memory') return;
    const snapshot = await this.openSnapshot();
    try {
      await this.writeImage(snapshot);
    } finally {
      await snapshot.close();
    }
  }

  /**
   * The user keys this state machine holds (keys written by a put and not deleted since), without
   * a scan: counted once when it opens and when a snapshot is installed, and kept up to date by
   * every applied batch. Request ids, batch records and meta records are not user keys.
   * `undefined` once faulted: the count of a damaged state means nothing.
   */
  get userKeyCount(): number | undefined {
    return this.#fault === undefined ? this.#userKeyCount : undefined;
  }

  /** Counts the user keys of `engine` (O(n) in keys, no values read); a failed read is a fault. */
  private async countUserKeysIn(engine: Engine): Promise<number> {
    try {
      return await engine.countKeys(dataRange);
    } catch (error) {
      throw readFaultOf(error, { range: dataRange }, this.#folder);
    }
  }

  /** Reads a user key from the live engine, verified against its checksum. */
  async get(key: string): Promise<Buffer | undefined> {
    this.throwIfFaulted();
    return this.guard(this.readRecord(this.#engine, dataKey(key)));
  }

  /**
   * The user keys in `range`, in byte order, with their values, at most `limit` of them, from one
   * consistent view of the live engine taken at the first `next()`. Each entry's key is the user
   * key's UTF-8 bytes (without the keyspace prefix); each value is verified against its checksum.
   */
  async *scan(range: UserKeyRange, limit: number): AsyncGenerator<Entry, void, undefined> {
    this.throwIfFaulted();
    const start = range.start === undefined ? dataRange.start : Buffer.concat([dataRange.start, range.start]);
    const end = range.end === undefined ? dataRange.end : Buffer.concat([dataRange.start, range.end]);
    try {
      for await (const entry of this.verifiedEntries(this.#engine, { start, end, limit })) {
        yield { key: entry.key.subarray(dataRange.start.byteLength), value: entry.value };
      }
    } catch (error) {
      throw this.noteFault(error);
    }
  }

  /**
   * The keys of slot `slot` in byte order, with their values: the first `limit` (at most
   * `slotScanEntriesMax`) after `afterKey` (its UTF-8 bytes; from the slot's first key when
   * absent), from one consistent view of the live engine. Each entry's key is the user key's UTF-8
   * bytes. For slot migration, which pages through a slot by passing the last key it got. Reads the
   * slot index (`s`), then each key's value (`d`); an index record without its value is a storage
   * fault of kind `index-mismatch`.
   */
  async scanSlot(
    slot: number,
    options: { readonly afterKey?: Uint8Array; readonly limit: number },
  ): Promise<Entry[]> {
    assertSlot(slot);
    const { afterKey, limit } = options;
    assert.ok(
      Number.isSafeInteger(limit) && limit >= 1 && limit <= slotScanEntriesMax,
      'scanSlot: limit out of range',
    );
    this.throwIfFaulted();
    const range = slotIndexRangeOf(slot);
    const start = afterKey === undefined ? range.start : keyAfter(slotIndexKey(slot, afterKey));
    const snapshot = await this.guard(
      this.#engine.snapshot().catch((error: unknown) => {
        throw readFaultOf(error, {}, this.#folder);
      }),
    );
    try {
      const entries: Entry[] = [];
      for await (const { key: indexKey } of this.verifiedEntries(snapshot, {
        start,
        end: range.end,
        limit,
      })) {
        const dataKey = dataKeyOfSlotIndexKey(indexKey);
        const value = await this.readRecord(snapshot, dataKey);
        if (value === undefined) {
          throw new StorageFault(`the slot index names ${describeEngineKey(dataKey)}, which does not exist`, {
            kind: 'index-mismatch',
            key: describeEngineKey(indexKey),
            file: this.#folder,
          });
        }
        entries.push({ key: Buffer.from(userKeyOfSlotIndexKey(indexKey)), value });
      }
      return entries;
    } catch (error) {
      throw this.noteFault(error);
    } finally {
      await snapshot.close();
    }
  }

  /**
   * How many keys slot `slot` holds: its index records, counted from one consistent view. It
   * reads every key of the slot (not the values): O(keys in the slot), about 1/16384 of the
   * keyspace on average, so cheap for one slot, and never for every request.
   */
  async slotKeyCount(slot: number): Promise<number> {
    assertSlot(slot);
    this.throwIfFaulted();
    const range = slotIndexRangeOf(slot);
    try {
      return await this.#engine.countKeys(range);
    } catch (error) {
      throw this.noteFault(readFaultOf(error, { range }, this.#folder));
    }
  }

  /**
   * Deletes every key of slot `slot` (its data and index records), in batches of at most
   * `batchKeysMax` keys (at most `slotDeleteBatchKeysMax`), each atomic: a crash between two
   * leaves the slot's remaining keys whole, each with its index record. Answers how many user
   * keys it deleted.
   *
   * A LOCAL operation, not replicated: it changes this replica only, moves no applied index, and
   * is not durable until the next `sync()`. Slot migration (the next step of issue 12) will drive
   * it through the Raft log, so that every replica deletes the slot at the same index; until then
   * it is for tests. The caller must not apply entries while it runs (asserted).
   */
  async deleteSlot(slot: number, options: { readonly batchKeysMax: number }): Promise<number> {
    assertSlot(slot);
    const { batchKeysMax } = options;
    assert.ok(
      Number.isSafeInteger(batchKeysMax) && batchKeysMax >= 1 && batchKeysMax <= slotDeleteBatchKeysMax,
      'deleteSlot: batchKeysMax out of range',
    );
    assert.ok(!this.#deletingSlot, 'deleteSlot: another deleteSlot is running');
    this.throwIfFaulted();
    const engine = this.#engine;
    const range = slotIndexRangeOf(slot);
    let deleted = 0;
    // Each batch goes on after the last key of the one before, not over the tombstones it left.
    let start = range.start;
    this.#deletingSlot = true;
    try {
      for (;;) {
        assert.ok(!this.#applyingBatch, 'deleteSlot: entries are being applied meanwhile');
        assert.ok(this.#engine === engine, 'deleteSlot: a snapshot was installed meanwhile');
        const indexKeys: Buffer[] = [];
        for await (const { key } of this.verifiedEntries(engine, {
          start,
          end: range.end,
          limit: batchKeysMax,
        }))
          indexKeys.push(key);
        const last = indexKeys.at(-1);
        if (last === undefined) return deleted;
        start = keyAfter(last);
        const dataKeys = indexKeys.map((indexKey) => dataKeyOfSlotIndexKey(indexKey));
        let present: boolean[];
        try {
          present = await engine.hasMany(dataKeys);
        } catch (error) {
          throw readFaultOf(error, { range }, this.#folder);
        }
        const operations: BatchOperation[] = [];
        for (const dataKey of dataKeys)
          operations.push({ type: 'delete', key: dataKey }, slotIndexOperationOf(dataKey, false));
        try {
          await engine.batch(operations);
        } catch (error) {
          throw writeFaultOf(error, this.#folder);
        }
        // An index record without its data (which `scanSlot` would call a fault) is deleted all
        // the same: the slot ends empty either way, and only the keys that were there are counted.
        const keys = present.filter((each) => each).length;
        this.#userKeyCount -= keys;
        deleted += keys;
      }
    } catch (error) {
      throw this.noteFault(error);
    } finally {
      this.#deletingSlot = false;
    }
  }

  /**
   * Marks this state machine faulted with `fault` (the first fault stays): for what its replica
   * finds about it from outside, such as a state behind the Raft log's snapshot.
   */
  declareFault(fault: StorageFault): void {
    this.#fault ??= fault;
  }

  /**
   * The consistency hash of the state at `index`, once any hashing in flight is done; `undefined`
   * when this state machine did not hash that index (it started later, installed a snapshot past
   * it, or has since hashed a later one).
   */
  async consistencyHashAt(index: number): Promise<ConsistencyHash | undefined> {
    await Promise.all(this.#consistencyHashing);
    const result = this.#consistencyHash;
    return result?.index === index ? result : undefined;
  }

  /** Refuses with the fault once there is one: a damaged state machine answers nothing. */
  private throwIfFaulted(): void {
    if (this.#fault !== undefined) throw this.#fault;
  }

  /** Remembers the first storage fault; answers the error to throw. */
  private noteFault(error: unknown): unknown {
    if (error instanceof StorageFault) this.#fault ??= error;
    return error;
  }

  private async guard<T>(operation: Promise<T>): Promise<T> {
    try {
      return await operation;
    } catch (error) {
      throw this.noteFault(error);
    }
  }

  private get keepsBatchChain(): boolean {
    return this.options.engine !== 'memory';
  }

  /** One record of `source`, verified; a failed read is a storage fault. */
  private async readRecord(source: Engine | EngineSnapshot, key: Buffer): Promise<Buffer | undefined> {
    let stored: Buffer | undefined;
    try {
      stored = await source.get(key);
    } catch (error) {
      throw readFaultOf(error, { key }, this.#folder);
    }
    return stored === undefined ? undefined : openRecord(key, stored, this.#folder);
  }

  /** The records of a range of `source`, each verified, as payloads. */
  private verifiedEntries(
    source: Engine | EngineSnapshot,
    range: { start?: Buffer; end?: Buffer; limit?: number },
  ): AsyncGenerator<Entry, void, undefined> {
    return openRecords(source, range, this.#folder);
  }

  /**
   * Answers the format of the engine: the current one, or format 2 (no slot index), which `open`
   * converts (`upgradeFromFormat2`). Refuses any other: a newer format is one this version cannot
   * know, and reading the unsealed records of format 1 as sealed ones would call every one of
   * them damaged. An empty engine (a new replica, a new generation) is given the current format.
   */
  private async checkFormat(): Promise<number> {
    const engine = this.#engine;
    const stored = await this.readRecord(engine, formatKey).catch((error: unknown) => {
      // An unsealed format record is no format this version knows.
      if (error instanceof StorageFault && error.kind !== 'read-failed') return Buffer.alloc(0);
      throw error;
    });
    if (stored !== undefined) {
      const version = stored.byteLength === 4 ? stored.readUInt32BE(0) : undefined;
      if (version === formatVersion || version === formatVersionWithoutSlotIndex) return version;
      throw new StartupError(
        'DATA_DIRECTORY_FORMAT_UNSUPPORTED',
        `state machine: ${this.#folder} is in format ${version ?? 'unknown'}; this version reads format ${formatVersion} and converts format ${formatVersionWithoutSlotIndex}, and does not convert this one: start this replica on an empty data directory and add it to its group again (docs/replication.md)`,
      );
    }
    let anyRecord = false;
    for await (const _entry of engine.iterate({ start: engineOwnKeysEnd, limit: 1 })) anyRecord = true;
    if (anyRecord) {
      const applied = await engine.get(appliedKey).catch(() => undefined);
      const appliedText = applied?.byteLength === 16 ? `, applied index ${decodeUint64(applied, 0)}` : '';
      throw new StartupError(
        'DATA_DIRECTORY_FORMAT_UNSUPPORTED',
        `state machine: ${this.#folder} was written by an older Impulse (format 1: values without checksums${appliedText}); this version reads format ${formatVersion} and converts format ${formatVersionWithoutSlotIndex}, and does not convert format 1: start this replica on an empty data directory and add it to its group again (docs/replication.md)`,
      );
    }
    await engine.put(formatKey, sealRecord(formatKey, encodeFormat(formatVersion)));
    return formatVersion;
  }

  /**
   * Converts a state of format 2 to the current format: builds the slot index from the data
   * records (`rebuildSlotIndex`, in bounded batches, proven complete), makes it durable, and only
   * then writes the new format. A crash before the format record leaves format 2 with part of an
   * index, which the next open deletes and builds again; so the format record says "the index is
   * whole" and nothing else needs to. The flush, not a sync, is what makes that true on LevelDB:
   * its write-ahead log may lose a damaged block on open while a later write survives, and the
   * format record must never survive an index batch that was lost.
   */
  private async upgradeFromFormat2(): Promise<void> {
    const engine = this.#engine;
    this.options.logger.info(
      { from: formatVersionWithoutSlotIndex, to: formatVersion, appliedIndex: this.#appliedIndex },
      'state machine: converting the format (building the slot index)',
    );
    const keys = await rebuildSlotIndex(engine, this.#folder);
    try {
      await engine.flush();
      await engine.put(formatKey, sealRecord(formatKey, encodeFormat(formatVersion)));
    } catch (error) {
      throw writeFaultOf(error, this.#folder);
    }
    this.options.logger.info(
      { from: formatVersionWithoutSlotIndex, to: formatVersion, keys },
      'state machine: format converted',
    );
  }

  /** Verifies the checksum of every record of the live engine (the memory engine after its image). */
  private async verifyEveryRecord(): Promise<void> {
    for await (const _entry of this.verifiedEntries(this.#engine, { start: engineOwnKeysEnd })) {
      // Reading is verifying.
    }
  }

  /**
   * Proves that the engine holds the effect of every batch up to the applied index: the batch
   * records, from the chain base on, must follow each other without a hole and end at the applied
   * index. A batch lost by the engine (LevelDB dropping a damaged block of its write-ahead log)
   * leaves a hole, since every batch writes its record together with its data. Records at or
   * below the base are left over from a prune that did not survive, and are ignored.
   */
  private async verifyBatchChain(): Promise<void> {
    if (!this.keepsBatchChain) return;
    const engine = this.#engine;
    const base = await this.readRecord(engine, chainBaseKey);
    let expectedFirst = (base === undefined ? 0 : decodeStoredUint64(base, chainBaseKey, this.#folder)) + 1;
    for await (const { key, value } of this.verifiedEntries(engine, batchRecordRange)) {
      const first = firstIndexOfBatchKey(key);
      const last = decodeStoredUint64(value, key, this.#folder);
      if (last < expectedFirst) continue;
      if (first > expectedFirst) throw this.gap(expectedFirst, first);
      expectedFirst = last + 1;
    }
    if (expectedFirst - 1 < this.#appliedIndex) throw this.gap(expectedFirst, this.#appliedIndex + 1);
    if (expectedFirst - 1 > this.#appliedIndex) {
      throw new StorageFault(
        `the batch records run to index ${expectedFirst - 1}, past the applied index ${this.#appliedIndex}`,
        { kind: 'gap', key: describeEngineKey(appliedKey), file: this.#folder },
      );
    }
  }

  private gap(firstMissing: number, firstFound: number): StorageFault {
    return new StorageFault(
      `the engine lacks the batches of indexes ${firstMissing} to ${firstFound - 1} (applied index ${this.#appliedIndex}): a batch was lost while a later one survived`,
      {
        kind: 'gap',
        keyRange: {
          start: describeEngineKey(batchKey(firstMissing)),
          end: describeEngineKey(batchKey(firstFound)),
        },
        file: this.#folder,
      },
    );
  }

  private async loadMeta(): Promise<void> {
    const engine = this.#engine;
    const folder = this.#folder;
    const applied = await this.readRecord(engine, appliedKey);
    if (applied !== undefined && applied.byteLength !== 16) throw undecodable(appliedKey, folder);
    this.#appliedIndex = applied === undefined ? 0 : decodeUint64(applied, 0);
    this.#appliedTerm = applied === undefined ? 0 : decodeUint64(applied, 8);
    const confState = await this.readRecord(engine, confStateKey);
    this.#confState = confState === undefined ? emptyConfState : decodeStoredConfState(confState, folder);
    this.#membersRecord = await this.readRecord(engine, membersKey);
    this.#removedMembersRecord = await this.readRecord(engine, removedMembersKey);
    this.#requests = new Map();
    for await (const { key } of this.verifiedEntries(engine, requestOrderRange)) {
      this.#requests.set(requestIdOfOrderKey(key).toString('latin1'), decodeUint64(key, 1));
    }
  }

  /**
   * Applies committed entries, in order, in ONE atomic engine batch that also stores the new
   * applied index (and the configuration when a membership change is among them) and, on LevelDB,
   * the batch record of the chain. `confStates` holds the configuration that results from each
   * membership-change entry, by index.
   *
   * A consistency-check entry ends a batch: the entries up to it are applied, an engine snapshot
   * is taken before anything after it is, and the state in that snapshot (exactly the state at the
   * check's index) is hashed in the background while the rest of the entries apply. The member
   * directory, written for the entries as a whole, goes with the last batch; a restart between two
   * batches replays the rest of the entries from the log, membership changes included.
   */
  async apply(
    entries: readonly LogEntry[],
    confStates: ReadonlyMap<number, ConfState>,
    memberRecords?: MemberRecords,
  ): Promise<AppliedEntry[]> {
    const results: AppliedEntry[] = [];
    const lastChange = entries.findLastIndex((entry) => entry.type !== 'normal');
    let start = 0;
    for (let position = 0; position < entries.length; position++) {
      const entry = entries[position] as LogEntry;
      if (entry.type !== 'normal' || !isConsistencyCheckCommand(entry.data)) continue;
      const records = lastChange >= start && lastChange <= position ? memberRecords : undefined;
      results.push(...(await this.applyBatch(entries.slice(start, position + 1), confStates, records)));
      start = position + 1;
      await this.startConsistencyHash(entry.index);
    }
    if (start < entries.length) {
      const records = lastChange >= start ? memberRecords : undefined;
      results.push(...(await this.applyBatch(entries.slice(start), confStates, records)));
    }
    return results;
  }

  /**
   * Takes an engine snapshot of the state just applied (at `index`) and hashes it in the
   * background: the user data and the request ids (`consistency-hash.ts`). A record that fails
   * its checksum while being hashed is a storage fault, as on any read.
   */
  private async startConsistencyHash(index: number): Promise<void> {
    if (this.#appliedIndex !== index) throw new Error('state machine: consistency hash off its index');
    const snapshot = await this.guard(
      this.#engine.snapshot().catch((error: unknown) => {
        throw readFaultOf(error, {}, this.#folder);
      }),
    );
    const verifiedEntries = this.verifiedEntries.bind(this);
    // The index the data calls for, gathered as the data is hashed, against the index there is.
    const indexCalledFor = new SlotIndexFingerprint();
    const indexFound = new SlotIndexFingerprint();
    async function* hashedRecords(): AsyncGenerator<Entry> {
      for await (const entry of verifiedEntries(snapshot, dataRange)) {
        indexCalledFor.addDataKey(entry.key);
        yield entry;
      }
      yield* verifiedEntries(snapshot, requestOrderRange);
    }
    const hashing = (async () => {
      try {
        const hashed = await hashRecords(hashedRecords());
        for await (const { key } of verifiedEntries(snapshot, slotIndexRange)) indexFound.addIndexKey(key);
        const keys = hashed.keys;
        let hash = hashed.hash;
        if (!indexFound.equals(indexCalledFor)) {
          hash = slotIndexMismatchHash(hash);
          this.options.logger.error(
            { index, indexRecords: indexFound.count, keys },
            'state machine: the slot index does not match the data; reporting a hash no sound replica reports',
          );
        }
        if (index > (this.#consistencyHash?.index ?? 0)) this.#consistencyHash = { index, hash, keys };
        this.options.logger.info({ index, hash, keys }, 'state machine: consistency hash computed');
      } catch (error) {
        this.noteFault(error);
        this.options.logger.error({ index, err: error }, 'state machine: consistency hash failed');
      } finally {
        await snapshot.close().catch(() => undefined);
      }
    })();
    this.#consistencyHashing.add(hashing);
    void hashing.then(() => this.#consistencyHashing.delete(hashing));
  }

  private async applyBatch(
    entries: readonly LogEntry[],
    confStates: ReadonlyMap<number, ConfState>,
    memberRecords: MemberRecords | undefined,
  ): Promise<AppliedEntry[]> {
    this.throwIfFaulted();
    const results: AppliedEntry[] = [];
    if (entries.length === 0) return results;
    const first = entries[0] as LogEntry;
    if (first.index !== this.#appliedIndex + 1) {
      throw new Error(
        `state machine: entry ${first.index} applied after ${this.#appliedIndex} (a gap or a repeat)`,
      );
    }
    const operations: BatchOperation[] = [];
    const requests = this.#requests;
    const added: [string, number][] = [];
    /** The user keys this batch writes, in order: whether each write puts (or deletes) its key. */
    const userWrites: { readonly key: Buffer; readonly put: boolean }[] = [];
    let confState: ConfState | undefined;
    let previousIndex = this.#appliedIndex;
    for (const entry of entries) {
      if (entry.index !== previousIndex + 1)
        throw new Error(`state machine: entries not contiguous at ${entry.index}`);
      previousIndex = entry.index;
      if (entry.type !== 'normal') {
        confState = confStates.get(entry.index) ?? confState;
        results.push({ index: entry.index, requestId: undefined, outcome: 'noop' });
        continue;
      }
      if (entry.data.byteLength === 0) {
        results.push({ index: entry.index, requestId: undefined, outcome: 'noop' });
        continue;
      }
      const command = decodeCommand(entry.data);
      if (command === undefined) {
        this.options.logger.error({ index: entry.index }, 'state machine: entry is not a command; skipped');
        results.push({ index: entry.index, requestId: undefined, outcome: 'invalid' });
        continue;
      }
      const requestId = Buffer.from(command.requestId);
      if (requestId.length > 0) {
        const idKey = requestId.toString('latin1');
        if (requests.has(idKey)) {
          results.push({ index: entry.index, requestId, outcome: 'duplicate' });
          continue;
        }
        requests.set(idKey, entry.index);
        added.push([idKey, entry.index]);
        operations.push(sealedPut(requestOrderKey(entry.index, requestId), emptyPayload));
      }
      if (command.operation === 'consistency-check' || command.operation === 'consistency-verdict') {
        results.push({
          index: entry.index,
          requestId: requestId.length > 0 ? requestId : undefined,
          outcome: command.operation,
        });
        continue;
      }
      const key = dataKey(command.key);
      if (command.operation === 'put') {
        operations.push(sealedPut(key, command.value));
      } else {
        operations.push({ type: 'delete', key });
      }
      // The slot index record goes in the same atomic batch: no crash can separate the two.
      operations.push(slotIndexOperationOf(key, command.operation === 'put'));
      userWrites.push({ key, put: command.operation === 'put' });
      results.push({
        index: entry.index,
        requestId: requestId.length > 0 ? requestId : undefined,
        outcome: 'applied',
      });
    }
    const retention = this.options.requestIdRetention ?? requestIdRetentionCount;
    // Forget the oldest request ids beyond the retention, in index order: the same ids on every replica.
    const evicted: [string, number][] = [];
    for (const [idKey, index] of requests) {
      if (requests.size - evicted.length <= retention) break;
      evicted.push([idKey, index]);
      operations.push({ type: 'delete', key: requestOrderKey(index, Buffer.from(idKey, 'latin1')) });
    }
    const last = entries[entries.length - 1] as LogEntry;
    operations.push(
      sealedPut(appliedKey, Buffer.concat([encodeUint64(last.index), encodeUint64(last.term)])),
    );
    if (this.keepsBatchChain) operations.push(sealedPut(batchKey(first.index), encodeUint64(last.index)));
    if (confState !== undefined) operations.push(sealedPut(confStateKey, encodeConfState(confState)));
    if (memberRecords !== undefined) {
      operations.push(sealedPut(membersKey, memberRecords.members));
      operations.push(sealedPut(removedMembersKey, memberRecords.removed));
    }
    let userKeysChange: number;
    assert.ok(!this.#deletingSlot, 'state machine: entries applied while deleteSlot runs');
    this.#applyingBatch = true;
    try {
      userKeysChange = await this.userKeysChangeOf(userWrites);
      try {
        await this.#engine.batch(operations);
      } catch (error) {
        throw writeFaultOf(error, this.#folder);
      }
    } catch (error) {
      // Nothing was applied: forget what this batch remembered, so memory matches the engine.
      for (const [idKey] of added) requests.delete(idKey);
      throw this.noteFault(error);
    } finally {
      this.#applyingBatch = false;
    }
    for (const [idKey] of evicted) requests.delete(idKey);
    this.#userKeyCount += userKeysChange;
    this.#appliedIndex = last.index;
    this.#appliedTerm = last.term;
    if (confState !== undefined) this.#confState = confState;
    if (memberRecords !== undefined) {
      this.#membersRecord = memberRecords.members;
      this.#removedMembersRecord = memberRecords.removed;
    }
    return results;
  }

  /**
   * How many user keys `writes` (one batch's, in order) add, less those they remove: a put of an
   * absent key adds one, a delete of a present key removes one, anything else changes nothing.
   * Which keys are present before the batch is asked of the engine in one call (`hasMany`: one
   * seek per distinct key, no value read; the keys a batch writes were mostly written recently,
   * and are in LevelDB's memtable or cache); within the batch, each write decides for the next.
   */
  private async userKeysChangeOf(
    writes: readonly { readonly key: Buffer; readonly put: boolean }[],
  ): Promise<number> {
    if (writes.length === 0) return 0;
    const distinct = new Map<string, Buffer>();
    for (const { key } of writes) distinct.set(key.toString('latin1'), key);
    const keys = [...distinct.values()];
    let found: boolean[];
    try {
      found = await this.#engine.hasMany(keys);
    } catch (error) {
      throw readFaultOf(error, {}, this.#folder);
    }
    const exists = new Map(keys.map((key, position) => [key.toString('latin1'), found[position] === true]));
    let change = 0;
    for (const { key, put } of writes) {
      const name = key.toString('latin1');
      const existed = exists.get(name) === true;
      if (put && !existed) change++;
      else if (!put && existed) change--;
      exists.set(name, put);
    }
    return change;
  }

  /**
   * Makes every applied batch durable, before the Raft log is compacted (when the log stops being
   * able to replay them). Batches are written without fsync: the Raft log is the durable record
   * and a restart re-applies from the applied index.
   *
   * On LevelDB a synced write is not enough: it makes the write-ahead log durable, but a damaged
   * block of that log is dropped on open, and the log could no longer replay what it held. So the
   * engine is flushed: every batch so far moves to fsynced tables. Their batch records have done
   * their work then, and are pruned, with the chain base moved up to the flushed index, which
   * bounds the records to those written since the last `sync()`.
   */
  async sync(): Promise<void> {
    this.throwIfFaulted();
    if (this.options.engine === 'memory') return this.persistImage();
    const flushedIndex = this.#appliedIndex;
    const engine = this.#engine;
    await this.guard(
      (async () => {
        try {
          await engine.flush();
        } catch (error) {
          throw writeFaultOf(error, this.#folder);
        }
        const operations: BatchOperation[] = [];
        for await (const { key, value } of this.verifiedEntries(engine, batchRecordRange)) {
          if (decodeStoredUint64(value, key, this.#folder) > flushedIndex) break;
          operations.push({ type: 'delete', key });
        }
        operations.push(sealedPut(chainBaseKey, encodeUint64(flushedIndex)));
        await engine.batch(operations);
        await engine.sync();
      })(),
    );
  }

  /**
   * A consistent view of the whole state (data, request ids, applied index, configuration) for a
   * follower that is too far behind, with the metadata it corresponds to exactly.
   */
  async openSnapshot(): Promise<StateMachineSnapshot> {
    this.throwIfFaulted();
    const snapshot = await this.guard(
      this.#engine.snapshot().catch((error: unknown) => {
        throw readFaultOf(error, {}, this.#folder);
      }),
    );
    try {
      const applied = await this.readRecord(snapshot, appliedKey);
      const confState = await this.readRecord(snapshot, confStateKey);
      const metadata: SnapshotMetadata = {
        index: applied === undefined ? 0 : decodeUint64(applied, 0),
        term: applied === undefined ? 0 : decodeUint64(applied, 8),
        confState: confState === undefined ? emptyConfState : decodeStoredConfState(confState, this.#folder),
      };
      return new StateMachineSnapshot(snapshot, metadata, (range) => this.storedEntries(snapshot, range));
    } catch (error) {
      await snapshot.close();
      throw this.noteFault(error);
    }
  }

  /**
   * The records of a range of `source` as stored (sealed), each verified first: a snapshot carries
   * the records with their checksums, so that the receiver verifies them too.
   */
  private async *storedEntries(
    source: EngineSnapshot,
    range: { start?: Buffer; end?: Buffer },
  ): AsyncGenerator<Entry, void, undefined> {
    try {
      const iteration = source.iterate(range);
      for (;;) {
        let next: IteratorResult<Entry>;
        try {
          next = await iteration.next();
        } catch (error) {
          throw readFaultOf(error, { range }, this.#folder);
        }
        if (next.done === true) return;
        openRecord(next.value.key, next.value.value, this.#folder);
        yield next.value;
      }
    } catch (error) {
      throw this.noteFault(error);
    }
  }

  /**
   * Starts receiving a snapshot into a new generation, beside the live one. Every install gets a
   * generation of its own: a newer snapshot may start arriving while an older one is still being
   * installed, and the two must never share (or delete) one directory.
   */
  async beginInstall(): Promise<SnapshotInstall> {
    const generation = Math.max(this.#generation, this.#generationReserved) + 1;
    this.#generationReserved = generation;
    const space = spaceOf(this.options);
    if (space === undefined) {
      await fileSystemOf(this.options).rm(join(this.options.directory, generationName(generation)), {
        recursive: true,
        force: true,
      });
    } else {
      await space.remove(generation);
    }
    const engine = await openGeneration(this.options, generation);
    return new SnapshotInstall(engine, generation, this.keepsBatchChain, () => {
      // An abandoned install's keys would otherwise stay until the next start.
      if (space !== undefined) this.removeInBackground(space, generation);
    });
  }

  /**
   * Makes a fully received snapshot the live state, atomically: the new generation is flushed,
   * `CURRENT` (or `GENERATION`) is switched by rename, then the old generation is closed and
   * removed (on a node, in the background). A faulted
   * state machine takes it too: the whole state is replaced, so the fault is gone with it (this is
   * how a faulted replica is rebuilt).
   */
  async install(install: SnapshotInstall): Promise<SnapshotMetadata> {
    if (install.generation <= this.#generation) throw new Error('state machine: stale snapshot install');
    const metadata = await install.finish();
    const space = spaceOf(this.options);
    if (space !== undefined) {
      await writeSpaceGeneration(this.options.directory, install.generation, fileSystemOf(this.options));
    } else if (this.options.engine !== 'memory') {
      await writeGeneration(this.options.directory, install.generation, fileSystemOf(this.options));
    }
    const previous = this.#engine;
    const previousGeneration = this.#generation;
    this.#engine = install.engine;
    this.#generation = install.generation;
    const fault = this.#fault;
    this.#fault = undefined;
    this.#consistencyHash = undefined;
    await this.guard(this.loadMeta());
    this.#userKeyCount = await this.guard(this.countUserKeysIn(install.engine));
    // The image is the memory engine's durable state: written before the log records the snapshot
    // (when this returns), and after any image of the previous engine being written.
    await this.persistImage();
    await previous.close();
    if (space === undefined) {
      await fileSystemOf(this.options).rm(join(this.options.directory, generationName(previousGeneration)), {
        recursive: true,
        force: true,
      });
    } else {
      this.removeInBackground(space, previousGeneration);
    }
    this.options.logger.info(
      {
        index: metadata.index,
        term: metadata.term,
        generation: install.generation,
        ...(fault === undefined ? {} : { replacedFaultKind: fault.kind }),
      },
      'state machine: snapshot installed',
    );
    return metadata;
  }

  async close(): Promise<void> {
    await this.#imageWrites;
    await Promise.all(this.#consistencyHashing);
    await Promise.all(this.#removals);
    await this.#engine.close();
  }

  /**
   * Deletes a generation that is no longer live (replaced by an install, or an install abandoned)
   * from the node engine, in the background: a range deletion reads every key, and the Ready loop
   * must not wait for it. Nothing reads those keys any more (generation numbers only grow), and a
   * deletion that fails, or that a crash cuts short, is done again by the next open, which deletes
   * every generation but the live one; so a failure is logged, not raised: the damage that may
   * have failed it is what the install replaced.
   */
  private removeInBackground(space: GenerationSpace, generation: number): void {
    const removal = space
      .remove(generation)
      .catch((error: unknown) => {
        this.options.logger.warn(
          { generation, err: error },
          'state machine: deleting a generation that is no longer live failed; the next start deletes it',
        );
      })
      .finally(() => this.#removals.delete(removal));
    this.#removals.add(removal);
  }
}

/** A consistent, streamable view of the state at `metadata.index`. Close it when done. */
export class StateMachineSnapshot {
  constructor(
    private readonly snapshot: EngineSnapshot,
    readonly metadata: SnapshotMetadata,
    private readonly storedEntries: (range: { start?: Buffer; end?: Buffer }) => AsyncIterable<Entry>,
  ) {}

  /**
   * The whole state as chunks of whole records (see `snapshot-codec.ts`), each record sealed as
   * stored and verified before it leaves. The batch records stay behind: they are this replica's
   * proof of its own history, and the receiver starts its chain at the snapshot's index. The slot
   * index stays behind too: the receiver derives it from the data records as they arrive
   * (`slot-index.ts`), which costs it one CRC per key, and spares the stream a record per key.
   */
  chunks(): AsyncGenerator<Buffer> {
    const storedEntries = this.storedEntries;
    async function* everyRecordButBatchesAndIndex(): AsyncGenerator<Entry> {
      // Keys below 0x01 are the engine's own (LevelDB's sync marker), not the state machine's.
      yield* storedEntries({ start: engineOwnKeysEnd, end: batchRange.start });
      yield* storedEntries({ start: batchRange.end, end: slotIndexRange.start });
      yield* storedEntries({ start: slotIndexRange.end });
    }
    return encodeSnapshotChunks(everyRecordButBatchesAndIndex());
  }

  close(): Promise<void> {
    return this.snapshot.close();
  }
}

/** A snapshot being received into a new generation. Either installed or aborted. */
export class SnapshotInstall {
  #receivedBytes = 0;
  #finished: Promise<SnapshotMetadata> | undefined;
  constructor(
    readonly engine: Engine,
    readonly generation: number,
    private readonly keepsBatchChain: boolean,
    private readonly onAbort: () => void = () => {},
  ) {}

  get receivedBytes(): number {
    return this.#receivedBytes;
  }

  /**
   * Writes one chunk (whole records) into the new generation, as received. Every record is
   * verified first: a record that fails its checksum (damaged on the way, or sent by a bug) or a
   * batch record (never sent) refuses the chunk, and the leader sends the snapshot again.
   */
  async write(chunk: Uint8Array): Promise<void> {
    const records = decodeSnapshotChunk(chunk);
    for (const { key, value } of records) {
      if (!isSealedRecordOf(key, value))
        throw new SnapshotChunkError(`record ${describeEngineKey(key)} does not match its checksum`);
      if (Buffer.compare(key, batchRange.start) >= 0 && Buffer.compare(key, batchRange.end) < 0)
        throw new SnapshotChunkError(
          `record ${describeEngineKey(key)} is a batch record, which no snapshot carries`,
        );
    }
    this.#receivedBytes += chunk.byteLength;
    // Each data record brings its slot index record into the same batch.
    await this.engine.batch(receivedRecordOperations(records));
  }

  /**
   * Checks what was received (its format, applied index and configuration), starts its batch
   * chain at the snapshot's index, flushes it, and answers the metadata the state carries. A state
   * of format 2 (from a leader not yet upgraded) is taken as well: it differs from the current
   * format only by the slot index, which `write` derived; the state is then of the current format.
   */
  async finish(): Promise<SnapshotMetadata> {
    this.#finished ??= this.#check();
    return this.#finished;
  }

  async #check(): Promise<SnapshotMetadata> {
    const folder = undefined;
    const format = await this.engine.get(formatKey);
    const version = format === undefined ? undefined : openRecord(formatKey, format, folder);
    const versionNumber = version?.byteLength === 4 ? version.readUInt32BE(0) : undefined;
    if (versionNumber !== formatVersion && versionNumber !== formatVersionWithoutSlotIndex)
      throw new SnapshotChunkError(
        `snapshot: the received state is not in format ${formatVersion} (nor ${formatVersionWithoutSlotIndex})`,
      );
    if (versionNumber !== formatVersion)
      await this.engine.put(formatKey, sealRecord(formatKey, encodeFormat(formatVersion)));
    const storedApplied = await this.engine.get(appliedKey);
    if (storedApplied === undefined) throw new Error('snapshot: the received state has no applied index');
    const applied = openRecord(appliedKey, storedApplied, folder);
    const storedConfState = await this.engine.get(confStateKey);
    const confState =
      storedConfState === undefined ? undefined : openRecord(confStateKey, storedConfState, folder);
    const index = decodeUint64(applied, 0);
    if (this.keepsBatchChain)
      await this.engine.put(chainBaseKey, sealRecord(chainBaseKey, encodeUint64(index)));
    // Flushed to tables, not only synced: a snapshot larger than a memtable switched LevelDB's
    // write-ahead log on the way, and nothing syncs the older one.
    await this.engine.flush();
    return {
      index,
      term: decodeUint64(applied, 8),
      confState: confState === undefined ? emptyConfState : decodeConfState(confState),
    };
  }

  async abort(): Promise<void> {
    await this.engine.close();
    this.onAbort();
  }
}

const emptyPayload = Buffer.alloc(0);
/** Keys below this one are the engine's own (LevelDB's sync marker), not the state machine's. */
const engineOwnKeysEnd = Buffer.from([0x01]);

/** The payload of the format record: the version, u32 big-endian. */
function encodeFormat(version: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(version);
  return payload;
}

function undecodable(key: Buffer, folder: string): StorageFault {
  return new StorageFault(`record ${describeEngineKey(key)} does not decode`, {
    kind: 'undecodable',
    key: describeEngineKey(key),
    file: folder,
  });
}

/** A u64 payload; anything else under a key that holds one is a storage fault. */
function decodeStoredUint64(payload: Buffer, key: Buffer, folder: string): number {
  if (payload.byteLength !== 8) throw undecodable(key, folder);
  return decodeUint64(payload, 0);
}

function decodeStoredConfState(payload: Buffer, folder: string): ConfState {
  try {
    return decodeConfState(payload);
  } catch {
    throw undecodable(confStateKey, folder);
  }
}

function generationName(generation: number): string {
  return `${generationPrefix}${String(generation).padStart(6, '0')}`;
}

async function openGeneration(options: StateMachineOptions, generation: number): Promise<Engine> {
  const wrap = options.wrapEngine ?? ((engine: Engine) => engine);
  if (options.engine === 'memory') return wrap(await openEngine({ name: 'memory' }));
  const space = spaceOf(options);
  if (space !== undefined) return wrap(space.engineOf(generation));
  const directory = join(options.directory, generationName(generation));
  // LevelDB fsyncs its files and its own folder, not the folder that holds it: a generation
  // created without this could vanish in a power loss with everything synced inside it.
  await createDirectoryDurably(directory, fileSystemOf(options));
  // The Raft log is the durable record: batches need no fsync of their own (see `sync()`).
  return wrap(await openEngine({ name: 'leveldb', directory, sync: false }));
}

function fileSystemOf(options: StateMachineOptions): FileSystem {
  return options.fileSystem ?? nodeFileSystem;
}

async function readGeneration(directory: string, fs: FileSystem): Promise<number> {
  let text: string;
  try {
    text = (await fs.readFile(join(directory, generationPointerFile))).toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 1;
    throw error;
  }
  const match = new RegExp(`^${generationPrefix}(\\d{6})\\n?$`).exec(text);
  if (match === null)
    throw new Error(
      `state machine: ${join(directory, generationPointerFile)} is corrupt: ${JSON.stringify(text)}`,
    );
  return Number(match[1]);
}

/** Points `CURRENT` at `generation`, atomically and durably (see `replaceFileDurably`). */
async function writeGeneration(directory: string, generation: number, fs: FileSystem): Promise<void> {
  await replaceFileDurably(
    join(directory, generationPointerFile),
    `${generationName(generation)}\n`,
    undefined,
    fs,
  );
}

/** The node engine's prefixes hold the generations; never for the memory engine. */
function spaceOf(options: StateMachineOptions): GenerationSpace | undefined {
  return options.engine === 'memory' ? undefined : options.generationSpace;
}

/**
 * The live generation of folders (`CURRENT`, absent before the first install: generation 1), once
 * the others, left by an interrupted install, are removed; and whether it is missing.
 */
async function adoptFolderGeneration(
  directory: string,
  logger: Logger,
  fs: FileSystem,
): Promise<{ generation: number; missing: boolean }> {
  if ((await fs.readdir(directory)).includes(spacePointerFile)) {
    throw new StartupError(
      'DATA_DIRECTORY_FORMAT_UNSUPPORTED',
      `state machine: ${directory} holds ${spacePointerFile}: its state lives in a node's engine (decision 0019), and this process keeps a state machine in folders of its own; start it as a node (the move into the node engine is one-way)`,
    );
  }
  const generation = await readGeneration(directory, fs);
  return { generation, missing: !(await removeOtherGenerations(directory, generation, logger, fs)) };
}

/**
 * The live generation in the node engine's prefixes. `GENERATION` is written when the state
 * machine is created, so that its absence means a new one: then whatever an earlier replica of
 * the group left under its prefixes (a removal interrupted by a crash) is deleted first, and a
 * state machine still in folders (written before decision 0019) is moved into the node engine.
 * Otherwise the generations other than the live one (an interrupted install's) are deleted.
 */
async function adoptSpaceGeneration(
  options: StateMachineOptions,
  space: GenerationSpace,
  fs: FileSystem,
): Promise<{ generation: number; missing: boolean }> {
  const { directory, logger } = options;
  const pointed = await readSpaceGeneration(directory, fs);
  if (pointed === undefined) {
    const leftovers = await space.generations();
    if (leftovers.length > 0) {
      logger.warn(
        { generations: leftovers },
        'state machine: removing keys an earlier replica of the group left in the node engine',
      );
      await space.removeAll();
    }
    const lost = await moveFolderGenerationIntoSpace(options, space, fs);
    await writeSpaceGeneration(directory, 1, fs);
    await removeFolderGenerations(directory, fs);
    return { generation: 1, missing: lost };
  }
  await removeFolderGenerations(directory, fs);
  const stored = await space.generations();
  for (const other of stored) {
    if (other === pointed) continue;
    logger.warn({ generation: other }, 'state machine: removing a generation left by an interrupted install');
    // Not the live state: a failure to delete it (damage in what it held) must not stop the
    // replica. Its keys stay, unread, until a later start deletes them.
    await space.remove(other).catch((error: unknown) => {
      logger.warn({ generation: other, err: error }, 'state machine: removing a generation failed');
    });
  }
  return { generation: pointed, missing: pointed !== 1 && !stored.includes(pointed) };
}

/** Records, and bytes, per batch when a state machine's folder is moved into the node engine. */
const moveBatchRecordsMax = 1000;
const moveBatchBytesMax = 4 << 20;

/**
 * A state machine written in folders (before decision 0019) is copied, record for record, into
 * generation 1 of the node engine, which is then flushed; only then does `GENERATION` (written by
 * the caller) make the copy live, and the folders are removed after that, at the next open if a
 * crash comes first. A crash during the copy leaves no `GENERATION`, so the next open deletes the
 * partial copy and copies again. Answers whether the folder `CURRENT` names was missing (the state
 * is lost, as `adoptFolderGeneration` reports).
 */
async function moveFolderGenerationIntoSpace(
  options: StateMachineOptions,
  space: GenerationSpace,
  fs: FileSystem,
): Promise<boolean> {
  const { directory, logger } = options;
  const names = await fs.readdir(directory);
  if (!names.some((name) => name.startsWith(generationPrefix) || name === generationPointerFile))
    return false;
  const { generation, missing } = await adoptFolderGeneration(directory, logger, fs);
  if (missing) return true;
  const folder = join(directory, generationName(generation));
  const source = await openEngine({ name: 'leveldb', directory: folder, sync: false });
  const target = space.engineOf(1);
  let records = 0;
  try {
    let batch: BatchOperation[] = [];
    let batchBytes = 0;
    // From engineOwnKeysEnd: the folder's own sync marker stays behind.
    for await (const { key, value } of source.iterate({ start: engineOwnKeysEnd })) {
      batch.push({ type: 'put', key, value });
      batchBytes += key.length + value.length;
      if (batch.length >= moveBatchRecordsMax || batchBytes >= moveBatchBytesMax) {
        await target.batch(batch);
        records += batch.length;
        batch = [];
        batchBytes = 0;
      }
    }
    await target.batch(batch);
    records += batch.length;
    await target.flush();
  } finally {
    await source.close();
    await target.close();
  }
  logger.info({ folder, records, to: space.location() }, 'state machine: moved into the node engine');
  return false;
}

/** After `GENERATION` names the node engine's copy: the folders of decision 0011's layout go. */
async function removeFolderGenerations(directory: string, fs: FileSystem): Promise<void> {
  for (const name of await fs.readdir(directory)) {
    if (name.startsWith(generationPrefix) || name === generationPointerFile) {
      await fs.rm(join(directory, name), { recursive: true, force: true });
    }
  }
}

async function readSpaceGeneration(directory: string, fs: FileSystem): Promise<number | undefined> {
  let text: string;
  try {
    text = (await fs.readFile(join(directory, spacePointerFile))).toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const match = /^(\d{1,10})\n?$/.exec(text);
  const generation = match === null ? Number.NaN : Number(match[1]);
  if (!Number.isSafeInteger(generation) || generation < 1 || generation > 0xffff_ffff)
    throw new Error(
      `state machine: ${join(directory, spacePointerFile)} is corrupt: ${JSON.stringify(text)}`,
    );
  return generation;
}

/** Points `GENERATION` at `generation`, atomically and durably (see `replaceFileDurably`). */
async function writeSpaceGeneration(directory: string, generation: number, fs: FileSystem): Promise<void> {
  await replaceFileDurably(join(directory, spacePointerFile), `${generation}\n`, undefined, fs);
}

/**
 * Removes generations left by a crash during an install (the new one) or after it (the old one).
 * Answers whether the live generation exists (generation 1 may not yet: a new state machine).
 */
async function removeOtherGenerations(
  directory: string,
  generation: number,
  logger: Logger,
  fs: FileSystem,
): Promise<boolean> {
  for (const name of await fs.readdir(directory)) {
    if (name.startsWith(generationPrefix) && name !== generationName(generation)) {
      logger.warn({ folder: name }, 'state machine: removing a generation left by an interrupted install');
      await fs.rm(join(directory, name), { recursive: true, force: true });
    }
  }
  if (generation === 1) return true;
  return (await fs.readdir(directory)).includes(generationName(generation));
}

export function encodeConfState(confState: ConfState): Buffer {
  return Buffer.from(JSON.stringify(confState), 'utf8');
}

export function decodeConfState(bytes: Uint8Array): ConfState {
  const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as ConfState;
  return Object.freeze({
    voters: value.voters,
    learners: value.learners,
    votersOutgoing: value.votersOutgoing,
    learnersNext: value.learnersNext,
    autoLeave: value.autoLeave,
  });
}
