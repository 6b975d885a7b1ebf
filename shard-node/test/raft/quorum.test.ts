import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JointConfig, MajorityConfig } from '../../src/raft/quorum.js';

const acks =
  (indexes: Record<number, number>) =>
  (id: number): number | undefined =>
    indexes[id];
const votes = (v: Record<number, boolean>): Map<number, boolean> =>
  new Map(Object.entries(v).map(([k, b]) => [Number(k), b]));

describe('MajorityConfig', () => {
  it('commits the highest index held by a majority', () => {
    const c = new MajorityConfig([1, 2, 3]);
    expect(c.committedIndex(acks({ 1: 5, 2: 3, 3: 1 }))).toBe(3);
    expect(c.committedIndex(acks({ 1: 5 }))).toBe(0);
    expect(c.committedIndex(acks({ 1: 5, 2: 5 }))).toBe(5);
    expect(new MajorityConfig([1, 2, 3, 4]).committedIndex(acks({ 1: 4, 2: 3, 3: 2, 4: 1 }))).toBe(2);
    expect(new MajorityConfig().committedIndex(acks({}))).toBe(Infinity);
  });

  it('decides votes', () => {
    const c = new MajorityConfig([1, 2, 3]);
    expect(c.voteResult(votes({ 1: true }))).toBe('pending');
    expect(c.voteResult(votes({ 1: true, 2: true }))).toBe('won');
    expect(c.voteResult(votes({ 1: true, 2: false }))).toBe('pending');
    expect(c.voteResult(votes({ 1: false, 2: false }))).toBe('lost');
    expect(c.voteResult(votes({ 4: true, 5: true }))).toBe('pending');
    expect(new MajorityConfig().voteResult(votes({}))).toBe('won');
  });

  it('commits an index that a majority holds, and nothing higher (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 7 }), (indexes) => {
        const c = new MajorityConfig(indexes.map((_, i) => i + 1));
        const committed = c.committedIndex((id) => indexes[id - 1]);
        const holding = indexes.filter((i) => i >= committed).length;
        const holdingMore = indexes.filter((i) => i >= committed + 1).length;
        const quorum = Math.floor(indexes.length / 2) + 1;
        expect(holding).toBeGreaterThanOrEqual(quorum);
        expect(holdingMore).toBeLessThan(quorum);
      }),
    );
  });
});

describe('JointConfig', () => {
  const joint = new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([3, 4, 5]));

  it('commits the minimum of both majorities', () => {
    expect(joint.committedIndex(acks({ 1: 9, 2: 9, 3: 4, 4: 2, 5: 1 }))).toBe(2);
    expect(joint.committedIndex(acks({ 1: 9, 2: 9, 4: 8, 5: 8 }))).toBe(8);
  });

  it('needs both majorities to win, and loses if either loses', () => {
    expect(joint.voteResult(votes({ 1: true, 2: true }))).toBe('pending');
    expect(joint.voteResult(votes({ 1: true, 2: true, 4: true, 5: true }))).toBe('won');
    expect(joint.voteResult(votes({ 1: true, 2: true, 4: false, 5: false }))).toBe('lost');
    expect(joint.voteResult(votes({ 1: false, 2: false, 4: true, 5: true }))).toBe('lost');
  });

  it('behaves as the incoming majority when not joint', () => {
    const simple = new JointConfig(new MajorityConfig([1, 2, 3]));
    expect(simple.isJoint()).toBe(false);
    expect(simple.committedIndex(acks({ 1: 3, 2: 2 }))).toBe(2);
    expect(simple.voteResult(votes({ 1: true, 3: true }))).toBe('won');
    expect(simple.toString()).toBe('(1 2 3)');
    expect(joint.toString()).toBe('(1 2 3)&&(3 4 5)');
  });
});
