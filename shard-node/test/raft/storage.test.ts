import { describe, expect, it } from 'vitest';
import {
  CompactedError,
  MemoryStorage,
  SnapshotOutOfDateError,
  UnavailableError,
  type Entry,
} from '../../src/raft/index.js';

const entry = (index: number, term: number): Entry => ({
  index,
  term,
  type: 'normal',
  data: new Uint8Array(4),
});
const ids = (entries: readonly Entry[]): string => entries.map((e) => `${e.term}/${e.index}`).join(' ');

function storageWith(entries: Entry[]): MemoryStorage {
  const storage = new MemoryStorage();
  storage.append(entries);
  return storage;
}

describe('MemoryStorage', () => {
  it('serves entries and terms with typed errors outside the range', () => {
    const s = storageWith([entry(1, 1), entry(2, 1), entry(3, 2)]);
    expect(s.firstIndex()).toBe(1);
    expect(s.lastIndex()).toBe(3);
    expect(ids(s.entries(1, 4, Infinity))).toBe('1/1 1/2 2/3');
    expect(s.term(0)).toBe(0);
    expect(s.term(3)).toBe(2);
    expect(() => s.term(4)).toThrow(UnavailableError);
    expect(() => s.entries(0, 2, Infinity)).toThrow(CompactedError);
    expect(() => s.entries(1, 5, Infinity)).toThrow(/out of bound/);
  });

  it('limits entries by bytes but returns at least one', () => {
    const s = storageWith([entry(1, 1), entry(2, 1), entry(3, 2)]);
    expect(s.entries(1, 4, 0)).toHaveLength(1);
    expect(s.entries(1, 4, 40)).toHaveLength(2);
  });

  it('truncates a conflicting tail on append and skips compacted entries', () => {
    const s = storageWith([entry(1, 1), entry(2, 1), entry(3, 1)]);
    s.append([entry(2, 2)]);
    expect(ids(s.entries(1, 3, Infinity))).toBe('1/1 2/2');
    s.compact(2);
    s.append([entry(1, 1), entry(2, 2), entry(3, 3)]);
    expect(s.firstIndex()).toBe(3);
    expect(ids(s.entries(3, 4, Infinity))).toBe('3/3');
    expect(() => s.append([entry(5, 3)])).toThrow(/missing log entry/);
  });

  it('compacts, keeping the term of the compacted index', () => {
    const s = storageWith([entry(1, 1), entry(2, 2), entry(3, 3)]);
    s.compact(2);
    expect(s.firstIndex()).toBe(3);
    expect(s.term(2)).toBe(2);
    expect(() => s.term(1)).toThrow(CompactedError);
    expect(() => s.compact(2)).toThrow(CompactedError);
    expect(() => s.compact(9)).toThrow(/out of bound/);
  });

  it('creates and applies snapshots, refusing stale ones', () => {
    const s = storageWith([entry(1, 1), entry(2, 2), entry(3, 3)]);
    const cs = { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    const snap = s.createSnapshot(2, cs, new Uint8Array([7]));
    expect(snap.metadata).toEqual({ index: 2, term: 2, confState: cs });
    expect(() => s.createSnapshot(2, cs, new Uint8Array())).toThrow(SnapshotOutOfDateError);

    const other = new MemoryStorage();
    other.applySnapshot(snap);
    expect(other.firstIndex()).toBe(3);
    expect(other.lastIndex()).toBe(2);
    expect(other.initialState().confState).toEqual(cs);
    expect(() => other.applySnapshot(snap)).toThrow(SnapshotOutOfDateError);
    expect(() => other.entries(3, 3, Infinity)).toThrow(UnavailableError);
  });
});
