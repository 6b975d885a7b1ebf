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

interface SnapshotSent {
  readonly from: string;
  readonly to: number;
  readonly index: number;
}

/**
 * A follower caught up by a snapshot continues from the entries after it: the leader must not
 * compact them away while the snapshot streams and installs, however many entries it applies
 * meanwhile. It did, every `snapshotEntries`: a follower whose snapshot took longer than that
 * found its next entries gone once it had installed it, was sent another, larger snapshot, and
 * so on for as long as the writes went on (the member-directory integration test timed out on
 * it after 34 snapshots to the same follower).
 */
describe('a follower catching up from a snapshot under writes', () => {
  let root: string;
  const running = new Map<number, Replica>();

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-snapshot-catch-up-'));
  });
  afterEach(async () => {
    for (const replica of running.values()) await replica.stop();
    running.clear();
    await rm(root, { recursive: true, force: true });
  });

  it('is sent one snapshot, and the log keeps the entries after it until the follower caught up', async () => {
    const ports = await freePorts(3);
    const members = ports.map((port, position) => memberSpec(position + 1, port));
    const sent: SnapshotSent[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          const line = JSON.parse(chunk.toString()) as Record<string, unknown>;
          if (line['msg'] === 'replica: sending snapshot')
            sent.push({
              from: line['replicaId'] as string,
              to: line['to'] as number,
              index: line['index'] as number,
            });
          done();
        },
      }),
    ) as unknown as Logger;
    const engines = new Map<number, FaultyEngine>();
    const start = async (raftId: number): Promise<Replica> => {
      const self = members[raftId - 1]!;
      const replica = await startReplica(self, members, join(root, self.replicaId), {
        logger: logger.child({ replicaId: self.replicaId }),
        wrapEngine: (inner) => {
          const engine = new FaultyEngine(inner);
          engines.set(raftId, engine);
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
    const leaderId = leader.status().raftId;
    const followerId = [...running.keys()].find((raftId) => raftId !== leaderId)!;
    await running.get(followerId)!.stop();
    running.delete(followerId);

    // The leader compacts its log past everything the follower holds (snapshotEntries is 20, and
    // the log keeps 5 behind each snapshot).
    let written = 0;
    const write = async (count: number): Promise<void> => {
      for (const end = written + count; written < end; written++)
        await writeToGroup(running, `key-${written}`, Buffer.from(`value-${written}`));
    };
    await write(60);
    expect(leader.status().firstIndex, 'the leader compacted its log').toBeGreaterThan(40);
    // The transport keeps messages for a peer that is away for a second (`disconnectedBufferMs`):
    // past that, the follower can only catch up by snapshot.
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    // The leader's snapshot to the follower streams only once the test lets it.
    let releaseStream = (): void => {};
    engines.get(leaderId)!.snapshotIterationGate = new Promise((resolve) => {
      releaseStream = resolve;
    });
    const follower = await start(followerId);
    const first = await waitFor('the leader to start sending a snapshot', () =>
      sent.find((snapshot) => snapshot.to === followerId),
    );
    engines.get(leaderId)!.snapshotIterationGate = undefined;

    // While it streams, the leader applies four times `snapshotEntries`: it would have compacted
    // its log past the snapshot four times, but keeps every entry after it.
    await write(80);
    const held = leader.status();
    expect(held.appliedIndex).toBeGreaterThanOrEqual(first.index + 80);
    expect(held.firstIndex, 'the leader keeps the entries after the snapshot').toBeLessThanOrEqual(
      first.index + 1,
    );

    releaseStream();
    const target = leader.status().commitIndex;
    await waitFor('the follower to catch up', () =>
      follower.status().appliedIndex >= target ? true : undefined,
    );
    expect(
      sent.filter((snapshot) => snapshot.to === followerId),
      'the follower was sent one snapshot',
    ).toEqual([first]);
    for (let index = 0; index < written; index++) {
      const value = await follower.read(`key-${index}`, 'stale');
      expect(value?.toString(), `key-${index}`).toBe(`value-${index}`);
    }

    // Caught up, the follower no longer holds the leader's log back.
    await write(40);
    expect((await servingLeader(running)).status().firstIndex).toBeGreaterThan(target);
  });
});
