import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@impulse/common';
import type { ConfState, Entry as LogEntry, SnapshotMetadata } from '../raft/index.js';
import {
  openEngine,
  type BatchOperation,
  type Engine,
  type EngineName,
  type EngineSnapshot,
  type Entry,
} from '../storage/index.js';
import { decodeCommand } from './command.js';
import {
  appliedKey,
  confStateKey,
  dataKey,
  dataRange,
  decodeUint64,
  encodeUint64,
  membersKey,
  requestIdOfOrderKey,
  requestOrderKey,
  requestOrderRange,
} from './keyspace.js';
import { loadMemoryImage, writeMemoryImage } from './memory-image.js';
import { decodeSnapshotChunk, encodeSnapshotChunks } from './snapshot-codec.js';

/**
 * How many request ids the state machine remembers. A constant, not a setting: every replica must
 * make the same decision for the same entry, so every replica must remember the same ids. At
 * 10,000 writes per second this covers 20 s of retries, far beyond the gateway's retry deadline.
 */
export const requestIdRetentionCount = 200_000;

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
}

/** What happened to one applied entry. */
export interface AppliedEntry {
  readonly index: number;
  /** The request id the entry carried, if any. */
  readonly requestId: Buffer | undefined;
  /**
   * - `applied`: the command changed the state.
   * - `duplicate`: the request id was applied before; nothing changed.
   * - `noop`: an empty entry (a new leader's) or a membership change.
   * - `invalid`: bytes that are not a command; every replica skips them alike.
   */
  readonly outcome: 'applied' | 'duplicate' | 'noop' | 'invalid';
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
const generationPrefix = 'sm-';

/**
 * The replicated key-value state machine of a replica: applies committed entries to the storage
 * engine in atomic batches that also record the applied index (so a restart resumes exactly where
 * it stopped, never applying an entry twice nor skipping one), deduplicates retried writes by
 * request id, and takes and installs whole-state snapshots.
 *
 * The engine lives in a generation folder (`sm-000001`) named by the file `CURRENT`. Installing a
 * snapshot builds the next generation beside the live one, then switches `CURRENT` with an atomic
 * rename: a crash at any point leaves either the old state or the new one, never a mix.
 *
 * On the memory engine, which keeps nothing across a restart, each point where the state is made
 * durable (founding, `sync()` before the log is compacted, an installed snapshot) writes the whole
 * state as an image beside it (`memory-image.ts`), which `open` loads: the replica then replays
 * the log from the image's applied index, as a LevelDB replica does from its own.
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
  /** Request id (latin1 string) → index that applied it; insertion order is index order. */
  #requests = new Map<string, number>();
  /** Memory engine: the image writes, one after the other (see `writeImage`). */
  #imageWrites: Promise<void> = Promise.resolve();
  /** Memory engine: the applied index of the newest durable image; -1 before the first. */
  #imageIndex = -1;

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
  }

  static async open(options: StateMachineOptions): Promise<ReplicaStateMachine> {
    await mkdir(options.directory, { recursive: true });
    // Generations are folders of LevelDB's; the memory engine's lives in memory and in its image.
    const generation = options.engine === 'memory' ? 1 : await readGeneration(options.directory);
    if (options.engine !== 'memory')
      await removeOtherGenerations(options.directory, generation, options.logger);
    const engine = await openGeneration(options, generation);
    let imageLoaded = false;
    if (options.engine === 'memory') {
      try {
        imageLoaded = await loadMemoryImage(options.directory, engine);
      } catch (error) {
        await engine.close();
        throw error;
      }
    }
    const stateMachine = new ReplicaStateMachine(options, engine, generation);
    await stateMachine.loadMeta();
    if (imageLoaded) stateMachine.#imageIndex = stateMachine.#appliedIndex;
    if (stateMachine.#appliedIndex === 0 && options.initialConfState !== undefined) {
      const existing = await engine.get(confStateKey);
      if (existing === undefined) {
        await engine.put(confStateKey, encodeConfState(options.initialConfState));
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

  /**
   * Writes the founding state of a brand-new group: applied index and term 1 and the founding
   * configuration, as if a snapshot at index 1 had been installed (see `Replica.start`).
   */
  async bootstrap(confState: ConfState): Promise<void> {
    if (this.#appliedIndex !== 0)
      throw new Error('state machine: bootstrap of a state machine that applied entries');
    await this.#engine.batch([
      { type: 'put', key: appliedKey, value: Buffer.concat([encodeUint64(1), encodeUint64(1)]) },
      { type: 'put', key: confStateKey, value: encodeConfState(confState) },
    ]);
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
      await writeMemoryImage(this.options.directory, snapshot.chunks());
      this.#imageIndex = snapshot.metadata.index;
    });
    this.#imageWrites = write.catch(() => undefined);
    return write;
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

  /** Counts the user keys by scanning them: O(n), for admin pages, not for hot paths. */
  async countUserKeys(): Promise<number> {
    let count = 0;
    for await (const _entry of this.#engine.iterate(dataRange)) count++;
    return count;
  }

  /** Reads a user key from the live engine. */
  get(key: string): Promise<Buffer | undefined> {
    return this.#engine.get(dataKey(key));
  }

  /**
   * The user keys in `range`, in byte order, with their values, at most `limit` of them, from one
   * consistent view of the live engine taken at the first `next()`. Each entry's key is the user
   * key's UTF-8 bytes (without the keyspace prefix).
   */
  async *scan(range: UserKeyRange, limit: number): AsyncGenerator<Entry, void, undefined> {
    const start = range.start === undefined ? dataRange.start : Buffer.concat([dataRange.start, range.start]);
    const end = range.end === undefined ? dataRange.end : Buffer.concat([dataRange.start, range.end]);
    for await (const entry of this.#engine.iterate({ start, end, limit })) {
      yield { key: entry.key.subarray(dataRange.start.byteLength), value: entry.value };
    }
  }

  private async loadMeta(): Promise<void> {
    const engine = this.#engine;
    const applied = await engine.get(appliedKey);
    this.#appliedIndex = applied === undefined ? 0 : decodeUint64(applied, 0);
    this.#appliedTerm = applied === undefined ? 0 : decodeUint64(applied, 8);
    const confState = await engine.get(confStateKey);
    this.#confState = confState === undefined ? emptyConfState : decodeConfState(confState);
    this.#membersRecord = await engine.get(membersKey);
    this.#requests = new Map();
    for await (const { key } of engine.iterate(requestOrderRange)) {
      this.#requests.set(requestIdOfOrderKey(key).toString('latin1'), decodeUint64(key, 1));
    }
  }

  /**
   * Applies committed entries, in order, in ONE atomic engine batch that also stores the new
   * applied index (and the configuration when a membership change is among them). `confStates`
   * holds the configuration that results from each membership-change entry, by index.
   */
  async apply(
    entries: readonly LogEntry[],
    confStates: ReadonlyMap<number, ConfState>,
    membersRecord?: Buffer,
  ): Promise<AppliedEntry[]> {
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
        operations.push({
          type: 'put',
          key: requestOrderKey(entry.index, requestId),
          value: Buffer.alloc(0),
        });
      }
      if (command.operation === 'put') {
        operations.push({ type: 'put', key: dataKey(command.key), value: command.value });
      } else {
        operations.push({ type: 'delete', key: dataKey(command.key) });
      }
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
    operations.push({
      type: 'put',
      key: appliedKey,
      value: Buffer.concat([encodeUint64(last.index), encodeUint64(last.term)]),
    });
    if (confState !== undefined)
      operations.push({ type: 'put', key: confStateKey, value: encodeConfState(confState) });
    if (membersRecord !== undefined) operations.push({ type: 'put', key: membersKey, value: membersRecord });
    try {
      await this.#engine.batch(operations);
    } catch (error) {
      // Nothing was applied: forget what this batch remembered, so memory matches the engine.
      for (const [idKey] of added) requests.delete(idKey);
      throw error;
    }
    for (const [idKey] of evicted) requests.delete(idKey);
    this.#appliedIndex = last.index;
    this.#appliedTerm = last.term;
    if (confState !== undefined) this.#confState = confState;
    if (membersRecord !== undefined) this.#membersRecord = membersRecord;
    return results;
  }

  /**
   * Makes every applied batch durable. Batches are written without fsync (the Raft log is the
   * durable record and a restart re-applies from the applied index); this is called before the
   * log is compacted, when the log stops being able to replay them.
   */
  async sync(): Promise<void> {
    if (this.options.engine === 'memory') return this.persistImage();
    // A synced write flushes LevelDB's log, and with it every earlier unsynced write.
    await this.#engine.put(
      appliedKey,
      Buffer.concat([encodeUint64(this.#appliedIndex), encodeUint64(this.#appliedTerm)]),
    );
  }

  /**
   * A consistent view of the whole state (data, request ids, applied index, configuration) for a
   * follower that is too far behind, with the metadata it corresponds to exactly.
   */
  async openSnapshot(): Promise<StateMachineSnapshot> {
    const snapshot = await this.#engine.snapshot();
    try {
      const applied = await snapshot.get(appliedKey);
      const confState = await snapshot.get(confStateKey);
      const metadata: SnapshotMetadata = {
        index: applied === undefined ? 0 : decodeUint64(applied, 0),
        term: applied === undefined ? 0 : decodeUint64(applied, 8),
        confState: confState === undefined ? emptyConfState : decodeConfState(confState),
      };
      return new StateMachineSnapshot(snapshot, metadata);
    } catch (error) {
      await snapshot.close();
      throw error;
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
    await rm(join(this.options.directory, generationName(generation)), { recursive: true, force: true });
    const engine = await openGeneration(this.options, generation);
    return new SnapshotInstall(engine, generation);
  }

  /**
   * Makes a fully received snapshot the live state, atomically: the new generation is flushed,
   * `CURRENT` is switched by rename, then the old generation is closed and removed.
   */
  async install(install: SnapshotInstall): Promise<SnapshotMetadata> {
    if (install.generation <= this.#generation) throw new Error('state machine: stale snapshot install');
    const metadata = await install.finish();
    if (this.options.engine !== 'memory') await writeGeneration(this.options.directory, install.generation);
    const previous = this.#engine;
    const previousGeneration = this.#generation;
    this.#engine = install.engine;
    this.#generation = install.generation;
    await this.loadMeta();
    // The image is the memory engine's durable state: written before the log records the snapshot
    // (when this returns), and after any image of the previous engine being written.
    await this.persistImage();
    await previous.close();
    await rm(join(this.options.directory, generationName(previousGeneration)), {
      recursive: true,
      force: true,
    });
    this.options.logger.info(
      { index: metadata.index, term: metadata.term, generation: install.generation },
      'state machine: snapshot installed',
    );
    return metadata;
  }

  async close(): Promise<void> {
    await this.#imageWrites;
    await this.#engine.close();
  }
}

/** A consistent, streamable view of the state at `metadata.index`. Close it when done. */
export class StateMachineSnapshot {
  constructor(
    private readonly snapshot: EngineSnapshot,
    readonly metadata: SnapshotMetadata,
  ) {}

  /** The whole state as chunks of whole records (see `snapshot-codec.ts`). */
  chunks(): AsyncGenerator<Buffer> {
    return encodeSnapshotChunks(this.snapshot.iterate());
  }

  close(): Promise<void> {
    return this.snapshot.close();
  }
}

/** A snapshot being received into a new generation. Either installed or aborted. */
export class SnapshotInstall {
  #receivedBytes = 0;
  constructor(
    readonly engine: Engine,
    readonly generation: number,
  ) {}

  get receivedBytes(): number {
    return this.#receivedBytes;
  }

  /** Writes one chunk (whole records) into the new generation. */
  async write(chunk: Uint8Array): Promise<void> {
    const records = decodeSnapshotChunk(chunk);
    this.#receivedBytes += chunk.byteLength;
    await this.engine.batch(records.map(({ key, value }) => ({ type: 'put', key, value })));
  }

  /** Flushes what was written and answers the metadata the received state carries. */
  async finish(): Promise<SnapshotMetadata> {
    const applied = await this.engine.get(appliedKey);
    if (applied === undefined) throw new Error('snapshot: the received state has no applied index');
    const confState = await this.engine.get(confStateKey);
    await this.engine.sync();
    return {
      index: decodeUint64(applied, 0),
      term: decodeUint64(applied, 8),
      confState: confState === undefined ? emptyConfState : decodeConfState(confState),
    };
  }

  async abort(): Promise<void> {
    await this.engine.close();
  }
}

function generationName(generation: number): string {
  return `${generationPrefix}${String(generation).padStart(6, '0')}`;
}

async function openGeneration(options: StateMachineOptions, generation: number): Promise<Engine> {
  if (options.engine === 'memory') return openEngine({ name: 'memory' });
  // The Raft log is the durable record: batches need no fsync of their own (see `sync()`).
  return openEngine({
    name: 'leveldb',
    directory: join(options.directory, generationName(generation)),
    sync: false,
  });
}

async function readGeneration(directory: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(join(directory, generationPointerFile), 'utf8');
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

/** Points `CURRENT` at `generation`: write a temporary file, fsync it, rename it, fsync the folder. */
async function writeGeneration(directory: string, generation: number): Promise<void> {
  const temporary = join(directory, `${generationPointerFile}.tmp`);
  const file = await open(temporary, 'w');
  try {
    await file.writeFile(`${generationName(generation)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, join(directory, generationPointerFile));
  const folder = await open(directory, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/** Removes generations left by a crash during an install (the new one) or after it (the old one). */
async function removeOtherGenerations(directory: string, generation: number, logger: Logger): Promise<void> {
  for (const name of await readdir(directory)) {
    if (name.startsWith(generationPrefix) && name !== generationName(generation)) {
      logger.warn({ folder: name }, 'state machine: removing a generation left by an interrupted install');
      await rm(join(directory, name), { recursive: true, force: true });
    }
  }
  if (generation === 1) return;
  // A pointer to a generation that does not exist would silently start empty: refuse instead.
  const names = await readdir(directory);
  if (!names.includes(generationName(generation))) {
    throw new Error(
      `state machine: ${generationPointerFile} names ${generationName(generation)}, which is missing`,
    );
  }
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
