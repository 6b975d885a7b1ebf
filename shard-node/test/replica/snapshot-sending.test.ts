import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '@impulse/common';
import type { Replica } from '../../src/replica/index.js';
import { FaultyEngine } from '../state-machine/faulty-engine.js';
import {
  freePorts,
  memberSpec,
  servingLeader,
  startReplica,
  untilLeading,
  waitFor,
  writeToGroup,
} from './harness.js';

/**
 * Issue 11, item 4: a leader whose engine fails to open the snapshot a follower needs. The failure
 * must be handled (never an unhandled rejection, which ends the process), the snapshot reported
 * as failed to the Raft core, and the follower must catch up all the same.
 */
describe('sending a snapshot when the engine cannot open one', () => {
  let root: string;
  const running = new Map<number, Replica>();

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-snapshot-sending-'));
  });
  afterEach(async () => {
    for (const replica of running.values()) await replica.stop();
    running.clear();
    await rm(root, { recursive: true, force: true });
  });

  it('reports the snapshot failed, and the follower catches up from the next attempt', async () => {
    const ports = await freePorts(3);
    const members = ports.map((port, position) => memberSpec(position + 1, port));
    // One snapshot, whichever replica opens it first, fails to open.
    let snapshotFailuresLeft = 0;
    const failSnapshot = (): Error | undefined => {
      if (snapshotFailuresLeft === 0) return undefined;
      snapshotFailuresLeft--;
      return new Error('IO error: too many open files (planted)');
    };
    const lines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    ) as unknown as Logger;
    const start = async (raftId: number): Promise<Replica> => {
      const self = members[raftId - 1]!;
      const replica = await startReplica(self, members, join(root, self.replicaId), {
        logger: logger.child({ replicaId: self.replicaId }),
        wrapEngine: (inner) => {
          const engine = new FaultyEngine(inner);
          engine.snapshotError = failSnapshot;
          return engine;
        },
      });
      running.set(raftId, replica);
      return replica;
    };
    for (const member of members) await start(member.raftId);
    const leader = await waitFor('a leader', () =>
      [...running.values()].find((replica) => replica.status().role === 'leader'),
    );
    await untilLeading(leader);
    const followerId = [...running.keys()].find((raftId) => running.get(raftId) !== leader)!;
    await running.get(followerId)!.stop();
    running.delete(followerId);

    // From here the first snapshot opened fails, whenever the leader first tries to send one: while
    // the follower is down, or once it is back.
    snapshotFailuresLeft = 1;
    // Enough writes for the leader to compact its log past everything the follower holds.
    const written = 80;
    for (let index = 0; index < written; index++)
      await writeToGroup(running, `key-${index}`, Buffer.from(`value-${index}`));
    const target = (await servingLeader(running)).status().commitIndex;
    expect(
      (await servingLeader(running)).status().firstIndex,
      'the leader compacted its log',
    ).toBeGreaterThan(40);
    // The transport keeps messages for a peer that is away for a second (`disconnectedBufferMs`),
    // and hands them to its next connection: past that, the follower can only catch up by snapshot.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const follower = await start(followerId);

    // Caught up by a snapshot (its log starts after it), not by entries.
    await waitFor('the follower caught up by snapshot', () => {
      const status = follower.status();
      return status.appliedIndex >= target && status.snapshotIndex > 40 ? true : undefined;
    });
    expect(snapshotFailuresLeft, 'a snapshot failed to open').toBe(0);
    expect(lines.some((line) => line.includes('replica: sending snapshot failed'))).toBe(true);
    for (let index = 0; index < written; index++) {
      const value = await follower.read(`key-${index}`, 'stale');
      expect(value?.toString(), `key-${index}`).toBe(`value-${index}`);
    }
    // The group still serves, and every replica is healthy again (a leader whose engine failed is
    // rebuilt from its successor's snapshot).
    await writeToGroup(running, 'after', Buffer.from('x'));
    await waitFor('every replica healthy', () =>
      [...running.values()].every((replica) => replica.fault === undefined) ? true : undefined,
    );
  });
});
