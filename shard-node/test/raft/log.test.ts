import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/raft/config.js';
import { CompactedError } from '../../src/raft/errors.js';
import { RaftLog, TERM_COMPACTED, TERM_UNAVAILABLE } from '../../src/raft/log.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import type { Entry } from '../../src/raft/types.js';

const entry = (index: number, term: number, data = ''): Entry => ({
  index,
  term,
  type: 'normal',
  data: new TextEncoder().encode(data),
});
const ids = (entries: readonly Entry[]): string => entries.map((e) => `${e.term}/${e.index}`).join(' ');

function logWith(stable: Entry[], maxCommitted = Infinity): RaftLog {
  const storage = new MemoryStorage();
  storage.append(stable);
  return new RaftLog(storage, silentLogger, maxCommitted);
}

describe('RaftLog', () => {
  it('appends after a matching entry and rejects a mismatch (§5.3 consistency check)', () => {
    const log = logWith([entry(1, 1), entry(2, 2), entry(3, 3)]);
    expect(log.maybeAppend(3, 2, 3, [entry(4, 4)])).toBeUndefined();
    expect(log.maybeAppend(3, 3, 3, [entry(4, 4)])).toBe(4);
    expect(log.lastIndex()).toBe(4);
    expect(log.committed).toBe(3);
  });

  it('truncates a conflicting uncommitted suffix and never commits past what matched', () => {
    const log = logWith([entry(1, 1), entry(2, 2), entry(3, 3)]);
    expect(log.maybeAppend(1, 1, 10, [entry(2, 4)])).toBe(2);
    expect(ids(log.allEntries())).toBe('1/1 4/2');
    expect(log.committed).toBe(2);
  });

  it('ignores entries it already has (duplicates, reordered messages)', () => {
    const log = logWith([entry(1, 1), entry(2, 2), entry(3, 3)]);
    expect(log.maybeAppend(0, 0, 0, [entry(1, 1), entry(2, 2)])).toBe(2);
    expect(log.lastIndex()).toBe(3);
    expect(log.unstable.entries).toHaveLength(0);
  });

  it('asserts that a committed entry is never overwritten', () => {
    const log = logWith([entry(1, 1), entry(2, 2), entry(3, 3)]);
    log.commitTo(2);
    expect(() => log.maybeAppend(1, 1, 2, [entry(2, 5)])).toThrow(/conflicts with committed/);
  });

  it('finds conflicts by term for fast backtracking', () => {
    const log = logWith([entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2), entry(5, 4), entry(6, 4)]);
    expect(log.findConflictByTerm(6, 3)).toEqual({ index: 4, term: 2 });
    expect(log.findConflictByTerm(6, 4)).toEqual({ index: 6, term: 4 });
    expect(log.findConflictByTerm(6, 1)).toEqual({ index: 2, term: 1 });
    expect(log.findConflictByTerm(6, 0)).toEqual({ index: 0, term: 0 });
  });

  it('reports compacted and unavailable terms, keeping the term before the first entry', () => {
    const storage = new MemoryStorage();
    storage.append([entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)]);
    storage.compact(2);
    const log = new RaftLog(storage, silentLogger, Infinity);
    expect(log.firstIndex()).toBe(3);
    expect(log.termOrError(1)).toBe(TERM_COMPACTED);
    expect(log.termOrError(2)).toBe(1);
    expect(log.termOrError(5)).toBe(TERM_UNAVAILABLE);
    expect(() => log.entries(2, Infinity)).toThrow(CompactedError);
  });

  it('compares logs by last term, then length (§5.4.1)', () => {
    const log = logWith([entry(1, 1), entry(2, 2), entry(3, 2)]);
    expect(log.isUpToDate(3, 2)).toBe(true);
    expect(log.isUpToDate(2, 2)).toBe(false);
    expect(log.isUpToDate(1, 3)).toBe(true);
    expect(log.isUpToDate(5, 1)).toBe(false);
  });

  it('commits only entries of the given term', () => {
    const log = logWith([entry(1, 1), entry(2, 2)]);
    expect(log.maybeCommit(1, 2)).toBe(false);
    expect(log.maybeCommit(2, 2)).toBe(true);
    expect(log.committed).toBe(2);
  });

  it('combines stable and unstable entries under a byte limit', () => {
    const log = logWith([entry(1, 1, 'aaaa'), entry(2, 1, 'bbbb')]);
    log.append([entry(3, 1, 'cccc'), entry(4, 1, 'dddd')]);
    expect(ids(log.slice(1, 5, Infinity))).toBe('1/1 1/2 1/3 1/4');
    // Each entry counts 4 bytes of data plus a 16-byte header.
    expect(ids(log.slice(1, 5, 59))).toBe('1/1 1/2');
    expect(ids(log.slice(1, 5, 60))).toBe('1/1 1/2 1/3');
    expect(ids(log.slice(2, 5, 40))).toBe('1/2 1/3');
    expect(ids(log.slice(3, 5, 1))).toBe('1/3');
  });

  it('hands out committed entries in bounded batches', () => {
    const log = logWith([entry(1, 1, 'aaaa'), entry(2, 1, 'bbbb'), entry(3, 1, 'cccc')], 45);
    log.commitTo(3);
    expect(ids(log.nextCommittedEntries())).toBe('1/1 1/2');
    log.appliedTo(2);
    expect(ids(log.nextCommittedEntries())).toBe('1/3');
    log.appliedTo(3);
    expect(log.hasNextCommittedEntries()).toBe(false);
  });

  it('restores from a snapshot: everything up to it is committed', () => {
    const log = logWith([entry(1, 1)]);
    log.restore({
      metadata: {
        index: 10,
        term: 3,
        confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      },
      data: new Uint8Array(0),
    });
    expect(log.committed).toBe(10);
    expect(log.firstIndex()).toBe(11);
    expect(log.lastIndex()).toBe(10);
    expect(log.lastTerm()).toBe(3);
    expect(log.hasPendingSnapshot()).toBe(true);
    expect(log.nextCommittedEntries()).toHaveLength(0);
  });
});
