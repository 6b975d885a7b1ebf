/**
 * CheckQuorum, watched from outside (the node simulator's counterpart of the core simulator's
 * `check-quorum` invariant): a leader that has heard from no quorum of its voters for an election
 * timeout steps down at its next CheckQuorum round (thesis §6.2). It checks once per election
 * timeout of its own ticks, so it may lead for up to two election timeouts after it last heard
 * from a quorum, never longer. A response counts as heard when the network hands it to the
 * replica (a MsgAppResp or MsgHeartbeatResp of the leader's term, `SimNetwork.heardBy`).
 *
 * The watch starts again when the replica becomes leader (or a leader of another term, or another
 * incarnation), when its voters change (a new voter counts as heard, as the core counts it), and
 * when its node resumes from a pause (a paused process does not tick, so its rounds stop too).
 * Nothing here draws from the seed: a run with the watch is the run without it.
 */
import type { NodeId } from '../../raft/index.js';
import type { Replica, ReplicaStatus } from '../../replica/index.js';
import type { HeardResponse } from './sim-network.js';

interface LeaderContact {
  readonly replica: Replica;
  readonly term: number;
  votersKey: string;
  /** Where the watch starts: every voter counts as heard then. */
  sinceMs: number;
}

export class CheckQuorumWatch {
  /** The leaders watched, by `node/group`. */
  private readonly contacts = new Map<string, LeaderContact>();

  constructor(
    /** How long a leader may go without hearing from a quorum (two election timeouts and slack). */
    private readonly boundMs: number,
  ) {}

  /**
   * Checks the running replica of `group` on `node` (whose node is up) at `nowMs`; returns the
   * problem when a leader outstays CheckQuorum, at most once per bound per leader.
   */
  check(
    node: string,
    group: string,
    replica: Replica,
    status: ReplicaStatus,
    heard: ReadonlyMap<NodeId, HeardResponse> | undefined,
    resumedAtMs: number,
    nowMs: number,
  ): string | undefined {
    const key = `${node}/${group}`;
    if (status.role !== 'leader') {
      this.contacts.delete(key);
      return undefined;
    }
    const votersKey = status.voters.join(',');
    let contact = this.contacts.get(key);
    if (contact === undefined || contact.replica !== replica || contact.term !== status.term) {
      contact = { replica, term: status.term, votersKey, sinceMs: nowMs };
      this.contacts.set(key, contact);
    }
    if (contact.votersKey !== votersKey) {
      contact.votersKey = votersKey;
      contact.sinceMs = nowMs;
    }
    const sinceMs = Math.max(contact.sinceMs, resumedAtMs);
    const heardAt = (id: NodeId): number => {
      if (id === status.raftId) return nowMs;
      const response = heard?.get(id);
      return response !== undefined && response.term === status.term
        ? Math.max(sinceMs, response.atMs)
        : sinceMs;
    };
    // The latest moment by which a quorum of the voters had been heard from.
    const times = status.voters.map(heardAt).sort((a, b) => b - a);
    const quorumHeardMs = times[Math.floor(times.length / 2)];
    if (quorumHeardMs === undefined || nowMs - quorumHeardMs <= this.boundMs) return undefined;
    // The same leader is reported again only after another bound.
    contact.sinceMs = nowMs;
    return (
      `check-quorum: ${group}@${node} (raft id ${status.raftId}) still leads term ${status.term} ` +
      `${nowMs - quorumHeardMs} ms after it last heard from a quorum of voters [${status.voters.join(',')}] ` +
      `(bound ${this.boundMs} ms)`
    );
  }
}
