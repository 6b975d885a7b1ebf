/**
 * The fault schedule of a simulation: partitions (symmetric halves, one isolated node, an
 * isolated leader, one-way links), crashes at every point of Ready handling with later restarts,
 * leadership transfers (to voters and, refused, to learners), and membership changes (simple and
 * joint), all drawn from the seeded generator and overlapping freely.
 */
import type { ConfChange, ConfChangeTransition, ConfChangeV2, ConfState, NodeId } from '../raft/index.js';
import type { SimCluster } from './cluster.js';
import type { Prng } from './prng.js';
import type { CrashPoint } from './replica.js';

export interface NemesisOptions {
  readonly crashes: boolean;
  readonly partitions: boolean;
  readonly transfers: boolean;
  readonly membershipChanges: boolean;
  /** Probability of a crash per tick; default 0.008. */
  readonly crashProbability?: number;
}

export const allFaults: NemesisOptions = {
  crashes: true,
  partitions: true,
  transfers: true,
  membershipChanges: true,
};

/** Per-tick probabilities of starting each fault; sized for runs of a few hundred ticks. */
const partitionStartProbability = 0.012;
const defaultCrashProbability = 0.008;
const transferProbability = 0.006;
const membershipStartProbability = 0.004;
/** Share of crash decisions allowed to take a majority down. */
const majorityCrashShare = 0.15;
/** Ticks between two attempts to propose the same membership change. */
const membershipRetryTicks = 15;
/** Ticks a new learner gets to catch up before it is promoted anyway. */
const learnerCatchUpTicksMax = 60;

const crashPoints: readonly CrashPoint[] = ['before-persist', 'after-persist', 'after-send'];

/**
 * A membership change in progress. Two plans alternate: remove a voter, then add a new replica as
 * a learner and promote it (one simple change at a time); or add the new replica as a learner and
 * then swap it for a voter in one joint change (ConfChangeV2), left automatically or explicitly.
 */
type MembershipStep =
  | { readonly phase: 'idle' }
  | { readonly phase: 'removing'; readonly victim: NodeId }
  | { readonly phase: 'adding'; readonly newcomer: NodeId; readonly swapWith?: NodeId }
  | { readonly phase: 'promoting'; readonly newcomer: NodeId; readonly sinceTick: number }
  | {
      readonly phase: 'swapping';
      readonly newcomer: NodeId;
      readonly victim: NodeId;
      readonly transition: ConfChangeTransition;
      readonly sinceTick: number;
    };

const transitions: readonly ConfChangeTransition[] = ['auto', 'implicit', 'explicit'];

export class Nemesis {
  /** Counts of faults injected, for reports. */
  readonly counters = { partitions: 0, crashes: 0, transfers: 0, membershipChanges: 0 };
  private healTick = 0;
  private readonly restarts = new Map<NodeId, number>();
  private membership: MembershipStep = { phase: 'idle' };
  private lastMembershipAttemptTick = -Infinity;
  private quiet = false;

  constructor(
    private readonly prng: Prng,
    private readonly cluster: SimCluster,
    private readonly options: NemesisOptions,
    private nextNodeId: NodeId,
  ) {}

  step(nowTick: number): void {
    if (!this.quiet) {
      if (this.options.partitions) this.maybePartition(nowTick);
      if (this.options.crashes) this.maybeCrash(nowTick);
      if (this.options.transfers) this.maybeTransfer();
    }
    for (const [id, tick] of this.restarts) {
      if (tick <= nowTick) {
        this.restarts.delete(id);
        this.cluster.restart(id);
      }
    }
    if (this.options.membershipChanges) this.driveMembership(nowTick);
  }

  /**
   * Ends every fault: heals the network, makes it reliable, restarts crashed replicas, and starts
   * no new fault. A membership change in progress is still carried to its end.
   */
  healAll(): void {
    this.quiet = true;
    this.cluster.network.heal();
    this.cluster.network.faults = { dropProbability: 0, duplicateProbability: 0, delayTicksMax: 2 };
    this.restarts.clear();
    this.cluster.cancelCrashes();
    for (const replica of this.cluster.replicas.values()) this.cluster.restart(replica.id);
  }

  private maybePartition(nowTick: number): void {
    const network = this.cluster.network;
    if (network.isPartitioned()) {
      if (nowTick >= this.healTick) network.heal();
      return;
    }
    if (!this.prng.chance(partitionStartProbability)) return;
    const ids = [...this.cluster.replicas.keys()];
    if (ids.length < 2) return;
    this.counters.partitions += 1;
    this.healTick = nowTick + this.prng.between(10, 120);
    const leaderId = this.cluster.leader()?.id;
    const kind = this.prng.int(5);
    if (kind === 0) {
      const shuffled = this.prng.shuffle([...ids]);
      const half = Math.floor(shuffled.length / 2);
      network.partition(shuffled.slice(0, half), shuffled.slice(half));
    } else if (kind === 1 || (kind === 2 && leaderId === undefined)) {
      const isolated = this.prng.pick(ids);
      network.partition(
        [isolated],
        ids.filter((id) => id !== isolated),
      );
    } else if (kind === 2) {
      network.partition(
        [leaderId!],
        ids.filter((id) => id !== leaderId),
      );
    } else if (kind === 3) {
      // One-way links: some messages get through in one direction only.
      for (let count = this.prng.between(1, ids.length); count > 0; count -= 1) {
        const from = this.prng.pick(ids);
        const to = this.prng.pick(ids.filter((id) => id !== from));
        network.cutLink(from, to);
      }
    } else {
      // The leader still sends but hears nothing back: CheckQuorum must make it step down.
      const deaf = leaderId ?? this.prng.pick(ids);
      for (const id of ids) if (id !== deaf) network.cutLink(id, deaf);
    }
  }

  private maybeCrash(nowTick: number): void {
    if (!this.prng.chance(this.options.crashProbability ?? defaultCrashProbability)) return;
    const up = this.cluster.upReplicas();
    const voters = this.cluster.voters();
    const down = this.cluster.replicas.size - up.length;
    // Keep a majority up most of the time, so that clients make progress; now and then a
    // majority goes down too (all but one replica at most).
    const downMax = this.prng.chance(majorityCrashShare)
      ? voters.length - 1
      : Math.floor((voters.length - 1) / 2);
    if (down + 1 > downMax) return;
    const victim = this.prng.pick(up);
    this.counters.crashes += 1;
    this.cluster.scheduleCrash(victim.id, this.prng.pick(crashPoints));
    this.restarts.set(victim.id, nowTick + this.prng.between(1, 80));
  }

  private maybeTransfer(): void {
    if (!this.prng.chance(transferProbability)) return;
    const leader = this.cluster.leader();
    if (leader === undefined) return;
    // Learners are candidates too: the core must refuse to hand them leadership.
    const { voters, learners } = leader.confState;
    const others = [...voters, ...learners].filter((id) => id !== leader.id);
    if (others.length === 0) return;
    this.counters.transfers += 1;
    leader.node!.transferLeadership(this.prng.pick(others));
  }

  private driveMembership(nowTick: number): void {
    const leader = this.cluster.leader();
    const step = this.membership;
    if (step.phase === 'idle') {
      if (this.quiet || leader === undefined || !this.prng.chance(membershipStartProbability)) return;
      const conf = leader.confState;
      if (conf.voters.length < 3 || conf.learners.length > 0 || conf.votersOutgoing.length > 0) return;
      this.counters.membershipChanges += 1;
      const victim = this.prng.pick(conf.voters);
      this.membership = this.prng.chance(0.5)
        ? { phase: 'removing', victim }
        : { phase: 'adding', newcomer: this.startNewcomer(), swapWith: victim };
      this.lastMembershipAttemptTick = -Infinity;
      return;
    }
    if (leader === undefined) return;
    const conf = leader.confState;
    const retryDue = nowTick - this.lastMembershipAttemptTick >= membershipRetryTicks;
    const propose = (change: ConfChange | ConfChangeV2): void => {
      this.lastMembershipAttemptTick = nowTick;
      this.cluster.proposeConfChange(change);
    };
    switch (step.phase) {
      case 'removing':
        if (!isMember(conf, step.victim)) {
          this.retire(step.victim);
          this.membership = { phase: 'adding', newcomer: this.startNewcomer() };
          this.lastMembershipAttemptTick = -Infinity;
        } else if (retryDue && this.keepsQuorum(conf.voters.filter((id) => id !== step.victim))) {
          propose({ type: 'removeNode', nodeId: step.victim });
        }
        return;
      case 'adding':
        if (conf.learners.includes(step.newcomer)) {
          this.membership =
            step.swapWith === undefined
              ? { phase: 'promoting', newcomer: step.newcomer, sinceTick: nowTick }
              : {
                  phase: 'swapping',
                  newcomer: step.newcomer,
                  victim: step.swapWith,
                  transition: this.prng.pick(transitions),
                  sinceTick: nowTick,
                };
          this.lastMembershipAttemptTick = -Infinity;
        } else if (retryDue) {
          propose({ type: 'addLearnerNode', nodeId: step.newcomer });
        }
        return;
      case 'promoting':
        if (conf.voters.includes(step.newcomer)) {
          this.membership = { phase: 'idle' };
        } else if (
          retryDue &&
          this.isCaughtUp(step.newcomer, step.sinceTick, nowTick) &&
          this.keepsQuorum([...conf.voters, step.newcomer])
        ) {
          propose({ type: 'addNode', nodeId: step.newcomer });
        }
        return;
      case 'swapping': {
        const joint = conf.votersOutgoing.length > 0;
        if (!joint && conf.voters.includes(step.newcomer) && !isMember(conf, step.victim)) {
          this.retire(step.victim);
          this.membership = { phase: 'idle' };
        } else if (joint && retryDue && step.transition === 'explicit') {
          // An explicit joint configuration is left only when the application says so.
          propose({ transition: 'auto', changes: [] });
        } else if (
          !joint &&
          retryDue &&
          this.isCaughtUp(step.newcomer, step.sinceTick, nowTick) &&
          this.keepsQuorum([...conf.voters.filter((id) => id !== step.victim), step.newcomer])
        ) {
          propose({
            transition: step.transition,
            changes: [
              { type: 'addNode', nodeId: step.newcomer },
              { type: 'removeNode', nodeId: step.victim },
            ],
          });
        }
        return;
      }
    }
  }

  /** Starts a brand-new replica: ids are never reused, and it joins with empty storage. */
  private startNewcomer(): NodeId {
    const newcomer = this.nextNodeId;
    this.nextNodeId += 1;
    this.cluster.addReplica(newcomer);
    return newcomer;
  }

  /** Stops a replica that left the configuration, for good. */
  private retire(id: NodeId): void {
    this.cluster.destroyReplica(id);
    this.restarts.delete(id);
  }

  /**
   * Whether a quorum of `voters` (the configuration a change would make) is up to date with the
   * leader now, as etcd's `--strict-reconfig-check` demands. Without it, a change can leave the
   * new configuration depending on a replica that is far behind and still in an old
   * configuration, and the cluster stalls for good: that replica campaigns at ever higher terms
   * among members that are gone, and ignores the lower-term votes of the up-to-date one.
   */
  private keepsQuorum(voters: readonly NodeId[]): boolean {
    const leader = this.cluster.leader();
    if (leader === undefined) return false;
    const status = leader.node!.status();
    const upToDate = voters.filter((id) => {
      if (id === leader.id) return true;
      const progress = status.progress?.get(id);
      return progress !== undefined && progress.recentActive && progress.match >= status.commit;
    });
    return upToDate.length > voters.length / 2;
  }

  /** Whether a learner has the leader's committed log, or has had long enough to get it. */
  private isCaughtUp(id: NodeId, sinceTick: number, nowTick: number): boolean {
    const leader = this.cluster.leader();
    if (leader === undefined) return false;
    const status = leader.node!.status();
    const match = status.progress?.get(id)?.match ?? 0;
    return match >= status.commit || nowTick - sinceTick >= learnerCatchUpTicksMax;
  }
}

function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id) || conf.votersOutgoing.includes(id);
}
