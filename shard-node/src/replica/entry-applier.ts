import type { Logger } from '@impulse/common';
import {
  RaftError,
  decodeConfChange,
  type ConfChange,
  type ConfChangeV2,
  type ConfState,
  type Entry,
} from '../raft/index.js';
import {
  StorageFault,
  consistencyVerdictOf,
  type AppliedEntry,
  type ReplicaStateMachine,
} from '../state-machine/index.js';
import type { MemberDirectory } from './member-directory.js';
import { parseMembershipContext, type MembershipToken } from './membership.js';

export interface EntryApplierOptions {
  readonly logger: Logger;
  readonly stateMachine: ReplicaStateMachine;
  readonly directory: MemberDirectory;
  /** Applies a committed change to the core's configuration (`RawNode.applyConfChange`). */
  readonly applyConfChange: (change: ConfChange | ConfChangeV2) => ConfState;
  readonly configuration: () => ConfState;
  readonly faulted: () => boolean;
  readonly onStorageFault: (fault: StorageFault) => void;
  /** Entries the state machine applied, and the membership changes among them that were asked here. */
  readonly onApplied: (results: readonly AppliedEntry[], memberships: readonly MembershipToken[]) => void;
  /** The state machine's directory, named in the fault a failed consistency verdict raises. */
  readonly stateDirectory: string;
}

/**
 * Applies committed entries: commands go to the state machine in one engine batch, membership
 * changes go to the core's configuration and to the member directory (which the state machine
 * stores in the same batch). Entries already applied (replayed after a restart or a snapshot)
 * only move the configuration and the directory.
 */
export class EntryApplier {
  /**
   * The highest committed index the core has handed to this host: applied, or passed over while
   * the state machine was faulted (a rebuild replays what lies past its snapshot from the log).
   */
  handedOutIndex: number;

  constructor(
    private readonly options: EntryApplierOptions,
    handedOutIndex: number,
  ) {
    this.handedOutIndex = handedOutIndex;
  }

  async apply(committed: readonly Entry[]): Promise<void> {
    const { stateMachine } = this.options;
    this.handedOutIndex = Math.max(this.handedOutIndex, committed.at(-1)?.index ?? 0);
    if (this.options.faulted()) {
      // Nothing reaches a damaged state machine; the configuration and the member directory still
      // follow the log, so that the core keeps counting votes and acknowledgements in the group's
      // real configuration, and the transport reaches members that joined meanwhile. A rebuild
      // replays these entries from the log into the rebuilt state machine.
      for (const entry of committed) if (entry.type !== 'normal') this.followMembershipChange(entry);
      return;
    }
    const alreadyApplied = stateMachine.appliedIndex;
    let entries = committed;
    if ((committed[0]?.index ?? Infinity) <= alreadyApplied) {
      // Replayed after a restart, or after a rebuild from a snapshot past them: the state machine
      // has these; only the configuration and the member directory follow them (in order, each
      // change ends as the state machine's member directory has it).
      for (const entry of committed) {
        if (entry.index > alreadyApplied || entry.type === 'normal') continue;
        this.followMembershipChange(entry);
      }
      entries = committed.filter((entry) => entry.index > alreadyApplied);
      if (entries.length === 0) return;
    }
    const confStates = new Map<number, ConfState>();
    const memberships: MembershipToken[] = [];
    let membersChanged = false;
    for (const entry of entries) {
      if (entry.type === 'normal') continue;
      const change = this.followMembershipChange(entry);
      confStates.set(entry.index, change.confState);
      membersChanged ||= change.membersChanged;
      if (change.token !== undefined) memberships.push(change.token);
    }
    const memberRecords = membersChanged ? this.options.directory.records() : undefined;
    let results: AppliedEntry[];
    try {
      results = await stateMachine.apply(entries, confStates, memberRecords);
    } catch (error) {
      if (!(error instanceof StorageFault)) throw error;
      this.options.onStorageFault(error);
      return;
    }
    this.options.onApplied(results, memberships);
    for (const result of results) {
      if (result.outcome !== 'consistency-verdict') continue;
      const entry = entries.find((candidate) => candidate.index === result.index) as Entry;
      void this.judgeConsistencyVerdict(entry);
    }
  }

  /**
   * Follows one committed membership change: the member directory (kept with the state machine,
   * so that every replica knows every peer), the transport's peers, and the core's configuration.
   */
  private followMembershipChange(entry: Entry): {
    confState: ConfState;
    membersChanged: boolean;
    token: MembershipToken | undefined;
  } {
    const change = decodeConfChange(entry.type, entry.data);
    const context = parseMembershipContext(change.context);
    const singles = 'changes' in change ? change.changes : [change];
    let confState: ConfState;
    try {
      confState = this.options.applyConfChange(change);
    } catch (error) {
      // A change the configuration cannot take (removing every voter, a second change while
      // joint): the leader never proposes one, but a member could. It depends only on the
      // configuration before it, which every replica shares at this index, so every replica
      // skips it alike; ending the process on it would hand any member a way to stop the group.
      if (!(error instanceof RaftError) || error.code !== 'RAFT_CONF_CHANGE_INVALID') throw error;
      this.options.logger.error(
        { index: entry.index, change: JSON.stringify(singles), err: error },
        'replica: a committed membership change is invalid in the configuration; skipped',
      );
      return { confState: this.options.configuration(), membersChanged: false, token: context?.token };
    }
    const directory = this.options.directory;
    let membersChanged = false;
    for (const single of singles) {
      if (single.type === 'removeNode') {
        // Remembered as removed even when the directory never named it (its messages are refused).
        membersChanged = true;
        directory.forget(single.nodeId);
      } else if (context?.member !== undefined && context.member.raftId === single.nodeId) {
        directory.reach(context.member);
        membersChanged = true;
      }
    }
    this.options.logger.info(
      { index: entry.index, change: JSON.stringify(singles) },
      'replica: membership change applied',
    );
    return { confState, membersChanged, token: context?.token };
  }

  /**
   * A consistency verdict: the hash a majority of the group's voters computed at a check's index.
   * A replica whose own hash there differs has diverged: a storage fault of kind `divergent`,
   * which its rebuild from the leader's snapshot ends. A replica that did not hash that index (it
   * started later, or installed a snapshot past it) has nothing to compare and goes on.
   */
  private async judgeConsistencyVerdict(entry: Entry): Promise<void> {
    const verdict = consistencyVerdictOf(entry.data);
    if (verdict === undefined) return;
    const reference = Buffer.from(verdict.hash).toString('hex');
    const own = await this.options.stateMachine.consistencyHashAt(verdict.checkIndex);
    if (own === undefined) return;
    if (own.hash === reference) {
      this.options.logger.info(
        { checkIndex: verdict.checkIndex, hash: own.hash },
        'replica: consistency verdict: this replica agrees with its group',
      );
      return;
    }
    this.options.onStorageFault(
      new StorageFault(
        `a consistency check at index ${verdict.checkIndex} found this replica's state different from its group's: it hashes to ${own.hash} (${own.keys} records), a majority of the voters to ${reference}`,
        { kind: 'divergent', file: this.options.stateDirectory },
      ),
    );
  }
}
