/**
 * Applying membership changes to a configuration (thesis §4): single changes, and entering and
 * leaving a joint configuration. Every function works on copies and returns the new
 * configuration and progress map, or throws a RaftError (RAFT_CONF_CHANGE_INVALID) when the
 * change does not fit the current configuration; the current state is never half-changed.
 */
import { assert, RaftError, fail } from './errors.js';
import { Inflights } from './inflights.js';
import { Progress } from './progress.js';
import { JointConfig, MajorityConfig } from './quorum.js';
import { type ProgressMap, TrackerConfig } from './tracker.js';
import type { ConfChangeSingle, ConfState, NodeId } from './types.js';

export interface ChangeResult {
  readonly config: TrackerConfig;
  readonly progress: ProgressMap;
}

function invalid(message: string): RaftError {
  return new RaftError('RAFT_CONF_CHANGE_INVALID', `raft: conf change invalid: ${message}`);
}

/** Builds new configurations from a base one; `lastIndex` seeds the progress of new members. */
export class Changer {
  readonly config: TrackerConfig;
  readonly progress: ProgressMap;
  readonly lastIndex: number;
  readonly maxInflightMessages: number;
  readonly maxInflightBytes: number;

  constructor(options: {
    config: TrackerConfig;
    progress: ProgressMap;
    lastIndex: number;
    maxInflightMessages: number;
    maxInflightBytes: number;
  }) {
    this.config = options.config;
    this.progress = options.progress;
    this.lastIndex = options.lastIndex;
    this.maxInflightMessages = options.maxInflightMessages;
    this.maxInflightBytes = options.maxInflightBytes;
  }

  /**
   * Enters a joint configuration: the current voters become the outgoing majority, and the
   * changes apply to the incoming one. Both must agree on every decision until it is left.
   */
  enterJoint(autoLeave: boolean, changes: readonly ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.voters.isJoint()) {
      throw invalid('config is already joint');
    }
    if (config.voters.incoming.size === 0) {
      // A configuration without voters cannot decide anything, so it cannot be left either.
      throw invalid("can't make a zero-voter config joint");
    }
    config.voters = new JointConfig(
      new MajorityConfig(config.voters.incoming.ids),
      new MajorityConfig(config.voters.incoming.ids),
    );
    this.apply(config, progress, changes);
    config.autoLeave = autoLeave;
    return this.checkAndReturn(config, progress);
  }

  /**
   * Leaves the joint configuration: the outgoing majority is dropped, demoted voters become
   * learners, and nodes no longer in any role lose their progress.
   */
  leaveJoint(): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (!config.voters.isJoint()) {
      throw invalid("can't leave a non-joint config");
    }
    for (const id of config.learnersNext) {
      config.learners.add(id);
      progress.get(id)!.isLearner = true;
    }
    config.learnersNext.clear();
    for (const id of config.voters.outgoing.ids) {
      if (!config.voters.incoming.has(id) && !config.learners.has(id)) {
        progress.delete(id);
      }
    }
    config.voters = new JointConfig(new MajorityConfig(config.voters.incoming.ids));
    config.autoLeave = false;
    return this.checkAndReturn(config, progress);
  }

  /**
   * Applies changes that alter the voters by at most one node, which keeps any old and new
   * majority overlapping without a joint phase (the single-server change of thesis §4.1).
   */
  simple(changes: readonly ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.checkAndCopy();
    if (config.voters.isJoint()) {
      throw invalid("can't apply simple config change in joint config");
    }
    this.apply(config, progress, changes);
    const before = this.config.voters.incoming.ids;
    const after = config.voters.incoming.ids;
    let changed = 0;
    for (const id of before) if (!after.has(id)) changed++;
    for (const id of after) if (!before.has(id)) changed++;
    if (changed > 1) {
      throw invalid('more than one voter changed without entering joint config');
    }
    return this.checkAndReturn(config, progress);
  }

  private apply(config: TrackerConfig, progress: ProgressMap, changes: readonly ConfChangeSingle[]): void {
    for (const change of changes) {
      if (change.nodeId === 0) {
        // A zero id marks a change the application decided not to carry out; skip it as etcd does.
        continue;
      }
      switch (change.type) {
        case 'addNode':
          this.makeVoter(config, progress, change.nodeId);
          break;
        case 'addLearnerNode':
          this.makeLearner(config, progress, change.nodeId);
          break;
        case 'removeNode':
          this.remove(config, progress, change.nodeId);
          break;
      }
    }
    if (config.voters.incoming.size === 0) {
      throw invalid('removed all voters');
    }
  }

  private makeVoter(config: TrackerConfig, progress: ProgressMap, id: NodeId): void {
    const existing = progress.get(id);
    if (existing === undefined) {
      this.initProgress(config, progress, id, false);
      return;
    }
    existing.isLearner = false;
    config.learners.delete(id);
    config.learnersNext.delete(id);
    config.voters.incoming.ids.add(id);
  }

  /**
   * Makes `id` a learner. A voter of the outgoing majority cannot become a learner while joint (it
   * still votes there), so it is staged in learnersNext until the joint configuration is left.
   */
  private makeLearner(config: TrackerConfig, progress: ProgressMap, id: NodeId): void {
    const existing = progress.get(id);
    if (existing === undefined) {
      this.initProgress(config, progress, id, true);
      return;
    }
    if (existing.isLearner) {
      return;
    }
    this.remove(config, progress, id);
    // `remove` may have dropped the progress; a learner keeps it.
    progress.set(id, existing);
    if (config.voters.outgoing.has(id)) {
      config.learnersNext.add(id);
    } else {
      existing.isLearner = true;
      config.learners.add(id);
    }
  }

  private remove(config: TrackerConfig, progress: ProgressMap, id: NodeId): void {
    if (!progress.has(id)) {
      return;
    }
    config.voters.incoming.ids.delete(id);
    config.learners.delete(id);
    config.learnersNext.delete(id);
    // A voter of the outgoing majority keeps its progress until the joint configuration is left.
    if (!config.voters.outgoing.has(id)) {
      progress.delete(id);
    }
  }

  private initProgress(config: TrackerConfig, progress: ProgressMap, id: NodeId, isLearner: boolean): void {
    if (isLearner) {
      config.learners.add(id);
    } else {
      config.voters.incoming.ids.add(id);
    }
    progress.set(
      id,
      new Progress({
        // Probing from the last index costs one round trip if the node is up to date, and the
        // rejection hint gets a new node to the right place fast otherwise.
        next: Math.max(this.lastIndex, 1),
        match: 0,
        inflights: new Inflights(this.maxInflightMessages, this.maxInflightBytes),
        isLearner,
        // Count the new member as active so that it can be sent a snapshot right away, before the
        // first CheckQuorum round would mark it.
        recentActive: true,
      }),
    );
  }

  private checkAndCopy(): { config: TrackerConfig; progress: ProgressMap } {
    const config = this.config.clone();
    const progress: ProgressMap = new Map();
    for (const [id, p] of this.progress) {
      progress.set(id, p.clone());
    }
    checkInvariants(config, progress);
    return { config, progress };
  }

  private checkAndReturn(config: TrackerConfig, progress: ProgressMap): ChangeResult {
    checkInvariants(config, progress);
    return { config, progress };
  }
}

/** Asserts the structural invariants of a configuration; a failure is a bug, not bad input. */
export function checkInvariants(config: TrackerConfig, progress: ProgressMap): void {
  for (const id of config.voters.sortedIds()) {
    if (!progress.has(id)) fail(`no progress for voter ${id}`);
  }
  for (const id of config.learners) {
    if (!progress.has(id)) fail(`no progress for learner ${id}`);
    if (config.voters.outgoing.has(id)) fail(`${id} is in learners and outgoing voters`);
    if (config.voters.incoming.has(id)) fail(`${id} is in learners and incoming voters`);
    if (!progress.get(id)!.isLearner) fail(`${id} is in learners but is not marked as learner`);
  }
  for (const id of config.learnersNext) {
    if (!progress.has(id)) fail(`no progress for learner-next ${id}`);
    if (!config.voters.outgoing.has(id)) fail(`${id} is in learnersNext but not in outgoing voters`);
    if (progress.get(id)!.isLearner) fail(`${id} is in learnersNext but is already marked as learner`);
  }
  if (!config.voters.isJoint()) {
    assert(config.learnersNext.size === 0, 'learnersNext must be empty outside a joint config');
    assert(!config.autoLeave, 'autoLeave must be false outside a joint config');
  }
}

/**
 * Rebuilds a configuration from a ConfState (at start-up or from a snapshot) by replaying it as
 * a sequence of changes from an empty configuration: first the outgoing voters as simple
 * additions, then a joint entry that turns them into the incoming configuration.
 */
export function restoreConfiguration(
  confState: ConfState,
  options: { lastIndex: number; maxInflightMessages: number; maxInflightBytes: number },
): ChangeResult {
  const outgoing: ConfChangeSingle[] = [];
  const incoming: ConfChangeSingle[] = [];
  for (const id of confState.votersOutgoing) {
    outgoing.push({ type: 'addNode', nodeId: id });
    incoming.push({ type: 'removeNode', nodeId: id });
  }
  for (const id of confState.voters) incoming.push({ type: 'addNode', nodeId: id });
  for (const id of confState.learners) incoming.push({ type: 'addLearnerNode', nodeId: id });
  for (const id of confState.learnersNext) incoming.push({ type: 'addLearnerNode', nodeId: id });

  let result: ChangeResult = { config: new TrackerConfig(), progress: new Map() };
  const changer = (base: ChangeResult): Changer => new Changer({ ...options, ...base });
  if (outgoing.length === 0) {
    // Not joint: apply one change at a time, each a valid simple change from the previous state.
    for (const change of incoming) {
      result = changer(result).simple([change]);
    }
  } else {
    for (const change of outgoing) {
      result = changer(result).simple([change]);
    }
    result = changer(result).enterJoint(confState.autoLeave, incoming);
  }
  return result;
}
