/**
 * The live part of the log, held in memory: every entry after the last compaction, and the
 * index and term of the entry just before them (the base). It answers the core's synchronous
 * `Storage` reads with the same semantics as the core's `MemoryStorage`.
 */
import { CompactedError, entrySizeBytes, UnavailableError, type Entry } from '../raft/index.js';
import { assert } from './errors.js';

export class LiveLog {
  private base: number;
  private baseTermValue: number;
  private live: Entry[] = [];
  /** The sum of `entrySizeBytes` over the live entries. */
  private liveBytes = 0;

  constructor(baseIndex: number, baseTerm: number) {
    this.base = baseIndex;
    this.baseTermValue = baseTerm;
  }

  get baseIndex(): number {
    return this.base;
  }

  get baseTerm(): number {
    return this.baseTermValue;
  }

  /** The bytes the live entries count for (data plus the core's per-entry overhead). */
  get memoryBytes(): number {
    return this.liveBytes;
  }

  firstIndex(): number {
    return this.base + 1;
  }

  lastIndex(): number {
    return this.base + this.live.length;
  }

  term(index: number): number {
    if (index < this.base) {
      throw new CompactedError();
    }
    if (index === this.base) {
      return this.baseTermValue;
    }
    const entry = this.live[index - this.base - 1];
    if (entry === undefined) {
      throw new UnavailableError();
    }
    return entry.term;
  }

  /** The term of `index`, or undefined when it is not in [base, last]. */
  maybeTerm(index: number): number | undefined {
    if (index < this.base || index > this.lastIndex()) {
      return undefined;
    }
    return this.term(index);
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    if (lo <= this.base) {
      throw new CompactedError();
    }
    assert(hi <= this.lastIndex() + 1, `entries' hi(${hi}) is out of bound lastIndex(${this.lastIndex()})`);
    if (this.live.length === 0) {
      throw new UnavailableError();
    }
    const slice = this.live.slice(lo - this.base - 1, hi - this.base - 1);
    // The core expects at least one entry whatever the limit, so that it can always make progress.
    let size = 0;
    for (let i = 0; i < slice.length; i++) {
      size += entrySizeBytes(slice[i]!);
      if (i > 0 && size > maxBytes) {
        return slice.slice(0, i);
      }
    }
    return slice;
  }

  /**
   * Checks that `entries` can be appended and returns the position of the first one that is not
   * already covered by the base (entries at or below it are part of the snapshot and skipped,
   * like `MemoryStorage.append`). Returns `entries.length` when nothing is left to append.
   */
  checkAppend(entries: readonly Entry[]): number {
    if (entries.length === 0) {
      return 0;
    }
    const firstNew = entries[0]!.index;
    for (let i = 1; i < entries.length; i++) {
      const previous = entries[i - 1]!;
      const entry = entries[i]!;
      assert(
        entry.index === previous.index + 1,
        `entries are not contiguous: ${previous.index} then ${entry.index}`,
      );
      assert(entry.term >= previous.term, `entry ${entry.index} has a lower term than the entry before it`);
    }
    const skip = Math.max(0, this.base + 1 - firstNew);
    if (skip >= entries.length) {
      return entries.length;
    }
    const start = entries[skip]!;
    assert(
      start.index <= this.lastIndex() + 1,
      `missing log entry [last: ${this.lastIndex()}, append at: ${start.index}]`,
    );
    assert(
      start.term >= this.term(start.index - 1),
      `entry ${start.index} has a lower term than the entry before it`,
    );
    return skip;
  }

  /** Appends `entries[from..]`, which `checkAppend` accepted, replacing any entries from there on. */
  append(entries: readonly Entry[], from: number): void {
    if (from >= entries.length) {
      return;
    }
    this.truncateAfter(entries[from]!.index - 1);
    for (let i = from; i < entries.length; i++) {
      const entry = entries[i]!;
      this.live.push(entry);
      this.liveBytes += entrySizeBytes(entry);
    }
  }

  /** Drops the entries after `index` (a conflicting suffix about to be replaced). */
  private truncateAfter(index: number): void {
    const keep = index - this.base;
    for (let i = keep; i < this.live.length; i++) {
      this.liveBytes -= entrySizeBytes(this.live[i]!);
    }
    this.live.length = keep;
  }

  /** Drops the entries up to and including `index`, which becomes the base with term `term`. */
  compactTo(index: number, term: number): void {
    assert(index > this.base && index <= this.lastIndex(), `compaction to ${index} outside the live log`);
    const drop = index - this.base;
    for (let i = 0; i < drop; i++) {
      this.liveBytes -= entrySizeBytes(this.live[i]!);
    }
    this.live = this.live.slice(drop);
    this.base = index;
    this.baseTermValue = term;
  }

  /** Sets the base's term, which replay learns after the entries that follow a gap. */
  setBaseTerm(term: number): void {
    this.baseTermValue = term;
  }

  /** Drops every entry; the log continues after (index, term), e.g. a snapshot from the leader. */
  reset(index: number, term: number): void {
    this.live = [];
    this.liveBytes = 0;
    this.base = index;
    this.baseTermValue = term;
  }
}
