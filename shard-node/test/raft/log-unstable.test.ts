import { describe, expect, it } from 'vitest';
import { UnstableLog } from '../../src/raft/log-unstable.js';
import type { Entry, Snapshot } from '../../src/raft/types.js';

const entry = (index: number, term: number): Entry => ({
  index,
  term,
  type: 'normal',
  data: new Uint8Array(0),
});
const snapshot = (index: number, term: number): Snapshot => ({
  metadata: {
    index,
    term,
    confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
  },
  data: new Uint8Array(0),
});
const terms = (u: UnstableLog): string => u.entries.map((e) => `${e.term}/${e.index}`).join(' ');

describe('UnstableLog', () => {
  it('knows first and last index only through a snapshot or entries', () => {
    const u = new UnstableLog(5);
    expect(u.maybeFirstIndex()).toBeUndefined();
    expect(u.maybeLastIndex()).toBeUndefined();
    u.truncateAndAppend([entry(5, 1)]);
    expect(u.maybeFirstIndex()).toBeUndefined();
    expect(u.maybeLastIndex()).toBe(5);
    u.restore(snapshot(4, 1));
    expect(u.maybeFirstIndex()).toBe(5);
    expect(u.maybeLastIndex()).toBe(4);
  });

  it('returns terms of entries and of the snapshot index only', () => {
    const u = new UnstableLog(5);
    u.snapshot = snapshot(4, 1);
    u.truncateAndAppend([entry(5, 2), entry(6, 3)]);
    expect(u.maybeTerm(4)).toBe(1);
    expect(u.maybeTerm(5)).toBe(2);
    expect(u.maybeTerm(6)).toBe(3);
    expect(u.maybeTerm(3)).toBeUndefined();
    expect(u.maybeTerm(7)).toBeUndefined();
  });

  it('appends contiguously, replaces everything, or truncates in the middle', () => {
    const u = new UnstableLog(5);
    u.truncateAndAppend([entry(5, 1), entry(6, 1)]);
    u.truncateAndAppend([entry(7, 1)]);
    expect(terms(u)).toBe('1/5 1/6 1/7');
    u.truncateAndAppend([entry(6, 2)]);
    expect(terms(u)).toBe('1/5 2/6');
    u.truncateAndAppend([entry(4, 3), entry(5, 3)]);
    expect(u.offset).toBe(4);
    expect(terms(u)).toBe('3/4 3/5');
  });

  it('stabilizes only matching terms (a stale report after a truncation is ignored)', () => {
    const u = new UnstableLog(5);
    u.truncateAndAppend([entry(5, 1), entry(6, 1), entry(7, 1)]);
    u.stableTo(6, 2);
    expect(u.offset).toBe(5);
    u.stableTo(6, 1);
    expect(u.offset).toBe(7);
    expect(terms(u)).toBe('1/7');
    u.stableTo(4, 1);
    expect(u.offset).toBe(7);
  });

  it('drops the snapshot once it is stable', () => {
    const u = new UnstableLog(1);
    u.restore(snapshot(10, 2));
    u.stableSnapshotTo(9);
    expect(u.snapshot).toBeDefined();
    u.stableSnapshotTo(10);
    expect(u.snapshot).toBeUndefined();
    expect(u.offset).toBe(11);
  });

  it('asserts slice bounds', () => {
    const u = new UnstableLog(5);
    u.truncateAndAppend([entry(5, 1), entry(6, 1)]);
    expect(u.slice(5, 7)).toHaveLength(2);
    expect(() => u.slice(4, 6)).toThrow(/out of bound/);
    expect(() => u.slice(5, 8)).toThrow(/out of bound/);
    expect(() => u.slice(6, 5)).toThrow(/invalid/);
  });
});
