/**
 * The unstable tail of the log: entries (and possibly a snapshot) that the core has accepted but
 * the host has not yet persisted. Once the host reports them durable (`stableTo`,
 * `stableSnapshotTo`) they are read from Storage instead.
 */
import { fail } from './errors.js';
import type { Entry, Snapshot } from './types.js';

export class UnstableLog {
  /** A snapshot received from the leader and not yet persisted. */
  snapshot: Snapshot | undefined = undefined;
  /** Entries not yet persisted; entries[i] has index offset + i. */
  entries: Entry[] = [];
  /** The index of entries[0] (also the index after the last stable entry). */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  /** The first index of the log if it starts with the unstable snapshot, else undefined. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1;
  }

  /** The last index if there are unstable entries or an unstable snapshot, else undefined. */
  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) {
      return this.offset + this.entries.length - 1;
    }
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index;
  }

  /** The term of entry `index` if the unstable part knows it, else undefined. */
  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === index) {
        return this.snapshot.metadata.term;
      }
      return undefined;
    }
    const entry = this.entries[index - this.offset];
    return entry === undefined ? undefined : entry.term;
  }

  /**
   * Marks entries up to `index` durable. The term check ignores a stale report: if the entry at
   * `index` was replaced by a new leader's entry since the Ready, it is not the one persisted.
   */
  stableTo(index: number, term: number): void {
    const known = this.maybeTerm(index);
    if (known === undefined || known !== term || index < this.offset) {
      return;
    }
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  stableSnapshotTo(index: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === index) {
      this.snapshot = undefined;
    }
  }

  /** Replaces everything with a snapshot; the log continues after it. */
  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1;
    this.entries = [];
    this.snapshot = snapshot;
  }

  /**
   * Appends entries, which start at most one past the last index, truncating any unstable
   * entries from the first new index on.
   */
  truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    if (first === this.offset + this.entries.length) {
      // The common case: a contiguous append.
      for (const entry of entries) {
        this.entries.push(entry);
      }
    } else if (first <= this.offset) {
      // The whole unstable tail is replaced, and the new entries may even overwrite stable ones,
      // which the host will do when it persists them.
      this.offset = first;
      this.entries = entries.slice();
    } else {
      this.entries.length = first - this.offset;
      for (const entry of entries) {
        this.entries.push(entry);
      }
    }
  }

  /** Entries in [lo, hi), which must lie within the unstable entries. */
  slice(lo: number, hi: number): Entry[] {
    if (lo > hi) fail(`invalid unstable slice ${lo} > ${hi}`);
    const upper = this.offset + this.entries.length;
    if (!(lo >= this.offset && hi <= upper)) {
      fail(`unstable slice [${lo},${hi}) out of bound [${this.offset},${upper})`);
    }
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
