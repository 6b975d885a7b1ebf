/**
 * The fault schedule of a simulation: partitions (symmetric halves, one isolated node, an
 * isolated leader, one-way links), crashes at every point of Ready handling with later restarts,
 * leadership transfers (to voters and, refused, to learners), membership changes (simple and
 * joint), Figure 8 rounds (leaders that replicate to a minority and crash, repeatedly, across
 * terms), stale-leader rounds (a leader cut off when it will lead longest), and process pauses
 * (mostly of the leader, from a tick to several election timeouts), all drawn from the seeded
 * generator and overlapping freely.
 */
import type { ConfChange, ConfChangeTransition, ConfChangeV2, ConfState, NodeId } from '../raft/index.js';
import type { SimCluster } from './cluster.js';
import type { Prng } from './prng.js';
import type { CrashPoint, SimReplica } from './replica.js';

export interface NemesisOptions {
  readonly crashes: boolean;
  readonly partitions: boolean;
  readonly transfers: boolean;
  readonly membershipChanges: boolean;
  /**
   * Figure 8 rounds (Raft paper, §5.4.2): leader after leader, across terms, is cut off with a
   * minority (at once, or once its commit index first moves, or after a few ticks), takes the
   * clients' writes it cannot commit, and crashes with them durable; each comes back only when the
   * next one crashed (`driveFigure8`). Random faults alone seldom line up the schedule that shows
   * an entry of an earlier term committed by counting replicas and then overwritten. Default false.
   */
  readonly figure8?: boolean;
  /** Probability per tick of starting a Figure 8 round when none runs; default 0.004. */
  readonly figure8RoundProbability?: number;
  /**
   * Process pauses: a replica, the leader most of the time, stops (no ticks, no input) for 1 to
   * 40 ticks, then catches up with its clock and handles what waited (`SimCluster.resume`). A
   * paused leader that resumes must not answer reads from a lease it lost meanwhile. Default false.
   */
  readonly pauses?: boolean;
  /** Probability per tick of starting a pause when none runs; default 0.004. */
  readonly pauseProbability?: number;
  /**
   * Stale-leader rounds: the leader is cut off from every other replica early in a CheckQuorum
   * round in which a quorum already answered, so that it leads for as long as CheckQuorum allows
   * (almost two election timeouts), while one of the others campaigns as soon as its lease lets
   * it, and clients still reach both (`driveStaleLeader`). The old leader's lease must run out
   * before the new one commits anything. Random partitions seldom strike at that point of the
   * leader's CheckQuorum clock. Default false.
   */
  readonly staleLeaders?: boolean;
  /** Probability per tick of starting a stale-leader round when none runs; default 0.004. */
  readonly staleLeaderProbability?: number;
  /** Probability of a crash per tick; default 0.008. */
  readonly crashProbability?: number;
}

export const allFaults: NemesisOptions = {
  crashes: true,
  partitions: true,
  transfers: true,
  membershipChanges: true,
  figure8: true,
  pauses: true,
  staleLeaders: true,
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
/** Per-tick probability of pausing a replica while none is paused. */
const defaultPauseProbability = 0.004;
/** Share of pauses that stop the leader rather than any replica. */
const pauseLeaderShare = 0.7;
/** Ticks a pause lasts: from one tick to four election timeouts (of 10 ticks). */
const pauseTicksMin = 1;
const pauseTicksMax = 40;
/** Per-tick probability of starting a stale-leader round while none runs and nothing is cut. */
const defaultStaleLeaderProbability = 0.004;
/** The latest point of the leader's CheckQuorum round (ticks into it) at which it is cut off. */
const staleLeaderCutElapsedMax = 2;
/** Ticks a stale-leader round waits for a leader at the right point of its clock. */
const staleLeaderArmedTicksMax = 40;
/** Ticks a stale leader stays cut off: two to four election timeouts (of 10 ticks). */
const staleLeaderCutTicksMin = 20;
const staleLeaderCutTicksMax = 40;
/** Per-tick probability of starting a Figure 8 round while a leader is up and nothing is cut. */
const defaultFigure8RoundProbability = 0.004;
/** Leaders a Figure 8 round cuts off and crashes, one after the other. */
const figure8LeadersMin = 2;
const figure8LeadersMax = 6;
/**
 * How long such a leader leads before it is cut off, in shares: not at all (before its first
 * append reaches anyone); until its commit index first moves (the entries it just committed have
 * reached a majority, the entries behind them maybe not); or for a few ticks.
 */
const figure8CutAtOnceShare = 0.35;
const figure8CutAtFirstCommitShare = 0.35;
const figure8LeadTicksMax = 8;
/** Ticks a leader waits for its first commit before it is cut off anyway. */
const figure8FirstCommitWaitTicksMax = 40;
/** Ticks it then takes writes, cut off with a minority, before it crashes. */
const figure8MinorityTicksMax = 10;
/** Ticks after which the previous leader of a Figure 8 round restarts, once the next one crashed. */
const figure8RestartTicksMax = 5;
/** Ticks after which the last leader of a Figure 8 round restarts, once the round is over. */
const figure8LastRestartTicksMin = 5;
const figure8LastRestartTicksMax = 40;
/** Ticks a Figure 8 round waits for its next leader before it ends. */
const figure8LeaderWaitTicksMax = 100;

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

/**
 * A Figure 8 round: a run of leaders, each of which leads for a few ticks, is then cut off with a
 * minority (taking writes it cannot commit) and crashes with them durable.
 */
type Figure8Round =
  | { readonly phase: 'idle' }
  | {
      readonly phase: 'waiting';
      readonly leadersLeft: number;
      readonly sinceTick: number;
      /** The next leader must be of a higher term. */
      readonly termAfter: number;
    }
  | {
      readonly phase: 'leading' | 'minority';
      readonly leadersLeft: number;
      readonly leader: NodeId;
      readonly term: number;
      /** When the phase ends: the leader is cut off ('leading'), or crashes ('minority'). */
      readonly untilTick: number;
      /** 'leading' only: the leader is cut off as soon as its commit index passes this. */
      readonly cutAfterCommit?: number;
    };

export class Nemesis {
  /** Counts of faults injected, for reports. */
  readonly counters = {
    partitions: 0,
    crashes: 0,
    transfers: 0,
    membershipChanges: 0,
    figure8Rounds: 0,
    staleLeaders: 0,
    pauses: 0,
  };
  private staleLeaderRound:
    | { readonly phase: 'idle' }
    | { readonly phase: 'armed'; readonly sinceTick: number }
    | {
        readonly phase: 'cut';
        readonly leader: NodeId;
        readonly healTick: number;
        /** The voter that campaigns as soon as it may; undefined once it did. */
        readonly candidate: NodeId | undefined;
      } = { phase: 'idle' };
  /** The replica paused now, and the tick it resumes at. */
  private pause: { readonly id: NodeId; readonly untilTick: number } | undefined;
  private healTick = 0;
  private readonly restarts = new Map<NodeId, number>();
  private membership: MembershipStep = { phase: 'idle' };
  private lastMembershipAttemptTick = -Infinity;
  private quiet = false;
  private figure8Round: Figure8Round = { phase: 'idle' };
  /** The last leader a Figure 8 round crashed, kept down until the next one crashes. */
  private figure8Held: NodeId | undefined;

  constructor(
    private readonly prng: Prng,
    private readonly cluster: SimCluster,
    private readonly options: NemesisOptions,
    private nextNodeId: NodeId,
  ) {}

  step(nowTick: number): void {
    if (!this.quiet) {
      if (this.options.figure8 === true) this.driveFigure8(nowTick);
      if (this.options.staleLeaders === true) this.driveStaleLeader(nowTick);
      if (
        this.options.partitions &&
        this.figure8Round.phase === 'idle' &&
        this.staleLeaderRound.phase === 'idle'
      ) {
        this.maybePartition(nowTick);
      }
      if (this.options.crashes) this.maybeCrash(nowTick);
      if (this.options.transfers) this.maybeTransfer();
      if (this.options.pauses === true) this.maybePause(nowTick);
    }
    if (this.pause !== undefined && nowTick >= this.pause.untilTick) {
      this.cluster.resume(this.pause.id);
      this.pause = undefined;
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
    this.figure8Round = { phase: 'idle' };
    this.figure8Held = undefined;
    this.staleLeaderRound = { phase: 'idle' };
    this.cluster.network.heal();
    this.cluster.network.faults = { dropProbability: 0, duplicateProbability: 0, delayTicksMax: 2 };
    this.restarts.clear();
    this.cluster.cancelCrashes();
    this.pause = undefined;
    this.cluster.resumeAll();
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

  /**
   * Figure 8 rounds (the Raft paper, Figure 8, on 3 or 5 replicas). Each leader of a round leads
   * for 0 to a few ticks, is cut off together with a minority of the voters (none of 3, one of
   * 5), appends the clients' writes, which cannot commit, and crashes with them durable; the
   * network heals and it restarts later. The next leader of a higher term gets the same, a few
   * times over. This leaves entries of different terms at the same indexes on different
   * minorities, and a leader of a later term that may replicate an earlier term's entries to a
   * majority and crash before its own entry follows: the schedule of Figure 8 (c) and (d).
   */
  private driveFigure8(nowTick: number): void {
    const round = this.figure8Round;
    const leader = this.cluster.leader();
    switch (round.phase) {
      case 'idle':
        if (leader === undefined || this.cluster.network.isPartitioned()) return;
        if (!this.prng.chance(this.options.figure8RoundProbability ?? defaultFigure8RoundProbability)) return;
        this.counters.figure8Rounds += 1;
        this.leadFigure8(leader, this.prng.between(figure8LeadersMin, figure8LeadersMax), nowTick);
        return;
      case 'waiting':
        if (leader !== undefined && leader.node!.raft.term > round.termAfter) {
          this.leadFigure8(leader, round.leadersLeft, nowTick);
        } else if (nowTick - round.sinceTick > figure8LeaderWaitTicksMax) {
          this.endFigure8Round(nowTick);
          this.figure8Round = { phase: 'idle' };
        }
        return;
      case 'leading': {
        const replica = this.cluster.replicas.get(round.leader);
        const raft = replica?.node?.raft;
        const committed =
          round.cutAfterCommit !== undefined &&
          raft !== undefined &&
          raft.term === round.term &&
          raft.raftLog.committed > round.cutAfterCommit;
        if (nowTick < round.untilTick && !committed) return;
        if (raft === undefined || raft.role !== 'leader' || raft.term !== round.term) {
          // It lost its leadership on its own: wait for the next leader.
          this.figure8Round = this.nextFigure8Leader(round.leadersLeft, round.term, nowTick);
          return;
        }
        this.cutOffWithMinority(replica!.id, replica!.confState.voters);
        this.figure8Round = {
          phase: 'minority',
          leadersLeft: round.leadersLeft,
          leader: round.leader,
          term: round.term,
          untilTick: nowTick + this.prng.between(0, figure8MinorityTicksMax),
        };
        // A leader cut off for 0 ticks crashes at once.
        this.driveFigure8(nowTick);
        return;
      }
      case 'minority':
        if (nowTick < round.untilTick) return;
        this.cluster.network.heal();
        if (this.cluster.replicas.get(round.leader)?.isUp === true) {
          this.counters.crashes += 1;
          this.cluster.scheduleCrash(round.leader, 'after-persist');
          // The previous leader of the round comes back now, this one only after the next one
          // crashed: a leader of an earlier term and one of a later term take turns (Figure 8).
          if (this.figure8Held !== undefined) {
            this.restarts.set(this.figure8Held, nowTick + this.prng.between(1, figure8RestartTicksMax));
          }
          this.figure8Held = round.leader;
        }
        this.figure8Round = this.nextFigure8Leader(round.leadersLeft, round.term, nowTick);
        return;
    }
  }

  /**
   * The round takes on `leader`: it is cut off at once, or when its commit index first moves, or
   * after a few ticks.
   */
  private leadFigure8(leader: SimReplica, leadersLeft: number, nowTick: number): void {
    const raft = leader.node!.raft;
    const base = {
      phase: 'leading',
      leadersLeft: leadersLeft - 1,
      leader: leader.id,
      term: raft.term,
    } as const;
    const draw = this.prng.next();
    if (draw < figure8CutAtOnceShare) {
      this.figure8Round = { ...base, untilTick: nowTick };
    } else if (draw < figure8CutAtOnceShare + figure8CutAtFirstCommitShare) {
      this.figure8Round = {
        ...base,
        untilTick: nowTick + figure8FirstCommitWaitTicksMax,
        cutAfterCommit: raft.raftLog.committed,
      };
    } else {
      this.figure8Round = { ...base, untilTick: nowTick + this.prng.between(1, figure8LeadTicksMax) };
    }
    // A leader cut off at once is cut off now, before its first append leaves.
    this.driveFigure8(nowTick);
  }

  private nextFigure8Leader(leadersLeft: number, term: number, nowTick: number): Figure8Round {
    if (leadersLeft > 0) return { phase: 'waiting', leadersLeft, sinceTick: nowTick, termAfter: term };
    this.endFigure8Round(nowTick);
    return { phase: 'idle' };
  }

  private endFigure8Round(nowTick: number): void {
    if (this.figure8Held === undefined) return;
    const delayTicks = this.prng.between(figure8LastRestartTicksMin, figure8LastRestartTicksMax);
    this.restarts.set(this.figure8Held, nowTick + delayTicks);
    this.figure8Held = undefined;
  }

  /** Cuts `leader` off together with a minority of `voters` (the largest minority it can be in). */
  private cutOffWithMinority(leader: NodeId, voters: readonly NodeId[]): void {
    const others = voters.filter((id) => id !== leader);
    const companionsMax = Math.max(0, Math.ceil((others.length + 1) / 2) - 2);
    const side = [leader, ...this.prng.shuffle([...others]).slice(0, companionsMax)];
    const rest = [...this.cluster.replicas.keys()].filter((id) => !side.includes(id));
    this.cluster.network.partition(side, rest);
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

  /**
   * Stale-leader rounds. CheckQuorum steps a leader down at the end of the first of its rounds
   * (one per election timeout) in which it heard from no quorum; cut off early in a round in which
   * a quorum already answered, it passes that round and leads for almost two election timeouts.
   * The followers, which last heard from it at the cut, elect a new leader after one to two
   * election timeouts; until the old one steps down, clients reach two leaders. The round reads
   * the leader's CheckQuorum clock (`electionElapsed`, `quorumActive`) to strike.
   */
  private driveStaleLeader(nowTick: number): void {
    const round = this.staleLeaderRound;
    switch (round.phase) {
      case 'idle':
        if (this.figure8Round.phase !== 'idle' || this.cluster.network.isPartitioned()) return;
        if (this.prng.chance(this.options.staleLeaderProbability ?? defaultStaleLeaderProbability)) {
          this.staleLeaderRound = { phase: 'armed', sinceTick: nowTick };
        }
        return;
      case 'armed': {
        const leader = this.cluster.leader();
        const raft = leader?.node?.raft;
        if (
          nowTick - round.sinceTick > staleLeaderArmedTicksMax ||
          this.cluster.network.isPartitioned() ||
          this.figure8Round.phase !== 'idle'
        ) {
          this.staleLeaderRound = { phase: 'idle' };
          return;
        }
        // Early in a CheckQuorum round, once a quorum answered in it: it will pass the next check.
        if (raft === undefined || !raft.config.checkQuorum) return;
        if (raft.electionElapsed > staleLeaderCutElapsedMax || !raft.tracker.quorumActive()) return;
        const others = [...this.cluster.replicas.keys()].filter((id) => id !== leader!.id);
        this.cluster.network.partition([leader!.id], others);
        const voters = leader!.confState.voters.filter((id) => id !== leader!.id);
        this.counters.staleLeaders += 1;
        this.staleLeaderRound = {
          phase: 'cut',
          leader: leader!.id,
          healTick: nowTick + this.prng.between(staleLeaderCutTicksMin, staleLeaderCutTicksMax),
          candidate: voters.length === 0 ? undefined : this.prng.pick(voters),
        };
        return;
      }
      case 'cut': {
        if (nowTick >= round.healTick) {
          this.cluster.network.heal();
          this.staleLeaderRound = { phase: 'idle' };
          return;
        }
        // The other side elects as early as the rules allow: one voter asks to campaign every
        // tick (`RawNode.campaign`, which the core ignores while the voter is inside a lease)
        // until it does.
        if (round.candidate === undefined || this.cluster.isPaused(round.candidate)) return;
        const raft = this.cluster.replicas.get(round.candidate)?.node?.raft;
        if (raft === undefined) return;
        if (raft.role !== 'follower') {
          this.staleLeaderRound = { ...round, candidate: undefined };
          return;
        }
        this.cluster.replicas.get(round.candidate)!.node!.campaign();
        return;
      }
    }
  }

  /** Pauses the leader (or, now and then, any running replica) for a while. */
  private maybePause(nowTick: number): void {
    if (this.pause !== undefined) return;
    if (!this.prng.chance(this.options.pauseProbability ?? defaultPauseProbability)) return;
    const running = this.cluster.runningReplicas();
    if (running.length === 0) return;
    const leader = this.cluster.leader();
    const victim =
      leader !== undefined && this.prng.chance(pauseLeaderShare) ? leader : this.prng.pick(running);
    this.counters.pauses += 1;
    this.cluster.pause(victim.id);
    this.pause = { id: victim.id, untilTick: nowTick + this.prng.between(pauseTicksMin, pauseTicksMax) };
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
