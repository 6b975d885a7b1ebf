/**
 * The group commit queue on its own, with the round boundary (`schedule`) and the flushes driven by
 * the test, so that batching and backpressure are checked exactly.
 */
import { describe, expect, it } from 'vitest';

import { GroupCommitQueue } from '../../src/raft-log/group-commit.js';

interface Write {
  readonly name: string;
  readonly bytes: number;
}

/** A queue whose rounds and flushes the test ends by hand. */
function harness(pendingBytesMax: number) {
  const rounds: (() => void)[] = [];
  const flushes: { names: string[]; settle: (error?: Error) => void }[] = [];
  let backpressures = 0;
  const queue = new GroupCommitQueue<Write>({
    pendingBytesMax,
    schedule: (run) => rounds.push(run),
    flush: (writes) =>
      new Promise<void>((resolve, reject) => {
        flushes.push({
          names: writes.map((write) => write.name),
          settle: (error) => (error === undefined ? resolve() : reject(error)),
        });
      }),
    onBackpressure: () => backpressures++,
  });
  const settled: string[] = [];
  const enqueue = (name: string, bytes = 1): Promise<void> =>
    queue.enqueue({ name, bytes }).then(
      () => void settled.push(name),
      (error: Error) => void settled.push(`${name}: ${error.message}`),
    );
  /** Ends the current round: the scheduled flush starts. */
  const endRound = (): void => {
    const run = rounds.shift();
    expect(run).toBeDefined();
    run!();
  };
  const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  return { queue, rounds, flushes, settled, enqueue, endRound, tick, backpressures: () => backpressures };
}

describe('group commit queue', () => {
  it('flushes the writes of one round together, and collects the next batch during a flush', async () => {
    const h = harness(1000);
    const first = [h.enqueue('a1'), h.enqueue('b1'), h.enqueue('c1')];
    expect(h.rounds).toHaveLength(1);
    h.endRound();
    expect(h.flushes.map((flush) => flush.names)).toEqual([['a1', 'b1', 'c1']]);
    // Writes while the flush is in progress wait for the next one.
    const second = [h.enqueue('a2'), h.enqueue('b2')];
    expect(h.rounds).toHaveLength(0);
    h.flushes[0]!.settle();
    await Promise.all(first);
    expect(h.settled).toEqual(['a1', 'b1', 'c1']);
    expect(h.rounds).toHaveLength(1);
    h.endRound();
    expect(h.flushes[1]!.names).toEqual(['a2', 'b2']);
    h.flushes[1]!.settle();
    await Promise.all(second);
    await h.queue.idle();
    expect(h.settled).toEqual(['a1', 'b1', 'c1', 'a2', 'b2']);
  });

  it('holds writes past pendingBytesMax until the flush in progress takes the pending batch, in call order', async () => {
    const h = harness(10);
    const writes = [h.enqueue('a', 6), h.enqueue('b', 6), h.enqueue('c', 3), h.enqueue('big', 25)];
    // b does not fit beside a; c would, but waits behind b; big waits too.
    expect(h.backpressures()).toBe(3);
    h.endRound();
    expect(h.flushes[0]!.names).toEqual(['a']);
    // The flush took a: b and c now fit, big does not.
    h.flushes[0]!.settle();
    await h.tick();
    h.endRound();
    expect(h.flushes[1]!.names).toEqual(['b', 'c']);
    h.flushes[1]!.settle();
    await h.tick();
    // A write over the limit goes alone.
    h.endRound();
    expect(h.flushes[2]!.names).toEqual(['big']);
    h.flushes[2]!.settle();
    await Promise.all(writes);
    expect(h.settled).toEqual(['a', 'b', 'c', 'big']);
  });

  it('rejects every write of a failed flush, and goes on with the next batch', async () => {
    const h = harness(100);
    const writes = [h.enqueue('a'), h.enqueue('b')];
    h.endRound();
    const next = h.enqueue('c');
    h.flushes[0]!.settle(new Error('disk full'));
    await Promise.all(writes);
    expect(h.settled).toEqual(['a: disk full', 'b: disk full']);
    h.endRound();
    h.flushes[1]!.settle();
    await next;
    expect(h.settled).toEqual(['a: disk full', 'b: disk full', 'c']);
  });

  it('idle() waits for every write queued, waiting or being flushed', async () => {
    const h = harness(2);
    void h.enqueue('a', 2);
    void h.enqueue('b', 2);
    let idle = false;
    const waiting = h.queue.idle().then(() => (idle = true));
    h.endRound();
    h.flushes[0]!.settle();
    await h.tick();
    expect(idle).toBe(false);
    h.endRound();
    h.flushes[1]!.settle();
    await waiting;
    expect(idle).toBe(true);
  });
});
