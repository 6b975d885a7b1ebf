import { ImpulseError } from '@impulse/common';
import type { ConfChange, ConfState, NodeId } from '../raft/index.js';
import { isMemberSpec, type MemberDirectory, type MemberSpec } from './member-directory.js';

export type MembershipChange =
  | { readonly type: 'addLearner'; readonly member: MemberSpec }
  | { readonly type: 'promote'; readonly raftId: NodeId }
  | { readonly type: 'remove'; readonly raftId: NodeId };

/** Names one membership change, so that the replica that proposed it can answer its caller. */
export type MembershipToken = string;

/** What the leader knows that decides whether a change may be proposed. */
export interface MembershipView {
  readonly config: ConfState;
  readonly commit: number;
  /** The highest index each member acknowledged (leader only). */
  readonly matchOf: (raftId: NodeId) => number;
}

/**
 * The conf change for `change`, or a MEMBERSHIP_CHANGE_REFUSED error saying why it must not be
 * proposed. Adding takes the new member's addresses, which travel in the entry so that every
 * replica (and every snapshot) learns them. Promotion is refused while the learner is behind.
 */
export function membershipProposal(
  change: MembershipChange,
  view: MembershipView,
  directory: MemberDirectory,
  token: MembershipToken,
  catchUpEntriesMax: number,
): ConfChange {
  const config = view.config;
  switch (change.type) {
    case 'addLearner': {
      // Membership is the configuration's: the directory only holds members' addresses.
      const inConfiguration = new Set([...config.voters, ...config.learners, ...config.votersOutgoing]);
      if (
        inConfiguration.has(change.member.raftId) ||
        directory
          .values()
          .some(
            (member) => member.replicaId === change.member.replicaId && inConfiguration.has(member.raftId),
          )
      ) {
        throw membershipRefused(
          `raft id ${change.member.raftId} or replica ${change.member.replicaId} is already a member`,
        );
      }
      // Its messages are refused as a removed member's (decision 0014), and a Raft id reused after
      // its removal could vote again in a term it voted in: a replica comes back under a new id.
      if (directory.isRemoved(change.member.raftId))
        throw membershipRefused(
          `raft id ${change.member.raftId} was removed from this group; add the replica under a new raft id`,
        );
      return {
        type: 'addLearnerNode',
        nodeId: change.member.raftId,
        context: membershipContext(token, change.member),
      };
    }
    case 'promote': {
      if (!config.learners.includes(change.raftId))
        throw membershipRefused(`raft id ${change.raftId} is not a learner`);
      const match = view.matchOf(change.raftId);
      // A learner that acknowledged nothing holds nothing, however short the log: it must take
      // its first snapshot as a learner (a joiner whose first snapshot names it a voter takes it
      // for a voter that lost its data, and refuses it).
      if (match === 0)
        throw membershipRefused(
          'the learner has not received its snapshot yet; promote it once it caught up',
        );
      if (view.commit - match > catchUpEntriesMax) {
        throw membershipRefused(
          `the learner is ${view.commit - match} entries behind; promote it once it caught up`,
        );
      }
      return { type: 'addNode', nodeId: change.raftId, context: membershipContext(token) };
    }
    case 'remove': {
      const isMember = config.voters.includes(change.raftId) || config.learners.includes(change.raftId);
      if (!isMember) throw membershipRefused(`raft id ${change.raftId} is not a member`);
      return { type: 'removeNode', nodeId: change.raftId, context: membershipContext(token) };
    }
  }
}

/** The context of a membership entry: who asked (to answer them) and, when adding, who joins. */
function membershipContext(token: MembershipToken, member?: MemberSpec): Uint8Array {
  return Buffer.from(JSON.stringify(member === undefined ? { token } : { token, member }));
}

/** A membership entry's context, as far as it parses (any member may have written it). */
export function parseMembershipContext(
  context: Uint8Array | undefined,
): { token?: MembershipToken; member?: MemberSpec } | undefined {
  if (context === undefined || context.byteLength === 0) return undefined;
  try {
    const value = JSON.parse(Buffer.from(context).toString('utf8')) as {
      token?: unknown;
      member?: unknown;
    };
    return {
      ...(typeof value.token === 'string' ? { token: value.token } : {}),
      ...(isMemberSpec(value.member) ? { member: value.member } : {}),
    };
  } catch {
    return undefined;
  }
}

export function membershipRefused(message: string): ImpulseError {
  return new ImpulseError('MEMBERSHIP_CHANGE_REFUSED', message);
}
