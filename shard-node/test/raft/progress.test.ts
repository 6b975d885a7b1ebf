import { describe, expect, it } from 'vitest';
import { Inflights } from '../../src/raft/inflights.js';
import { Progress } from '../../src/raft/progress.js';

const progress = (match: number, next: number): Progress =>
  new Progress({ match, next, inflights: new Inflights(4, 0), isLearner: false });

describe('Progress', () => {
  it('pauses a probe until the follower answers', () => {
    const p = progress(0, 5);
    expect(p.isPaused()).toBe(false);
    p.updateOnEntriesSend(1, 1, 5);
    expect(p.isPaused()).toBe(true);
    expect(p.next).toBe(5);
    expect(p.maybeUpdate(5)).toBe(true);
    expect(p.isPaused()).toBe(false);
  });

  it('advances next optimistically in replicate state until the window is full', () => {
    const p = progress(4, 5);
    p.becomeReplicate();
    for (let i = 0; i < 4; i++) {
      p.updateOnEntriesSend(2, 2, p.next);
    }
    expect(p.next).toBe(13);
    expect(p.isPaused()).toBe(true);
    p.maybeUpdate(8);
    p.inflights.freeLE(8);
    expect(p.isPaused()).toBe(false);
  });

  it('ignores stale rejections and backs off with the hint in probe state', () => {
    const p = progress(0, 10);
    expect(p.maybeDecrTo(5, 4)).toBe(false);
    expect(p.maybeDecrTo(9, 3)).toBe(true);
    expect(p.next).toBe(4);
    // The hint never takes next below match + 1, nor above the rejected index.
    const q = progress(2, 10);
    expect(q.maybeDecrTo(9, 0)).toBe(true);
    expect(q.next).toBe(3);
    const r = progress(0, 10);
    expect(r.maybeDecrTo(9, 100)).toBe(true);
    expect(r.next).toBe(9);
  });

  it('falls back to match + 1 on a rejection in replicate state', () => {
    const p = progress(5, 6);
    p.becomeReplicate();
    p.updateOnEntriesSend(3, 3, 6);
    expect(p.maybeDecrTo(5, 0)).toBe(false);
    expect(p.maybeDecrTo(7, 0)).toBe(true);
    expect(p.next).toBe(6);
  });

  it('resumes after a snapshot from the snapshot index', () => {
    const p = progress(3, 4);
    p.becomeSnapshot(10);
    expect(p.isPaused()).toBe(true);
    p.becomeProbe();
    expect(p.next).toBe(11);
    expect(p.pendingSnapshot).toBe(0);
  });

  it('never moves match backwards', () => {
    const p = progress(5, 6);
    expect(p.maybeUpdate(3)).toBe(false);
    expect(p.match).toBe(5);
  });
});
