import { describe, expect, it } from 'vitest';
import type { NodeId } from '../../src/raft/index.js';
import {
  MemberDirectory,
  decodeMembersRecord,
  decodeRemovedRecord,
  provisionalPeersMax,
  removedMembersMax,
  type MemberSpec,
  type PeerAddress,
  type PeerLinks,
} from '../../src/replica/member-directory.js';
import { membershipProposal } from '../../src/replica/membership.js';

const member = (raftId: number, host = `n${raftId}`): MemberSpec => ({
  raftId,
  replicaId: `g1-r${raftId}`,
  url: `http://${host}`,
  peerHost: host,
  peerPort: 7000,
});

/** The links a transport keeps, and every call the directory made on them. */
function recordingLinks(): PeerLinks & { peers: Map<NodeId, PeerAddress>; calls: string[] } {
  const peers = new Map<NodeId, PeerAddress>();
  const calls: string[] = [];
  return {
    peers,
    calls,
    hasPeer: (raftId) => peers.has(raftId),
    addPeer: (raftId, address) => {
      if (peers.has(raftId)) throw new Error(`peer ${raftId} added twice`);
      peers.set(raftId, address);
      calls.push(`add ${raftId} ${address.host}`);
    },
    updatePeer: (raftId, address) => {
      peers.set(raftId, address);
      calls.push(`update ${raftId} ${address.host}`);
    },
    removePeer: (raftId) => {
      peers.delete(raftId);
      calls.push(`remove ${raftId}`);
    },
  };
}

/** Replica 2's directory of {1, 2, 3}, attached to recording links as a replica attaches its transport. */
function directoryOf2(removed: readonly NodeId[] = []) {
  const directory = new MemberDirectory(2, [member(1), member(2), member(3)], removed);
  const links = recordingLinks();
  for (const [raftId, address] of directory.peerAddresses()) links.peers.set(raftId, address);
  directory.attach(links);
  return { directory, links };
}

const proven: PeerAddress = { host: 'n4', port: 7000 };

describe('the member directory: senders it does not know yet (decision 0014)', () => {
  it('answers an unknown sender at its proven address until the replicated directory names it', () => {
    const { directory, links } = directoryOf2();
    expect(directory.reachProvisionally(4, proven)).toBe(true);
    expect(links.peers.get(4)).toEqual(proven);
    expect(directory.has(4)).toBe(false);
    // Provisional peers are never stored: the state machine's record lists members only.
    expect(decodeMembersRecord(directory.records().members).map((spec) => spec.raftId)).toEqual([1, 2, 3]);
    // The applied change (or a snapshot) brings the member's replicated address, which wins.
    directory.reach(member(4, 'n4-replicated'));
    expect(links.peers.get(4)).toEqual({ host: 'n4-replicated', port: 7000 });
    expect(directory.provisionalPeers().size).toBe(0);
    expect(links.calls).toEqual(['add 4 n4', 'update 4 n4-replicated']);
  });

  it("never displaces a member's address, nor reaches a removed id or itself", () => {
    const { directory, links } = directoryOf2();
    expect(directory.reachProvisionally(3, { host: 'elsewhere', port: 1 })).toBe(false);
    expect(links.peers.get(3)).toEqual({ host: 'n3', port: 7000 });
    directory.forget(3);
    expect(directory.isRemoved(3)).toBe(true);
    expect(directory.reachProvisionally(3, { host: 'n3', port: 7000 })).toBe(false);
    expect(directory.reachProvisionally(2, { host: 'n2', port: 7000 })).toBe(false);
    expect(links.peers.has(3)).toBe(false);
    expect(links.calls).toEqual(['remove 3']);
  });

  it('follows a newer proven address, and drops the sender when it is removed', () => {
    const { directory, links } = directoryOf2();
    directory.reachProvisionally(4, proven);
    directory.reachProvisionally(4, proven);
    directory.reachProvisionally(4, { host: 'n4-restarted', port: 7000 });
    directory.forget(4);
    expect(directory.isRemoved(4)).toBe(true);
    expect(links.calls).toEqual(['add 4 n4', 'update 4 n4-restarted', 'remove 4']);
  });

  it(`answers at most ${provisionalPeersMax} unknown senders at once`, () => {
    const { directory } = directoryOf2();
    for (let raftId = 10; raftId < 10 + provisionalPeersMax; raftId++)
      expect(directory.reachProvisionally(raftId, proven)).toBe(true);
    expect(directory.reachProvisionally(99, proven)).toBe(false);
    // One already answered still is.
    expect(directory.reachProvisionally(10, proven)).toBe(true);
  });

  it("takes a snapshot's removed ids and drops provisional senders it does not name", () => {
    const { directory, links } = directoryOf2();
    directory.reachProvisionally(4, proven);
    directory.reachProvisionally(9, { host: 'n9', port: 7000 });
    // While 2 was cut off, 4 and 5 replaced 1 and 3 (and 6 came and went).
    directory.adopt([member(2), member(4), member(5)], [1, 3, 6]);
    expect(directory.values().map((spec) => spec.raftId)).toEqual([2, 4, 5]);
    expect([1, 3, 6].map((raftId) => directory.isRemoved(raftId))).toEqual([true, true, true]);
    expect(directory.isRemoved(9)).toBe(false);
    expect([...links.peers.keys()].sort()).toEqual([4, 5]);
    expect(directory.provisionalPeers().size).toBe(0);
  });

  it('takes an id only its own directory names out without taking it for removed', () => {
    // A joiner starts with the operator's list, which may name a replica not added yet.
    const directory = new MemberDirectory(2, [member(1), member(2), member(3), member(8)]);
    directory.adopt([member(1), member(2), member(3)]);
    expect(directory.has(8)).toBe(false);
    expect(directory.isRemoved(8)).toBe(false);
  });

  it('stores the removed ids in a record of their own, and remembers the newest ones', () => {
    const { directory } = directoryOf2([7]);
    directory.forget(1);
    expect(decodeRemovedRecord(directory.records().removed)).toEqual([7, 1]);
    expect(decodeRemovedRecord(undefined)).toEqual([]);
    expect(decodeRemovedRecord(Buffer.from('[3, -1, 2.5, "x", 9]'))).toEqual([3, 9]);
    const many = new MemberDirectory(1, [member(1)]);
    for (let raftId = 2; raftId < removedMembersMax + 12; raftId++) many.forget(raftId);
    const kept = decodeRemovedRecord(many.records().removed);
    expect(kept).toHaveLength(removedMembersMax);
    expect(many.isRemoved(2)).toBe(false);
    expect(many.isRemoved(removedMembersMax + 11)).toBe(true);
  });

  it('makes the leader refuse to add a removed raft id again', () => {
    const { directory } = directoryOf2();
    directory.forget(3);
    const view = {
      config: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      commit: 10,
      matchOf: () => 10,
    };
    expect(() =>
      membershipProposal({ type: 'addLearner', member: member(3) }, view, directory, 'token', 100),
    ).toThrow(/was removed from this group/);
    expect(
      membershipProposal({ type: 'addLearner', member: member(6) }, view, directory, 'token', 100).type,
    ).toBe('addLearnerNode');
  });
});
