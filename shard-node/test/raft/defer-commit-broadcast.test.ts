/**
 * `deferCommitBroadcast`: a commit index that moves with nothing new to send waits for the next
 * append or heartbeat to reach the followers. The leader commits and applies as before; the
 * followers learn it one heartbeat later, and no empty MsgApp (nor its response) is sent for it.
 */
import { describe, expect, it } from 'vitest';
import type { Message } from '../../src/raft/index.js';
import { bytes, Cluster, text } from './harness/cluster.js';

/** Runs the cluster to quiescence, returning every message delivered meanwhile. */
function stabilizeRecording(cluster: Cluster): Message[] {
  const seen: Message[] = [];
  const previous = cluster.dropIf;
  cluster.dropIf = (message) => {
    seen.push(message);
    return previous(message);
  };
  cluster.stabilize();
  cluster.dropIf = previous;
  return seen;
}

const appliedText = (cluster: Cluster, id: number): string[] =>
  cluster.get(id).applied.map((e) => text(e.data));

describe('deferCommitBroadcast', () => {
  it('off (etcd): the leader sends the new commit index at once, in an empty MsgApp to each follower', () => {
    const cluster = new Cluster([1, 2, 3]);
    cluster.elect(1);
    cluster.raw(1).propose(bytes('x'));
    const messages = stabilizeRecording(cluster);
    const appends = messages.filter((m) => m.type === 'MsgApp');
    // One append with the entry and one empty one with the commit index, to each follower.
    expect(appends.filter((m) => m.entries.length > 0)).toHaveLength(2);
    expect(appends.filter((m) => m.entries.length === 0)).toHaveLength(2);
    for (const id of [1, 2, 3]) expect(appliedText(cluster, id)).toEqual(['x']);
  });

  it('on: the leader commits and applies at once; followers learn it from the next heartbeat', () => {
    const cluster = new Cluster([1, 2, 3], { deferCommitBroadcast: true });
    cluster.elect(1);
    cluster.raw(1).propose(bytes('x'));
    const messages = stabilizeRecording(cluster);
    const appends = messages.filter((m) => m.type === 'MsgApp');
    expect(appends.filter((m) => m.entries.length > 0)).toHaveLength(2);
    expect(appends.filter((m) => m.entries.length === 0)).toHaveLength(0);
    expect(messages.filter((m) => m.type === 'MsgAppResp')).toHaveLength(2);
    expect(appliedText(cluster, 1)).toEqual(['x']);
    expect(appliedText(cluster, 2)).toEqual([]);
    expect(appliedText(cluster, 3)).toEqual([]);
    // The heartbeat carries the commit index (capped at what each follower holds).
    cluster.tick(1);
    cluster.stabilize();
    for (const id of [2, 3]) expect(appliedText(cluster, id)).toEqual(['x']);
  });

  it('on: the next append carries the commit index of the entries before it', () => {
    const cluster = new Cluster([1, 2, 3], { deferCommitBroadcast: true });
    cluster.elect(1);
    cluster.raw(1).propose(bytes('x'));
    cluster.stabilize();
    cluster.raw(1).propose(bytes('y'));
    cluster.stabilize();
    // The append of y told the followers that x committed; y waits for the next one.
    for (const id of [2, 3]) expect(appliedText(cluster, id)).toEqual(['x']);
    expect(appliedText(cluster, 1)).toEqual(['x', 'y']);
  });

  it('on: a follower that was cut off while its entries committed catches up from heartbeats', () => {
    const cluster = new Cluster([1, 2, 3], { deferCommitBroadcast: true });
    cluster.elect(1);
    cluster.isolate(3);
    for (const value of ['a', 'b', 'c']) cluster.raw(1).propose(bytes(value));
    cluster.stabilize();
    cluster.heal();
    // A heartbeat response from the follower that is behind brings its missing entries; the next
    // heartbeat, their commit index.
    for (let round = 0; round < 3; round++) {
      cluster.tick(1);
      cluster.stabilize();
    }
    for (const id of [1, 2, 3]) expect(appliedText(cluster, id)).toEqual(['a', 'b', 'c']);
  });
});
