/**
 * The Raft log as the state machine sees it: the stable part in Storage, the unstable tail not yet
 * persisted, and the commit and applied cursors.
 */
import { entrySizeBytes, limitSize } from './entry.js';
import { assert, CompactedError, UnavailableError, fail } from './errors.js';
import { UnstableLog } from './log-unstable.js';
import type { Storage } from './storage.js';
import type { Entry, Logger, Snapshot } from './types.js';

/** Returned by `termOrError` instead of a term when the index was compacted away. */
export const TERM_COMPACTED = -1;
/** Returned by `termOrError` instead of a term when the index is past the end of the log. */
export const TERM_UNAVAILABLE = -2;

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: UnstableLog;
  /** The highest index known to be committed by a quorum. */
  committed: number;
  /** The highest index the application has applied. Invariant: applied <= committed. */
  applied: number;
  private readonly logger: Logger;
  private readonly maxCommittedBytesPerReady: number;

  constructor(storage: Storage, logger: Logger, maxCommittedBytesPerReady: number) {
    this.storage = storage;
    this.logger = logger;
    this.maxCommittedBytesPerReady = maxCommittedBytesPerReady;
    const firstIndex = storage.firstIndex();
    const lastIndex = storage.lastIndex();
    this.unstable = new UnstableLog(lastIndex + 1);
    // Everything up to the snapshot is committed and applied by definition.
    this.committed = firstIndex - 1;
    this.applied = firstIndex - 1;
  }

  /**
   * Appends `entries` after the entry (index, logTerm) if this log holds that entry, which is the
   * AppendEntries consistency check (§5.3). Returns the index of the last new entry, or undefined
   * when the check fails.
   */
  maybeAppend(
    index: number,
    logTerm: number,
    committed: number,
    entries: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(index, logTerm)) {
      return undefined;
    }
    const lastNewIndex = index + entries.length;
    const conflictIndex = this.findConflict(entries);
    if (conflictIndex !== 0) {
      if (conflictIndex <= this.committed) {
        fail(`entry ${conflictIndex} conflicts with committed entry [committed(${this.committed})]`);
      }
      this.append(conflictIndex === index + 1 ? entries : entries.slice(conflictIndex - (index + 1)));
    }
    // A leader's commit index may be ahead of what this message proves we hold; only commit what
    // the message itself matched.
    this.commitTo(Math.min(committed, lastNewIndex));
    return lastNewIndex;
  }

  /** Appends entries (truncating any conflicting unstable tail) and returns the new last index. */
  append(entries: readonly Entry[]): number {
    if (entries.length === 0) {
      return this.lastIndex();
    }
    const after = entries[0]!.index - 1;
    if (after < this.committed) fail(`after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  /**
   * The index of the first entry whose term differs from ours (a conflict, or a new entry past
   * our end), or 0 when all entries are already present.
   */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) {
        if (entry.index <= this.lastIndex()) {
          this.logger.debug('raft: found conflicting entry', {
            index: entry.index,
            existingTerm: this.termOrError(entry.index),
            conflictingTerm: entry.term,
          });
        }
        return entry.index;
      }
    }
    return 0;
  }

  /**
   * Fast backtracking: the largest index <= `index` whose term is <= `term`, with that term. A
   * leader and follower use it to skip a whole term of mismatching entries per round trip.
   * Returns term 0 when the term at the index is unknown (compacted), meaning "maybe a match".
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (; index > 0; index--) {
      const ourTerm = this.termOrError(index);
      if (ourTerm < 0) {
        return { index, term: 0 };
      }
      if (ourTerm <= term) {
        return { index, term: ourTerm };
      }
    }
    return { index: 0, term: 0 };
  }

  /** Unstable entries, for the next Ready. */
  unstableEntries(): readonly Entry[] {
    return this.unstable.entries.length === 0 ? [] : this.unstable.entries.slice();
  }

  /**
   * Committed entries not yet applied, at most `maxCommittedBytesPerReady` of them. They may
   * include unstable entries: the Ready contract makes the host persist before applying.
   */
  nextCommittedEntries(): readonly Entry[] {
    if (this.hasPendingSnapshot()) {
      // The snapshot must be installed before anything after it is applied.
      return [];
    }
    if (this.committed <= this.applied) {
      return [];
    }
    return this.slice(this.applied + 1, this.committed + 1, this.maxCommittedBytesPerReady);
  }

  hasNextCommittedEntries(): boolean {
    return !this.hasPendingSnapshot() && this.committed > this.applied;
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    const term = this.termOrError(this.lastIndex());
    assert(term >= 0, 'the term of the last entry is always known');
    return term;
  }

  /** Advances the commit index; never moves it back, never past the last index. */
  commitTo(index: number): void {
    if (this.committed < index) {
      if (index > this.lastIndex()) {
        fail(
          `commit index ${index} is out of range [lastIndex(${this.lastIndex()})]; was the log corrupted, truncated, or lost?`,
        );
      }
      this.committed = index;
    }
  }

  appliedTo(index: number): void {
    if (index === 0) {
      return;
    }
    if (!(index <= this.committed && index >= this.applied)) {
      fail(`applied(${index}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    }
    this.applied = index;
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapshotTo(index: number): void {
    this.unstable.stableSnapshotTo(index);
  }

  /**
   * The term of entry `index`, or TERM_COMPACTED / TERM_UNAVAILABLE. The valid range is
   * [firstIndex - 1, lastIndex]: the entry before the first is compacted, but its term is kept
   * (in the snapshot) for the consistency check of the next append.
   */
  termOrError(index: number): number {
    const unstableTerm = this.unstable.maybeTerm(index);
    if (unstableTerm !== undefined) {
      return unstableTerm;
    }
    if (index + 1 < this.firstIndex()) {
      return TERM_COMPACTED;
    }
    if (index > this.lastIndex()) {
      return TERM_UNAVAILABLE;
    }
    try {
      return this.storage.term(index);
    } catch (error) {
      if (error instanceof CompactedError) {
        return TERM_COMPACTED;
      }
      if (error instanceof UnavailableError) {
        return TERM_UNAVAILABLE;
      }
      throw error;
    }
  }

  /** The term of entry `index`, or 0 if it is not in the log (compacted or past the end). */
  termOrZero(index: number): number {
    const term = this.termOrError(index);
    return term < 0 ? 0 : term;
  }

  matchTerm(index: number, term: number): boolean {
    const ourTerm = this.termOrError(index);
    return ourTerm >= 0 && ourTerm === term;
  }

  /**
   * Whether a log ending with (lastIndex, term) is at least as up to date as ours (§5.4.1): a
   * later last term wins, and with equal terms the longer log wins.
   */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourLastTerm = this.lastTerm();
    return term > ourLastTerm || (term === ourLastTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Leader only: commits `maxIndex` if it holds an entry of the leader's current `term`. Entries of
   * earlier terms are committed only indirectly, by a later entry of the current term (§5.4.2).
   */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Entries from `index` to the end, at most `maxBytes`; throws CompactedError if compacted. */
  entries(index: number, maxBytes: number): readonly Entry[] {
    if (index > this.lastIndex()) {
      return [];
    }
    return this.slice(index, this.lastIndex() + 1, maxBytes);
  }

  /** Every entry from `index` on, without a size limit (tests and diagnostics). */
  allEntries(): readonly Entry[] {
    try {
      return this.entries(this.firstIndex(), Infinity);
    } catch (error) {
      // A racing compaction can only happen with an asynchronous host; retry once.
      if (error instanceof CompactedError) {
        return this.allEntries();
      }
      throw error;
    }
  }

  /** Installs a snapshot received from the leader: the log restarts after it, all committed. */
  restore(snapshot: Snapshot): void {
    this.logger.info('raft: log starts to restore snapshot', {
      index: snapshot.metadata.index,
      term: snapshot.metadata.term,
    });
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }

  /**
   * Entries in [lo, hi), at most `maxBytes` (at least one). Reads stable entries from Storage and
   * the rest from the unstable tail. Throws CompactedError when lo was compacted away.
   */
  slice(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    this.checkOutOfBounds(lo, hi);
    if (lo === hi) {
      return [];
    }
    const offset = this.unstable.offset;
    if (lo >= offset) {
      return limitSize(this.unstable.slice(lo, hi), maxBytes);
    }
    const cut = Math.min(hi, offset);
    let stable: readonly Entry[];
    try {
      stable = this.storage.entries(lo, cut, maxBytes);
    } catch (error) {
      if (error instanceof UnavailableError) {
        // Storage must hold every index below the unstable offset.
        throw new Error(`raft: entries[${lo}:${cut}) is unavailable from storage`, { cause: error });
      }
      throw error;
    }
    if (stable.length === 0 || hi <= offset || stable.length < cut - lo) {
      // Either everything was stable, or storage stopped early at the byte limit.
      return stable;
    }
    let size = 0;
    for (const entry of stable) {
      size += entrySizeBytes(entry);
    }
    const combined = stable.slice();
    for (let index = offset; index < hi; index++) {
      const entry = this.unstable.entries[index - offset]!;
      size += entrySizeBytes(entry);
      if (size > maxBytes) {
        break;
      }
      combined.push(entry);
    }
    return combined;
  }

  private checkOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) fail(`invalid slice ${lo} > ${hi}`);
    const first = this.firstIndex();
    if (lo < first) {
      throw new CompactedError();
    }
    const last = this.lastIndex();
    if (hi > last + 1) fail(`slice[${lo},${hi}) out of bound [${first},${last}]`);
  }
}
