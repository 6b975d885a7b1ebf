/**
 * Tests that check the rules of the Raft paper ("In Search of an Understandable Consensus
 * Algorithm", Ongaro and Ousterhout, 2014) and of Ongaro's thesis ("Consensus: Bridging Theory and
 * Practice", 2014), each citing the section it checks.
 */
import { describe, expect, it } from 'vitest';
import {
  createSeededRandom,
  MemoryStorage,
  RawNode,
  type Entry,
  type Message,
} from '../../src/raft/index.js';
import { bytes, Cluster, text } from './harness/cluster.js';

const message = (fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to' | 'term'>): Message => ({
  logTerm: 0,
  index: 0,
  entries: [],
  commit: 0,
  reject: false,
  rejectHint: 0,
  context: new Uint8Array(),
  ...fields,
});
const entry = (index: number, term: number, data = ''): Entry => ({
  index,
  term,
  type: 'normal',
  data: bytes(data),
});
const appliedText = (cluster: Cluster, id: number): string[] =>
  cluster.get(id).applied.map((e) => text(e.data));

/** A single node of a 3-voter group whose storage already holds `entries` at `term`. */
function nodeWithLog(
  id: number,
  entries: Entry[],
  term: number,
  options: { preVote?: boolean } = {},
): RawNode {
  const storage = new MemoryStorage({
    confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
  });
  storage.append(entries);
  storage.setHardState({ term, vote: 0, commit: 0 });
  return new RawNode({ id, storage, random: createSeededRandom(id), ...options });
}

describe('§5.1 terms', () => {
  it('a node of any role seeing a higher term adopts it and becomes a follower', () => {
    for (const role of ['follower', 'candidate', 'leader'] as const) {
      const cluster = new Cluster([1, 2, 3]);
      if (role === 'candidate') cluster.raw(1).campaign();
      if (role === 'leader') cluster.elect(1);
      expect(cluster.raw(1).status().role).toBe(role);
      cluster.raw(1).step(message({ type: 'MsgApp', from: 2, to: 1, term: 5 }));
      expect(cluster.raw(1).status()).toMatchObject({ role: 'follower', term: 5, leaderId: 2 });
    }
  });

  it('a node ignores requests with a stale term', () => {
    const follower = nodeWithLog(2, [entry(1, 1), entry(2, 2)], 2);
    const before = follower.status();
    follower.step(
      message({ type: 'MsgApp', from: 1, to: 2, term: 1, index: 2, logTerm: 2, entries: [entry(3, 1)] }),
    );
    follower.step(message({ type: 'MsgVote', from: 3, to: 2, term: 1, index: 9, logTerm: 9 }));
    follower.step(message({ type: 'MsgHeartbeat', from: 1, to: 2, term: 1, commit: 2 }));
    expect(follower.status()).toEqual(before);
    // The stale appends are answered with the current term, so that the old leader steps down;
    // the stale vote is not answered at all.
    const answers = follower.ready().messages.map((m) => `${m.type}->${m.to}@${m.term}`);
    expect(answers).toEqual(['MsgAppResp->1@2', 'MsgAppResp->1@2']);
  });
});

describe('§5.2 leader election', () => {
  it('nodes start as followers', () => {
    const cluster = new Cluster([1, 2, 3]);
    for (const id of [1, 2, 3]) expect(cluster.raw(id).status()).toMatchObject({ role: 'follower', term: 0 });
  });

  it('a follower that hears nothing for an election timeout starts an election', () => {
    const cluster = new Cluster([1, 2, 3], { electionTimeoutTicks: 10 });
    cluster.tick(1, 9);
    expect(cluster.raw(1).status().role).toBe('follower');
    cluster.tick(1, 11);
    expect(cluster.raw(1).status()).toMatchObject({ role: 'candidate', term: 1, vote: 1 });
  });

  it('election timeouts are randomized within [T, 2T) so that split votes resolve', () => {
    const timeouts = new Set<number>();
    for (let id = 1; id <= 20; id++) {
      const node = new RawNode({
        id,
        storage: new MemoryStorage(),
        electionTimeoutTicks: 10,
        random: createSeededRandom(id),
      });
      const timeout = node.raft.randomizedElectionTimeout;
      expect(timeout).toBeGreaterThanOrEqual(10);
      expect(timeout).toBeLessThan(20);
      timeouts.add(timeout);
    }
    expect(timeouts.size).toBeGreaterThan(3);
  });

  it('a candidate that wins a majority becomes leader and sends heartbeats every heartbeat timeout', () => {
    const cluster = new Cluster([1, 2, 3, 4, 5], { heartbeatTicks: 2 });
    cluster.isolate(4);
    cluster.isolate(5);
    cluster.elect(1);
    expect(cluster.raw(1).status().role).toBe('leader');
    cluster.queue = [];
    cluster.tick(1);
    cluster.processReady(1);
    expect(cluster.queue.filter((m) => m.type === 'MsgHeartbeat')).toHaveLength(0);
    cluster.tick(1);
    cluster.processReady(1);
    expect(cluster.queue.filter((m) => m.type === 'MsgHeartbeat').map((m) => m.to)).toEqual([2, 3, 4, 5]);
  });

  it('a candidate without a majority stays candidate; with a majority of rejections it steps down', () => {
    const cluster = new Cluster([1, 2, 3, 4, 5]);
    cluster.raw(1).campaign();
    cluster.raw(1).step(message({ type: 'MsgVoteResp', from: 2, to: 1, term: 1 }));
    expect(cluster.raw(1).status().role).toBe('candidate');
    for (const from of [3, 4, 5]) {
      cluster.raw(1).step(message({ type: 'MsgVoteResp', from, to: 1, term: 1, reject: true }));
    }
    expect(cluster.raw(1).status()).toMatchObject({ role: 'follower', term: 1 });
  });

  it('each node votes for at most one candidate per term, first come first served', () => {
    const cluster = new Cluster([1, 2, 3]);
    const voter = cluster.raw(3);
    voter.step(message({ type: 'MsgVote', from: 1, to: 3, term: 1 }));
    voter.step(message({ type: 'MsgVote', from: 2, to: 3, term: 1 }));
    // A repeated request from the same candidate is granted again (its response may have been lost).
    voter.step(message({ type: 'MsgVote', from: 1, to: 3, term: 1 }));
    const responses = voter.ready().messages.map((m) => `${m.to}:${m.reject ? 'no' : 'yes'}`);
    expect(responses).toEqual(['1:yes', '2:no', '1:yes']);
    expect(voter.status().vote).toBe(1);
  });

  it('a candidate that hears from a leader of its term becomes a follower', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.raw(1).campaign();
    cluster.raw(1).step(message({ type: 'MsgApp', from: 2, to: 1, term: 1 }));
    expect(cluster.raw(1).status()).toMatchObject({ role: 'follower', leaderId: 2, term: 1 });
  });
});

describe('§5.3 log replication', () => {
  it('the leader commits an entry once a majority stored it, and followers learn the commit index', () => {
    const cluster = new Cluster([1, 2, 3, 4, 5]);
    cluster.elect(1);
    cluster.isolate(4);
    cluster.isolate(5);
    cluster.raw(1).propose(bytes('x'));
    cluster.stabilize();
    for (const id of [1, 2, 3]) expect(appliedText(cluster, id)).toEqual(['x']);
    expect(appliedText(cluster, 4)).toEqual([]);
  });

  it('without a majority nothing commits', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.isolate(1);
    cluster.raw(1).propose(bytes('x'));
    cluster.stabilize();
    expect(cluster.raw(1).status().commit).toBe(1);
  });

  it('a follower rejects an append whose preceding entry does not match (consistency check)', () => {
    const follower = nodeWithLog(2, [entry(1, 1), entry(2, 1)], 2);
    follower.step(
      message({ type: 'MsgApp', from: 1, to: 2, term: 2, index: 2, logTerm: 2, entries: [entry(3, 2)] }),
    );
    const [response] = follower.ready().messages;
    expect(response).toMatchObject({ type: 'MsgAppResp', reject: true, index: 2, rejectHint: 2, logTerm: 1 });
  });

  it('the leader forces followers to duplicate its log, overwriting conflicting entries (Figure 7)', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.isolate(1);
    for (const data of ['stale1', 'stale2', 'stale3']) cluster.raw(1).propose(bytes(data));
    cluster.stabilize();
    cluster.raw(2).campaign();
    cluster.stabilize();
    cluster.raw(2).propose(bytes('fresh'));
    cluster.stabilize();
    cluster.heal();
    cluster.tick(2);
    cluster.stabilize();
    for (const id of [1, 2, 3]) {
      const log = cluster.get(id).storage;
      const entries = log.entries(log.firstIndex(), log.lastIndex() + 1, Infinity);
      expect(entries.map((e) => text(e.data))).toEqual(['', '', 'fresh']);
      expect(appliedText(cluster, id)).toEqual(['fresh']);
    }
  });

  it('committing an entry commits all preceding entries', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).proposeBatch([bytes('a'), bytes('b'), bytes('c')]);
    cluster.stabilize();
    expect(appliedText(cluster, 3)).toEqual(['a', 'b', 'c']);
  });
});

describe('§5.4 safety', () => {
  it('§5.4.1 a voter denies its vote to a candidate whose log is less up to date', () => {
    const voter = nodeWithLog(3, [entry(1, 1), entry(2, 2)], 2);
    voter.step(message({ type: 'MsgVote', from: 1, to: 3, term: 3, index: 5, logTerm: 1 }));
    voter.step(message({ type: 'MsgVote', from: 2, to: 3, term: 3, index: 1, logTerm: 2 }));
    voter.step(message({ type: 'MsgVote', from: 1, to: 3, term: 4, index: 2, logTerm: 2 }));
    const answers = voter.ready().messages.map((m) => `${m.to}@${m.term}:${m.reject ? 'no' : 'yes'}`);
    expect(answers).toEqual(['1@3:no', '2@3:no', '1@4:yes']);
  });

  it('§5.4.2 a leader does not commit an entry of an earlier term by counting replicas (Figure 8)', () => {
    const leader = nodeWithLog(1, [entry(1, 1), entry(2, 1)], 1);
    leader.campaign();
    leader.step(message({ type: 'MsgVoteResp', from: 2, to: 1, term: 2 }));
    expect(leader.status().role).toBe('leader');
    // Node 2 acknowledges index 2 (term 1): a majority holds it, but it is not of term 2.
    leader.step(message({ type: 'MsgAppResp', from: 2, to: 1, term: 2, index: 2 }));
    expect(leader.status().commit).toBe(0);
    // The leader's own no-op (index 3, term 2) reaching a majority commits everything before it.
    leader.step(message({ type: 'MsgAppResp', from: 2, to: 1, term: 2, index: 3 }));
    expect(leader.status().commit).toBe(3);
  });

  it('§5.4.3 a new leader has every committed entry (no committed entry is lost across elections)', () => {
    const cluster = new Cluster([1, 2, 3, 4, 5], { seed: 3 });
    let leader = 1;
    cluster.elect(leader);
    const committed: string[] = [];
    for (let round = 0; round < 5; round++) {
      cluster.raw(leader).propose(bytes(`v${round}`));
      cluster.stabilize();
      committed.push(`v${round}`);
      // The leader is cut off; another node wins the next term and must hold every committed entry.
      cluster.isolate(leader);
      const next = (leader % 5) + 1;
      cluster.raw(next).campaign();
      cluster.stabilize();
      expect(cluster.raw(next).status().role).toBe('leader');
      leader = next;
      cluster.heal();
      cluster.tick(leader);
      cluster.stabilize();
      expect(cluster.leaderIds()).toEqual([leader]);
    }
    for (const id of [1, 2, 3, 4, 5]) expect(appliedText(cluster, id)).toEqual(committed);
  });
});

describe('§6 cluster membership changes (thesis §4)', () => {
  it('§4.1 only one configuration change may be pending at a time', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).proposeConfChange({ type: 'addLearnerNode', nodeId: 4 });
    expect(() => cluster.raw(1).proposeConfChange({ type: 'addNode', nodeId: 5 })).toThrow(/not applied yet/);
    cluster.stabilize();
    cluster.raw(1).proposeConfChange({ type: 'addNode', nodeId: 5 });
  });

  it('§4.2.2 a leader removed from the configuration hands leadership over and steps down', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).proposeConfChange({ type: 'removeNode', nodeId: 1 });
    cluster.stabilize();
    expect(cluster.raw(1).status()).toMatchObject({ role: 'follower' });
    expect(cluster.raw(2).status().config.voters).toEqual([2, 3]);
    expect(cluster.leaderIds()).toHaveLength(1);
    expect([2, 3]).toContain(cluster.leaderIds()[0]);
  });

  it('§4.3 in a joint configuration, commits need a majority of both old and new voters', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).proposeConfChange({
      transition: 'explicit',
      changes: [
        { type: 'addNode', nodeId: 4 },
        { type: 'addNode', nodeId: 5 },
        { type: 'removeNode', nodeId: 2 },
        { type: 'removeNode', nodeId: 3 },
      ],
    });
    cluster.stabilize();
    expect(cluster.raw(1).status().config).toMatchObject({ voters: [1, 4, 5], votersOutgoing: [1, 2, 3] });
    // Nodes 4 and 5 do not exist yet: the new majority (1 4 5) cannot be reached, so nothing commits
    // even though the old majority (1 2 3) has the entry.
    const commit = cluster.raw(1).status().commit;
    cluster.raw(1).propose(bytes('joint'));
    cluster.stabilize();
    expect(cluster.raw(1).status().commit).toBe(commit);
  });
});

describe('thesis §3.10 leadership transfer', () => {
  it('the transferee is caught up, times out at once and wins', () => {
    const cluster = new Cluster([1, 2, 3], { checkQuorum: true });
    cluster.elect(1);
    cluster.isolate(3);
    cluster.raw(1).propose(bytes('a'));
    cluster.stabilize();
    cluster.heal();
    cluster.raw(1).transferLeadership(3);
    cluster.stabilize();
    expect(cluster.leaderIds()).toEqual([3]);
    expect(appliedText(cluster, 3)).toEqual(['a']);
  });

  it('a transfer that does not finish within an election timeout is aborted', () => {
    const cluster = new Cluster([1, 2, 3], { electionTimeoutTicks: 10 });
    cluster.elect(1);
    cluster.isolate(3);
    cluster.raw(1).transferLeadership(3);
    expect(cluster.raw(1).status().leadTransferee).toBe(3);
    cluster.tick(1, 10);
    expect(cluster.raw(1).status().leadTransferee).toBe(0);
    expect(cluster.leaderIds()).toEqual([1]);
  });
});

describe('thesis §6.4 ReadIndex', () => {
  it('a read is released only after a quorum confirmed leadership, at the commit index', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).readIndex(bytes('r'));
    const first = cluster.raw(1).ready();
    expect(first.readStates).toEqual([]);
    expect(first.messages.filter((m) => m.type === 'MsgHeartbeat')).toHaveLength(2);
    cluster.raw(1).advance(first);
    cluster.queue.push(...first.messages);
    cluster.isolate(1);
    cluster.stabilize();
    // No follower answered: the read stays pending.
    expect(cluster.raw(1).hasReady()).toBe(false);
    cluster.heal();
    cluster.tick(1);
    cluster.processReady(1);
    cluster.deliverAll();
    cluster.processReady(2);
    cluster.processReady(3);
    cluster.deliverAll();
    const released = cluster.raw(1).ready();
    expect(released.readStates).toEqual([{ index: 1, requestContext: bytes('r') }]);
  });

  it('a partitioned leader never confirms a read', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.isolate(1);
    cluster.raw(1).readIndex(bytes('r'));
    for (let i = 0; i < 5; i++) {
      cluster.tick(1);
      cluster.stabilize();
    }
    cluster.raw(2).campaign();
    cluster.stabilize();
    let readStates = 0;
    cluster.tick(1);
    while (cluster.raw(1).hasReady()) {
      const ready = cluster.raw(1).ready();
      readStates += ready.readStates.length;
      cluster.raw(1).advance(ready);
    }
    expect(readStates).toBe(0);
  });
});

describe('thesis §9.6 PreVote', () => {
  it('a partitioned node does not raise its term, and rejoins without disrupting the leader', () => {
    const cluster = new Cluster([1, 2, 3], { preVote: true });
    cluster.elect(1);
    cluster.isolate(3);
    for (let i = 0; i < 100; i++) {
      cluster.tick(3);
      cluster.stabilize();
    }
    expect(cluster.raw(3).status().term).toBe(1);
    cluster.heal();
    cluster.tick(1);
    cluster.stabilize();
    expect(cluster.leaderIds()).toEqual([1]);
    expect(cluster.raw(1).status().term).toBe(1);
  });

  it('without PreVote the same partition forces a new election (the disruption PreVote prevents)', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.isolate(3);
    for (let i = 0; i < 100; i++) {
      cluster.tick(3);
      cluster.stabilize();
    }
    expect(cluster.raw(3).status().term).toBeGreaterThan(1);
    cluster.heal();
    for (let i = 0; i < 30; i++) {
      cluster.tick(3);
      cluster.stabilize();
    }
    expect(cluster.raw(1).status().term).toBeGreaterThan(1);
  });
});
