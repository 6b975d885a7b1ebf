/**
 * The progress tracker: the active configuration (voters, learners) and the leader's progress for
 * every member, with the quorum questions asked of them (what is committed, who won a vote, is a
 * quorum still active).
 */
import type { Progress } from './progress.js';
import { JointConfig, MajorityConfig, type VoteResult } from './quorum.js';
import type { ConfState, NodeId } from './types.js';

/** A membership configuration, as the tracker and the conf-change logic see it. */
export class TrackerConfig {
  voters: JointConfig;
  /** Whether the leader leaves the joint configuration by itself once it is applied. */
  autoLeave: boolean;
  /** Learners; never voters in either side of the joint configuration. */
  learners: Set<NodeId>;
  /**
   * Voters of the outgoing side that become learners when the joint configuration is left. They
   * cannot be in `learners` yet, since a node is never a voter and a learner at the same time.
   */
  learnersNext: Set<NodeId>;

  constructor(
    voters: JointConfig = new JointConfig(),
    autoLeave = false,
    learners: Iterable<NodeId> = [],
    learnersNext: Iterable<NodeId> = [],
  ) {
    this.voters = voters;
    this.autoLeave = autoLeave;
    this.learners = new Set(learners);
    this.learnersNext = new Set(learnersNext);
  }

  clone(): TrackerConfig {
    return new TrackerConfig(
      new JointConfig(
        new MajorityConfig(this.voters.incoming.ids),
        new MajorityConfig(this.voters.outgoing.ids),
      ),
      this.autoLeave,
      this.learners,
      this.learnersNext,
    );
  }

  toConfState(): ConfState {
    const sorted = (ids: Iterable<NodeId>): NodeId[] => [...ids].sort((a, b) => a - b);
    return {
      voters: this.voters.incoming.sortedIds(),
      learners: sorted(this.learners),
      votersOutgoing: this.voters.outgoing.sortedIds(),
      learnersNext: sorted(this.learnersNext),
      autoLeave: this.autoLeave,
    };
  }

  toString(): string {
    let text = `voters=${this.voters.toString()}`;
    if (this.learners.size > 0) text += ` learners=(${[...this.learners].sort((a, b) => a - b).join(' ')})`;
    if (this.learnersNext.size > 0) {
      text += ` learners_next=(${[...this.learnersNext].sort((a, b) => a - b).join(' ')})`;
    }
    if (this.autoLeave) text += ' autoleave';
    return text;
  }
}

export type ProgressMap = Map<NodeId, Progress>;

export class ProgressTracker {
  config: TrackerConfig = new TrackerConfig();
  progress: ProgressMap = new Map();
  /** Votes received in the current (pre-)election. */
  readonly votes = new Map<NodeId, boolean>();
  readonly maxInflightMessages: number;
  readonly maxInflightBytes: number;
  /** Progress ids in increasing order, so that every visit (and every transcript) is deterministic. */
  private sortedIds: NodeId[] = [];
  private readonly ackedIndexer = (id: NodeId): number | undefined => this.progress.get(id)?.match;

  constructor(maxInflightMessages: number, maxInflightBytes: number) {
    this.maxInflightMessages = maxInflightMessages;
    this.maxInflightBytes = maxInflightBytes;
  }

  /** Installs a configuration and its progress map, produced by the conf-change logic. */
  setConfiguration(config: TrackerConfig, progress: ProgressMap): void {
    this.config = config;
    this.progress = progress;
    this.sortedIds = [...progress.keys()].sort((a, b) => a - b);
  }

  confState(): ConfState {
    return this.config.toConfState();
  }

  /** Whether this is a single-voter configuration (a node that can decide alone). */
  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && this.config.voters.outgoing.size === 0;
  }

  /** The largest index acknowledged by a quorum (both majorities when joint). */
  committed(): number {
    return this.config.voters.committedIndex(this.ackedIndexer);
  }

  /** Calls `visit` for every member (voters and learners) in increasing id order. */
  visit(visit: (id: NodeId, progress: Progress) => void): void {
    for (const id of this.sortedIds) {
      visit(id, this.progress.get(id)!);
    }
  }

  /** Member ids in increasing order. */
  ids(): readonly NodeId[] {
    return this.sortedIds;
  }

  /** Whether a quorum of voters was heard from recently (the leader's own entry is always active). */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    for (const [id, progress] of this.progress) {
      if (!progress.isLearner) {
        votes.set(id, progress.recentActive);
      }
    }
    return this.config.voters.voteResult(votes) === 'won';
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote; a voter's first answer counts, later duplicates are ignored. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) {
      this.votes.set(id, granted);
    }
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, progress] of this.progress) {
      if (progress.isLearner) continue;
      const vote = this.votes.get(id);
      if (vote === undefined) continue;
      if (vote) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.config.voters.voteResult(this.votes) };
  }
}
