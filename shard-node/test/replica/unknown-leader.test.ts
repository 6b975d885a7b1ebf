/**
 * A replica on a node transport answers a leader its member directory does not know yet, at the
 * address the sending node's hello proved, and refuses a removed sender and an unknown sender's
 * votes (docs/decisions/0014-answer-unknown-leaders.md; finding 3 of the node simulator).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetricsRegistry, type Registry } from '@impulse/common';
import type { Message } from '../../src/raft/index.js';
import type { MemberSpec, Replica } from '../../src/replica/index.js';
import { makeMessage } from '../transport/arbitraries.js';
import { metricSum } from '../transport/harness.js';
import { startNode, stopAll, type TestEndpoint, type TestNode } from '../transport/node-harness.js';
import { startReplica, untilLeading, waitFor } from './harness.js';

const member = (raftId: number, node: TestNode): MemberSpec => ({
  raftId,
  replicaId: `g1-r${raftId}`,
  url: `http://127.0.0.1:${7000 + raftId}`,
  peerHost: node.address.host,
  peerPort: node.address.port,
});

describe('a replica and senders its member directory does not know', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** Node A hosts replica 1 of g1, a group of one that leads; node B hosts a test endpoint. */
  async function setUp(): Promise<{ a: TestNode; b: TestNode; replica: Replica; registry: Registry }> {
    const a = await startNode('A');
    const b = await startNode('B');
    cleanups.push(() => stopAll([a, b]));
    const directory = await mkdtemp(join(tmpdir(), 'impulse-unknown-leader-'));
    cleanups.push(() => rm(directory, { recursive: true, force: true }));
    const registry = createMetricsRegistry({ service: 'shard-node', replica: 'g1-r1' });
    const self = member(1, a);
    const replica = await startReplica(self, [self], directory, {
      engine: 'memory',
      registry,
      openTransport: a.transport.openReplica('g1', 1),
    });
    cleanups.push(() => replica.stop());
    await untilLeading(replica);
    return { a, b, replica, registry };
  }

  /** B's endpoint of g1 speaking as `raftId`, reaching replica 1 at A's address. */
  function speakAs(a: TestNode, b: TestNode, raftId: number): Promise<TestEndpoint> {
    return b.open('g1', raftId, new Map([[1, a.address]]));
  }

  const refused = (registry: Registry, reason: string): Promise<number> =>
    metricSum(registry, 'impulse_replica_peer_messages_refused_total', { group: 'g1', reason });

  /** Lets the messages in flight land (loopback, a few event-loop turns). */
  const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 200));

  it('answers an unknown leader at the address its node proved', async () => {
    const { a, b, replica, registry } = await setUp();
    // Raft id 7 is no member: to replica 1 it is a leader added while it was cut off. Node B's
    // address reaches replica 1 only in B's hello: no directory lists it.
    const seven = await speakAs(a, b, 7);
    const term = replica.status().term + 10;
    seven.transport.send([makeMessage({ type: 'MsgApp', from: 7, to: 1, term, index: 0, logTerm: 0 })]);
    const answer = await waitFor('an answer to 7', () =>
      seven.received.find((message: Message) => message.from === 1),
    );
    expect(answer).toMatchObject({ type: 'MsgAppResp', to: 7, term });
    expect(replica.status()).toMatchObject({ role: 'follower', leaderId: 7, term });
    // The directory did not take 7 for a member: the state machine's record is unchanged.
    expect(replica.status().members.map((spec) => spec.raftId)).toEqual([1]);
    expect(await refused(registry, 'unknownSender')).toBe(0);
  });

  it("answers an unknown candidate's vote request at the address its connection proved", async () => {
    const { a, b, replica } = await setUp();
    const seven = await speakAs(a, b, 7);
    const before = replica.status();
    // A pre-vote in the leader's own term: the leader refuses it, and says so to the candidate (a
    // replica cut off while its group changed members must hear a new member's campaign, or a
    // quorum that needs its vote is never reached: node-simulator seed 105).
    seven.transport.send([
      makeMessage({
        type: 'MsgPreVote',
        from: 7,
        to: 1,
        term: before.term,
        index: 1_000,
        logTerm: before.term,
      }),
    ]);
    await waitFor('the answer at the proven address', () =>
      seven.received.find((message: Message) => message.type === 'MsgPreVoteResp') ? true : undefined,
    );
    expect(seven.received.find((message: Message) => message.type === 'MsgPreVoteResp')).toMatchObject({
      from: 1,
      to: 7,
      reject: true,
      term: before.term,
    });
    expect(replica.status()).toMatchObject({ role: 'leader', term: before.term });
  });

  it('refuses a removed sender, even as a leader, and answers nothing', async () => {
    const { a, b, replica, registry } = await setUp();
    await replica.changeMembership({ type: 'addLearner', member: member(5, b) });
    // The core takes the next change once its Ready loop advanced past the first.
    await waitFor('the removal', () =>
      replica.changeMembership({ type: 'remove', raftId: 5 }).then(
        () => true,
        () => undefined,
      ),
    );
    const five = await speakAs(a, b, 5);
    const before = replica.status();
    five.transport.send([
      makeMessage({ type: 'MsgHeartbeat', from: 5, to: 1, term: before.term + 10, commit: 0 }),
    ]);
    await waitFor('the refusal', async () =>
      (await refused(registry, 'removedSender')) === 1 ? true : undefined,
    );
    await settle();
    expect(five.received).toEqual([]);
    expect(replica.status()).toMatchObject({ role: 'leader', term: before.term });
    // Nor may it come back under its old id.
    await expect(replica.changeMembership({ type: 'addLearner', member: member(5, b) })).rejects.toThrow(
      /was removed from this group/,
    );
  });
});
