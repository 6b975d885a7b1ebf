import { describe, expect, it } from 'vitest';
import type { Message, NodeId } from '../../src/raft/index.js';
import type { Scheduler } from '../../src/replica/index.js';
import type { ReplicaTransport } from '../../src/replica/replica-transport.js';
import { SnapshotSender, snapshotHoldSilenceMs } from '../../src/replica/snapshot-sender.js';
import type { ReplicaStateMachine } from '../../src/state-machine/index.js';
import { nullTransport, silentLogger } from './harness.js';

const follower: NodeId = 2;
const snapshotIndex = 100;
const holdAfterSendMs = 30_000;

/**
 * A leader whose state machine is at `snapshotIndex`, sending it to `follower` over a stream that
 * ends when the test says, on a clock the test moves.
 */
function sender() {
  let nowMs = 0;
  let endStream: (succeeded: boolean) => void = () => {};
  const reports: [NodeId, boolean, number | undefined][] = [];
  const scheduler: Scheduler = {
    nowMs: () => nowMs,
    wallClockMs: () => 0,
    setTimeout: () => ({ cancel: () => {} }),
    setInterval: () => ({ cancel: () => {} }),
    setImmediate: (callback) => callback(),
  };
  const stateMachine = {
    openSnapshot: () =>
      Promise.resolve({
        metadata: { index: snapshotIndex, term: 1, confState: { voters: [1, 2, 3] } },
        chunks: async function* () {},
        close: () => Promise.resolve(),
      }),
  } as unknown as ReplicaStateMachine;
  const transport: ReplicaTransport = {
    ...nullTransport,
    sendSnapshotChunks: () =>
      new Promise((resolve, reject) => {
        endStream = (succeeded) => (succeeded ? resolve(undefined) : reject(new Error('stream broke')));
      }),
  };
  const snapshots = new SnapshotSender({
    selfId: 1,
    logger: silentLogger,
    scheduler,
    stateMachine,
    transport: () => transport,
    metrics: { snapshotsSent: { inc: () => {} } } as never,
    reportSnapshot: (to, succeeded, index) => reports.push([to, succeeded, index]),
    leaderConfiguration: () => undefined,
    onStorageFault: () => {},
    holdAfterSendMs,
  });
  const message = { type: 'MsgSnap', from: 1, to: follower } as Message;
  const sending = snapshots.send(message);
  return {
    snapshots,
    reports,
    /** Ends the stream, and waits for the sender to be done with it. */
    async endStream(succeeded: boolean): Promise<void> {
      endStream(succeeded);
      await sending;
    },
    advanceMs(delayMs: number): void {
      nowMs += delayMs;
    },
    /** Once the snapshot is open: the stream has begun. */
    opened: () => new Promise((resolve) => setImmediate(resolve)),
  };
}

describe('the log kept for a follower catching up from a snapshot (SnapshotSender.compactionLimit)', () => {
  it('keeps the entries after the snapshot while it streams, then after what the follower holds', async () => {
    const leader = sender();
    await leader.opened();
    expect(leader.snapshots.compactionLimit(500, () => 10)).toBe(snapshotIndex);
    await leader.endStream(true);
    // The core hears of the snapshot actually sent, which may be newer than the one it asked for.
    expect(leader.reports).toEqual([[follower, true, snapshotIndex]]);
    expect(leader.snapshots.compactionLimit(500, () => 10)).toBe(snapshotIndex);
    expect(leader.snapshots.compactionLimit(500, () => snapshotIndex)).toBe(snapshotIndex);
    expect(leader.snapshots.compactionLimit(500, () => 300)).toBe(300);
    // A compaction that keeps what the follower holds anyway is not held back.
    expect(leader.snapshots.compactionLimit(250, () => 300)).toBe(250);
    // Caught up: the hold goes, whatever the follower does next.
    expect(leader.snapshots.compactionLimit(500, () => 500)).toBe(500);
    expect(leader.snapshots.compactionLimit(600, () => 10)).toBe(600);
  });

  it('lets go of a follower as soon as it has caught up, not at the next compaction', async () => {
    const leader = sender();
    await leader.opened();
    // Streaming: nothing is released, whatever the follower's match.
    leader.snapshots.releaseCaughtUp(
      () => 150,
      () => 400,
    );
    expect(leader.snapshots.compactionLimit(500, () => 10)).toBe(snapshotIndex);
    await leader.endStream(true);
    // Holds the snapshot, not yet the log up to 150.
    leader.snapshots.releaseCaughtUp(
      () => 150,
      () => 120,
    );
    expect(leader.snapshots.compactionLimit(500, () => 120)).toBe(120);
    leader.snapshots.releaseCaughtUp(
      () => 150,
      () => 150,
    );
    // Caught up, then killed: its match stays where it was, and the log compacts past it.
    expect(leader.snapshots.compactionLimit(500, () => 150)).toBe(500);
  });

  it('lets go of a follower that does not catch up in time', async () => {
    const leader = sender();
    await leader.opened();
    // However long the stream takes.
    leader.advanceMs(10 * holdAfterSendMs);
    expect(leader.snapshots.compactionLimit(500, () => 10)).toBe(snapshotIndex);
    await leader.endStream(true);
    leader.advanceMs(holdAfterSendMs - 1);
    expect(leader.snapshots.compactionLimit(500, () => 200)).toBe(200);
    leader.advanceMs(1);
    expect(leader.snapshots.compactionLimit(500, () => 200)).toBe(500);
  });

  it('lets go of a follower silent past the allowed silence after its stream, never while it streams', async () => {
    const leader = sender();
    await leader.opened();
    leader.advanceMs(2 * snapshotHoldSilenceMs);
    // While it streams, silence is expected: the follower's Ready loop is busy.
    expect(
      leader.snapshots.compactionLimit(
        500,
        () => 10,
        () => false,
      ),
    ).toBe(snapshotIndex);
    await leader.endStream(true);
    leader.advanceMs(snapshotHoldSilenceMs - 1);
    expect(
      leader.snapshots.compactionLimit(
        500,
        () => 200,
        () => false,
      ),
    ).toBe(200);
    leader.advanceMs(1);
    // Still talking: kept (until it catches up, or holdAfterSendMs).
    expect(
      leader.snapshots.compactionLimit(
        500,
        () => 200,
        () => true,
      ),
    ).toBe(200);
    // Silent now (killed after catching up part of the way): let go at once.
    expect(
      leader.snapshots.compactionLimit(
        500,
        () => 200,
        () => false,
      ),
    ).toBe(500);
    expect(
      leader.snapshots.compactionLimit(
        500,
        () => 200,
        () => true,
      ),
    ).toBe(500);
  });

  it('lets go when the stream fails, the follower leaves, or this replica no longer leads', async () => {
    const failed = sender();
    await failed.opened();
    await failed.endStream(false);
    expect(failed.reports).toEqual([[follower, false, undefined]]);
    expect(failed.snapshots.compactionLimit(500, () => 10)).toBe(500);

    const deposed = sender();
    await deposed.opened();
    expect(deposed.snapshots.compactionLimit(500, () => undefined)).toBe(500);
    expect(deposed.snapshots.compactionLimit(500, () => 10)).toBe(500);
    await deposed.endStream(true);
  });
});
