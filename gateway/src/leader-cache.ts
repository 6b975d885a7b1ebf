import type { GroupSpec, ReplicaSpec } from '@impulse/common';

/**
 * The gateway's guess of each group's leader. It starts at the first replica, learns from
 * `NOT_LEADER` answers (which carry the leader's id when the replica knows it), and moves to the
 * next replica when the guessed one does not answer.
 */
export class LeaderCache {
  private readonly leaders = new Map<string, ReplicaSpec>();

  constructor(private readonly groups: ReadonlyMap<string, GroupSpec>) {}

  leaderOf(group: GroupSpec): ReplicaSpec {
    const cached = this.leaders.get(group.id);
    if (cached !== undefined) return cached;
    const first = group.replicas[0];
    if (first === undefined) throw new Error(`group ${group.id} has no replicas`);
    return first;
  }

  /**
   * Records the leader a replica named. A leader missing from the gateway's configuration (a
   * replica added since) is reached at the URL the replica gave. Answers false when neither helps.
   */
  learn(groupId: string, leaderReplicaId: string, leaderUrl?: unknown): boolean {
    const group = this.groups.get(groupId);
    if (group === undefined) return false;
    const known = group.replicas.find((candidate) => candidate.id === leaderReplicaId);
    if (known !== undefined) {
      this.leaders.set(groupId, known);
      return true;
    }
    if (typeof leaderUrl !== 'string' || !/^http:\/\/[^/\s]+:\d+$/.test(leaderUrl)) return false;
    this.leaders.set(groupId, {
      id: leaderReplicaId,
      node: null,
      url: leaderUrl,
      raftId: 0,
      peerAddress: null,
    });
    return true;
  }

  /** Moves the guess past `failed` to the next replica of the group, unless another caller already did. */
  rotate(group: GroupSpec, failed: ReplicaSpec): ReplicaSpec {
    const current = this.leaderOf(group);
    if (current.id !== failed.id) return current;
    // A leader learned from a hint may be missing from the list: then start again from the first.
    const position = group.replicas.findIndex((candidate) => candidate.id === failed.id);
    const next = group.replicas[(position + 1) % group.replicas.length] ?? current;
    this.leaders.set(group.id, next);
    return next;
  }

  /** The cached leader of every group, for /admin/cluster. */
  snapshot(): Record<string, string> {
    const result: Record<string, string> = {};
    for (const [groupId, replica] of this.leaders) result[groupId] = replica.id;
    return result;
  }
}
