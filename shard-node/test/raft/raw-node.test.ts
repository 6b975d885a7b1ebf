import { describe, expect, it } from 'vitest';
import {
  createSeededRandom,
  MemoryStorage,
  RaftError,
  raftErrorCodes,
  RawNode,
  validateConfig,
  type Message,
} from '../../src/raft/index.js';
import { bytes, Cluster } from './harness/cluster.js';

const voters = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof RaftError) return error.code;
    throw error;
  }
  return undefined;
}

describe('Config', () => {
  const base = { id: 1, storage: new MemoryStorage(), random: createSeededRandom(1) };

  it('fills in defaults and freezes', () => {
    const config = validateConfig(base);
    expect(config.electionTimeoutTicks).toBe(10);
    expect(config.readOnlyOption).toBe('safe');
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('rejects bad values with a message naming the field', () => {
    expect(() => validateConfig({ ...base, id: 0 })).toThrow(/config.id/);
    expect(() => validateConfig({ ...base, heartbeatTicks: 5, electionTimeoutTicks: 5 })).toThrow(
      /electionTimeoutTicks/,
    );
    expect(() => validateConfig({ ...base, maxInflightMessages: 0 })).toThrow(/maxInflightMessages/);
    expect(() => validateConfig({ ...base, readOnlyOption: 'leaseBased' })).toThrow(/requires checkQuorum/);
    expect(() => validateConfig({ ...base, readOnlyOption: 'leaseBased', checkQuorum: true })).not.toThrow();
  });
});

describe('RawNode', () => {
  it('refuses local message types and responses from strangers from the network', () => {
    const node = new RawNode({
      id: 1,
      storage: new MemoryStorage({ confState: voters }),
      random: createSeededRandom(1),
    });
    const message = (type: Message['type'], from: number): Message => ({
      type,
      from,
      to: 1,
      term: 1,
      logTerm: 0,
      index: 0,
      entries: [],
      commit: 0,
      reject: false,
      rejectHint: 0,
      context: new Uint8Array(),
    });
    expect(node.step(message('MsgHup', 2))?.code).toBe('RAFT_STEP_LOCAL_MESSAGE');
    expect(node.step(message('MsgAppResp', 9))?.code).toBe('RAFT_STEP_PEER_NOT_FOUND');
    expect(node.step(message('MsgHeartbeat', 2))).toBeUndefined();
  });

  it('enforces the ready/advance pairing', () => {
    const node = new RawNode({
      id: 1,
      storage: new MemoryStorage({ confState: { ...voters, voters: [1] } }),
      random: createSeededRandom(1),
    });
    node.campaign();
    expect(node.hasReady()).toBe(true);
    const ready = node.ready();
    expect(node.hasReady()).toBe(false);
    expect(() => node.ready()).toThrow(/before advance/);
    expect(() => node.advance({ ...ready })).toThrow(/last Ready/);
    node.advance(ready);
  });

  it('reports proposal errors with stable codes', () => {
    const cluster = new Cluster([1, 2, 3]);
    expect(codeOf(() => cluster.raw(2).propose(bytes('x')))).toBe('RAFT_NO_LEADER');
    cluster.elect(1);
    cluster.raw(1).transferLeadership(2);
    expect(codeOf(() => cluster.raw(1).propose(bytes('x')))).toBe('RAFT_TRANSFER_IN_PROGRESS');
    cluster.stabilize();
    expect(cluster.leaderIds()).toEqual([2]);
    cluster.raw(2).proposeConfChange({ type: 'addLearnerNode', nodeId: 4 });
    expect(codeOf(() => cluster.raw(2).proposeConfChange({ type: 'addNode', nodeId: 5 }))).toBe(
      'RAFT_CONF_CHANGE_PENDING',
    );
    cluster.stabilize();
    expect(codeOf(() => cluster.raw(2).proposeConfChange({ transition: 'auto', changes: [] }))).toBe(
      'RAFT_CONF_CHANGE_INVALID',
    );
    const forwarding = new Cluster([1, 2, 3], { disableProposalForwarding: true });
    forwarding.elect(1);
    expect(codeOf(() => forwarding.raw(2).propose(bytes('x')))).toBe('RAFT_FORWARDING_DISABLED');
    const limited = new Cluster([1, 2, 3], { maxUncommittedEntriesBytes: 4 });
    limited.elect(1);
    limited.raw(1).propose(bytes('abcd'));
    expect(codeOf(() => limited.raw(1).propose(bytes('e')))).toBe('RAFT_UNCOMMITTED_LIMIT');
  });

  it('documents every error code', () => {
    for (const [code, description] of Object.entries(raftErrorCodes)) {
      expect(code).toMatch(/^RAFT_[A-Z_]+$/);
      expect(description.length).toBeGreaterThan(10);
    }
  });

  it('reports status with progress only on the leader', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    const leader = cluster.raw(1).status();
    expect(leader).toMatchObject({
      id: 1,
      role: 'leader',
      leaderId: 1,
      term: 1,
      commit: 1,
      applied: 1,
      isLearner: false,
    });
    expect([...leader.progress!.keys()]).toEqual([1, 2, 3]);
    expect(leader.progress!.get(2)).toMatchObject({ match: 1, next: 2, state: 'replicate' });
    const follower = cluster.raw(2).status();
    expect(follower.progress).toBeUndefined();
    expect(follower.config.voters).toEqual([1, 2, 3]);
  });

  it('restarts from storage with its term, vote, log and configuration', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).propose(bytes('a'));
    cluster.stabilize();
    const n2 = cluster.get(2);
    const restarted = new RawNode({ id: 2, storage: n2.storage, applied: 2, random: createSeededRandom(5) });
    expect(restarted.status()).toMatchObject({ term: 1, vote: 1, commit: 2, applied: 2, role: 'follower' });
    expect(restarted.hasReady()).toBe(false);
  });

  it('replays deterministically from the same seed', () => {
    const run = (): string => {
      const cluster = new Cluster([1, 2, 3, 4, 5], { seed: 42, preVote: true, checkQuorum: true });
      const log: string[] = [];
      for (let t = 0; t < 200; t++) {
        for (const id of cluster.nodes.keys()) cluster.tick(id);
        if (t === 60) cluster.isolate(cluster.leaderIds()[0] ?? 1);
        if (t === 120) cluster.heal();
        cluster.stabilize();
        log.push(cluster.leaderIds().join(','));
      }
      return log.join(';');
    };
    expect(run()).toBe(run());
  });
});

describe('vote rejections', () => {
  it('carry the commit index, which a candidate with a matching log adopts', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).propose(bytes('a'));
    // Node 3 gets the entry but never learns that it committed.
    cluster.dropIf = (m) => m.to === 3 && m.commit >= 2;
    cluster.stabilize();
    expect(cluster.raw(3).status().commit).toBe(1);
    expect(cluster.raw(2).status().commit).toBe(2);
    // Node 2 gets one more entry, so that its log is longer than node 3's.
    cluster.dropIf = (m) => m.to === 3;
    cluster.raw(1).propose(bytes('b'));
    cluster.stabilize();
    cluster.dropIf = () => false;
    // Node 3 campaigns; node 2 rejects it (its log is longer) and tells it the commit index,
    // capped at node 3's last index.
    cluster.raw(3).campaign();
    cluster.processReady(3);
    const votes = cluster.queue.filter((m) => m.to === 2);
    cluster.queue = [];
    for (const m of votes) cluster.raw(2).step(m);
    const rejection = cluster
      .raw(2)
      .ready()
      .messages.find((m) => m.type === 'MsgVoteResp')!;
    expect(rejection).toMatchObject({ reject: true, commit: 2, logTerm: 1 });
    cluster.raw(3).step(rejection);
    expect(cluster.raw(3).status().commit).toBe(2);
  });
});

describe('elections and conf changes', () => {
  it('a candidate that learns of a committed conf change abandons its election until it is applied', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).proposeConfChange({ type: 'addLearnerNode', nodeId: 4 });
    cluster.dropIf = (m) => m.to === 3 && m.commit >= 2;
    cluster.stabilize();
    cluster.dropIf = (m) => m.to === 3;
    cluster.raw(1).propose(bytes('b'));
    cluster.stabilize();
    cluster.dropIf = () => false;
    cluster.raw(3).campaign();
    expect(cluster.raw(3).status().role).toBe('candidate');
    cluster.processReady(3);
    for (const m of cluster.queue.filter((q) => q.to === 2)) cluster.raw(2).step(m);
    cluster.queue = [];
    const rejection = cluster
      .raw(2)
      .ready()
      .messages.find((m) => m.type === 'MsgVoteResp')!;
    cluster.raw(3).step(rejection);
    expect(cluster.raw(3).status()).toMatchObject({ role: 'follower', commit: 2 });
    cluster.processReady(3);
    expect(cluster.raw(3).status().config.learners).toEqual([4]);
  });
});

describe('forbidCampaigns: a node whose host found its state machine damaged', () => {
  it('steps down at once as leader, hands over to a caught-up voter, and never leads again', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).propose(bytes('a'));
    cluster.stabilize();
    cluster.raw(1).forbidCampaigns();
    expect(cluster.raw(1).status().role).toBe('follower');
    // The MsgTimeoutNow makes a caught-up voter campaign at once, without waiting for a timeout.
    cluster.stabilize();
    const leaders = cluster.leaderIds();
    expect(leaders).toHaveLength(1);
    expect(leaders[0]).not.toBe(1);
    // It still follows: it appends what the new leader sends.
    cluster.raw(leaders[0]!).propose(bytes('b'));
    cluster.stabilize();
    expect(cluster.raw(1).status().commit).toBe(cluster.raw(leaders[0]!).status().commit);
    // Neither a host request, nor a timeout, nor a transfer to it makes it campaign.
    cluster.raw(1).campaign();
    cluster.isolate(leaders[0]!);
    cluster.tick(1, 50);
    cluster.stabilize();
    expect(cluster.raw(1).status().role).toBe('follower');
    cluster.heal();
    cluster.raw(leaders[0]!).transferLeadership(1);
    cluster.stabilize();
    cluster.tick(leaders[0]!, 1);
    cluster.stabilize();
    expect(cluster.raw(1).status().role).toBe('follower');
  });
});

describe('lease reads: who may vote while a lease may be held', () => {
  const leaseConfig = (id: number, storage: MemoryStorage) => ({
    id,
    storage,
    random: createSeededRandom(id),
    checkQuorum: true,
    readOnlyOption: 'leaseBased' as const,
  });
  const vote = (from: number, term: number): Message => ({
    type: 'MsgVote',
    from,
    to: 1,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(),
  });
  const votesSent = (node: RawNode): Message[] => {
    if (!node.hasReady()) return [];
    const ready = node.ready();
    node.advance(ready);
    return ready.messages.filter((m) => m.type === 'MsgVoteResp' && !m.reject);
  };

  it('a restarted node refuses votes for an election timeout: it forgot whether it is in a lease', () => {
    const storage = new MemoryStorage({ confState: voters });
    storage.setHardState({ term: 5, vote: 3, commit: 0 });
    const node = new RawNode(leaseConfig(1, storage));
    node.step(vote(2, 6));
    expect(votesSent(node)).toEqual([]);
    for (let i = 0; i < 10; i++) node.tick();
    node.step(vote(2, 7));
    expect(votesSent(node).map((m) => m.term)).toEqual([7]);
  });

  it('a fresh node (term 0) has never acknowledged a leader and votes at once', () => {
    const node = new RawNode(leaseConfig(1, new MemoryStorage({ confState: voters })));
    node.step(vote(2, 1));
    expect(votesSent(node).map((m) => m.term)).toEqual([1]);
  });

  it('a host-requested campaign is ignored inside the lease; the election timeout still campaigns', () => {
    const node = new RawNode(leaseConfig(1, new MemoryStorage({ confState: voters })));
    node.step({ ...vote(2, 1), type: 'MsgHeartbeat' });
    node.campaign();
    expect(node.status()).toMatchObject({ role: 'follower', leaderId: 2, term: 1 });
    for (let i = 0; i < 20 && node.status().role === 'follower'; i++) node.tick();
    expect(node.status()).toMatchObject({ role: 'candidate', term: 2 });
  });
});
