/**
 * The stable-storage interface the core reads its log from, and an in-memory implementation.
 *
 * The core only ever reads from Storage; the host writes to it (append, applySnapshot,
 * setHardState) while processing a Ready, before calling `advance`.
 */
import { limitSize } from './entry.js';
import { CompactedError, fail, SnapshotOutOfDateError, UnavailableError } from './errors.js';
import type { ConfState, Entry, HardState, Snapshot } from './types.js';

/** The state a node restarts from. */
export interface InitialState {
  readonly hardState: HardState;
  readonly confState: ConfState;
}

/**
 * Read access to the durable log. Errors are thrown as typed errors:
 * - `CompactedError` when an index is below `firstIndex() - 1` (term) or `firstIndex()` (entries),
 * - `UnavailableError` when an index is past `lastIndex()`,
 * - `SnapshotTemporarilyUnavailableError` from `snapshot()` when a snapshot is being prepared.
 */
export interface Storage {
  initialState(): InitialState;
  /**
   * Entries in [lo, hi), at most `maxBytes` of them (by `entrySizeBytes`) but at least one if any.
   * `maxBytes` may be Infinity.
   */
  entries(lo: number, hi: number, maxBytes: number): readonly Entry[];
  /** The term of entry `index`, for `firstIndex() - 1 <= index <= lastIndex()`. */
  term(index: number): number;
  /** The index of the first entry still available (the one after the snapshot). */
  firstIndex(): number;
  /** The index of the last entry. */
  lastIndex(): number;
  /** The most recent snapshot. */
  snapshot(): Snapshot;
}

export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: [],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: 0, commit: 0 });

/** Options of a fresh MemoryStorage. */
export interface MemoryStorageOptions {
  /**
   * The configuration a brand-new cluster starts with, as if from a snapshot at index 0. Every
   * node of the group, including nodes added later by a conf change, must start with this same
   * bootstrap configuration: a new node replays the log from index 1 (conf changes included) on
   * top of it. Only a node that is sure to receive a snapshot first may start empty.
   */
  readonly confState?: ConfState;
}

/** An in-memory Storage, for tests, the simulator and benchmarks. */
export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private currentSnapshot: Snapshot;
  /** entries[0] is a dummy holding the snapshot's index and term; real entries follow. */
  private entriesArray: Entry[];

  constructor(options: MemoryStorageOptions = {}) {
    this.currentSnapshot = {
      metadata: { index: 0, term: 0, confState: options.confState ?? EMPTY_CONF_STATE },
      data: new Uint8Array(0),
    };
    this.entriesArray = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }];
  }

  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.currentSnapshot.metadata.confState };
  }

  setHardState(hardState: HardState): void {
    this.hardState = hardState;
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    const offset = this.entriesArray[0]!.index;
    if (lo <= offset) {
      throw new CompactedError();
    }
    if (hi > this.lastIndex() + 1) fail(`entries' hi(${hi}) is out of bound lastIndex(${this.lastIndex()})`);
    // Only the dummy entry is left: the log is empty after a snapshot.
    if (this.entriesArray.length === 1) {
      throw new UnavailableError();
    }
    return limitSize(this.entriesArray.slice(lo - offset, hi - offset), maxBytes);
  }

  term(index: number): number {
    const offset = this.entriesArray[0]!.index;
    if (index < offset) {
      throw new CompactedError();
    }
    const entry = this.entriesArray[index - offset];
    if (entry === undefined) {
      throw new UnavailableError();
    }
    return entry.term;
  }

  firstIndex(): number {
    return this.entriesArray[0]!.index + 1;
  }

  lastIndex(): number {
    return this.entriesArray[0]!.index + this.entriesArray.length - 1;
  }

  snapshot(): Snapshot {
    return this.currentSnapshot;
  }

  /** Replaces the whole content with a snapshot (a follower installing one from its leader). */
  applySnapshot(snapshot: Snapshot): void {
    if (this.currentSnapshot.metadata.index >= snapshot.metadata.index) {
      throw new SnapshotOutOfDateError();
    }
    this.currentSnapshot = snapshot;
    this.entriesArray = [
      {
        term: snapshot.metadata.term,
        index: snapshot.metadata.index,
        type: 'normal',
        data: new Uint8Array(0),
      },
    ];
  }

  /**
   * Records a snapshot of the state machine at `index` (which must be applied), for sending to
   * slow followers; follow with `compact` to free the log before it.
   */
  createSnapshot(index: number, confState: ConfState | undefined, data: Uint8Array): Snapshot {
    if (index <= this.currentSnapshot.metadata.index) {
      throw new SnapshotOutOfDateError();
    }
    const offset = this.entriesArray[0]!.index;
    if (index > this.lastIndex()) fail(`snapshot ${index} is out of bound lastIndex(${this.lastIndex()})`);
    this.currentSnapshot = {
      metadata: {
        index,
        term: this.entriesArray[index - offset]!.term,
        confState: confState ?? this.currentSnapshot.metadata.confState,
      },
      data,
    };
    return this.currentSnapshot;
  }

  /** Discards entries before `compactIndex`; the entry at `compactIndex` becomes the dummy. */
  compact(compactIndex: number): void {
    const offset = this.entriesArray[0]!.index;
    if (compactIndex <= offset) {
      throw new CompactedError();
    }
    if (compactIndex > this.lastIndex()) {
      fail(`compact ${compactIndex} is out of bound lastIndex(${this.lastIndex()})`);
    }
    const i = compactIndex - offset;
    const dummy: Entry = {
      term: this.entriesArray[i]!.term,
      index: this.entriesArray[i]!.index,
      type: 'normal',
      data: new Uint8Array(0),
    };
    const rest = this.entriesArray.slice(i + 1);
    rest.unshift(dummy);
    this.entriesArray = rest;
  }

  /**
   * Appends entries, which must be contiguous; entries from an index already present replace the
   * tail from there (a follower's conflicting suffix being overwritten).
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) {
      return;
    }
    const first = this.firstIndex();
    const firstNew = entries[0]!.index;
    const last = firstNew + entries.length - 1;
    // Entries entirely covered by the snapshot are already part of it.
    if (last < first) {
      return;
    }
    const skip = first > firstNew ? first - firstNew : 0;
    const offset = firstNew + skip - this.entriesArray[0]!.index;
    if (offset > this.entriesArray.length) {
      fail(`missing log entry [last: ${this.lastIndex()}, append at: ${firstNew + skip}]`);
    }
    if (offset < this.entriesArray.length) {
      this.entriesArray.length = offset;
    }
    for (let i = skip; i < entries.length; i++) {
      this.entriesArray.push(entries[i]!);
    }
  }
}
