/**
 * The host's check of every Raft message a peer sent, before the core sees it. The transport has
 * already checked the frame, the handshake (the sender holds the cluster secret) and that each
 * message is from the connection's peer and to this replica. What remains is what a peer, buggy
 * or hostile, can still say with well-formed bytes: a message the core would take as its own
 * (term 0), one this host never takes from the network (proposals, leadership transfers and read
 * requests are local here), entries that contradict their own message, or an index or commit past
 * anything this replica's log holds. The core keeps its assertions for its own invariants; these
 * would fire them (a commit past the log ends the process), so they are dropped here, counted.
 *
 * The sender must be a member, with one exception: a leader's messages to a follower (append,
 * heartbeat, snapshot) and a candidate's vote requests, from a sender this replica does not know,
 * when the transport proved the sending node's address. A replica cut off while its group replaced
 * members does not know the new leader until that leader's entries reach it, nor a new member that
 * needs its vote to elect one; Raft validates these messages by their term and log, as it would a
 * member's. A removed sender stays refused, and so do an unknown sender's other messages
 * (docs/decisions/0014-answer-unknown-leaders.md).
 */
import { decodeConfChange, type Entry, type Message, type MessageType, type NodeId } from '../raft/index.js';
import type { InboundSender } from './replica-transport.js';

/** Why a peer's message was dropped. Kept small: it labels a metric. */
export type PeerMessageRefusal =
  /**
   * The sender is not in this replica's member directory (or is this replica), and the message is
   * not a leader's to a follower or a candidate's vote request from a node whose address the
   * transport proved.
   */
  | 'unknownSender'
  /** The sender was removed from the group (a removed replica still running). */
  | 'removedSender'
  /** A type this host only ever makes locally (MsgProp, MsgReadIndex, MsgTransferLeader). */
  | 'localOnly'
  /** Term 0, which the core takes for a local message. */
  | 'zeroTerm'
  /** Entries that are not the contiguous run after `index`, or terms that contradict the message's. */
  | 'inconsistentEntries'
  /** A commit or acknowledged index past this replica's last log index. */
  | 'beyondLog'
  /** A snapshot message without a usable snapshot. */
  | 'badSnapshot'
  /**
   * A term or index no real group reaches (`termMax`, `indexMax`): taking one would leave this
   * replica's counters a few elections or entries from the largest safe integer.
   */
  | 'implausible';

export const peerMessageRefusals: readonly PeerMessageRefusal[] = [
  'unknownSender',
  'removedSender',
  'localOnly',
  'zeroTerm',
  'inconsistentEntries',
  'beyondLog',
  'badSnapshot',
  'implausible',
];

/** No group holds more elections than this (one every 100 ms for 890 years). */
export const termMax = 2 ** 48;
/** No log holds more entries than this (a million a second for 142 years). */
export const indexMax = 2 ** 52;

/**
 * What a leader sends a follower, and what a candidate asks of a voter: the messages Raft validates
 * by term and log whoever sends them, and the only ones taken from a sender the directory does not
 * know. A vote is counted by the candidate's own configuration, and granted by the usual rules
 * (one per term, to a log at least as up to date), so answering an unknown candidate is what
 * etcd's raft does for any sender; PreVote and CheckQuorum keep one that cannot win from raising
 * terms.
 */
export const unknownSenderTypes: ReadonlySet<MessageType> = new Set([
  'MsgApp',
  'MsgHeartbeat',
  'MsgSnap',
  'MsgVote',
  'MsgPreVote',
]);

export interface PeerMessageContext {
  readonly selfId: NodeId;
  isMember(id: NodeId): boolean;
  /** Whether `id` was removed from the group (`MemberDirectory.isRemoved`). */
  isRemoved(id: NodeId): boolean;
  /** The core's last log index (unstable entries included). */
  lastIndex(): number;
}

/**
 * Why `message` must be dropped, or undefined when the core may take it. `sender` is what the
 * transport proved of the sending node, if it proves anything (`InboundSender`).
 */
export function refusalOf(
  message: Message,
  context: PeerMessageContext,
  sender?: InboundSender,
): PeerMessageRefusal | undefined {
  if (message.from === context.selfId) return 'unknownSender';
  if (!context.isMember(message.from)) {
    if (context.isRemoved(message.from)) return 'removedSender';
    if (sender === undefined || !unknownSenderTypes.has(message.type)) return 'unknownSender';
  }
  switch (message.type) {
    case 'MsgProp':
    case 'MsgReadIndex':
    case 'MsgTransferLeader':
      return 'localOnly';
    default:
      break;
  }
  if (message.term === 0) return 'zeroTerm';
  if (
    message.term > termMax ||
    message.logTerm > termMax ||
    message.index > indexMax ||
    message.commit > indexMax ||
    message.rejectHint > indexMax
  )
    return 'implausible';
  switch (message.type) {
    case 'MsgApp': {
      if (message.logTerm > message.term) return 'inconsistentEntries';
      let previousTerm = message.logTerm;
      if (message.index + message.entries.length > indexMax) return 'implausible';
      for (const [position, entry] of message.entries.entries()) {
        if (entry.index !== message.index + 1 + position) return 'inconsistentEntries';
        if (entry.term < previousTerm || entry.term > message.term) return 'inconsistentEntries';
        if (entry.type !== 'normal' && !isDecodableConfChange(entry)) return 'inconsistentEntries';
        previousTerm = entry.term;
      }
      return undefined;
    }
    case 'MsgHeartbeat':
      // A leader sends min(match, commit): never past what it knows this log holds.
      return message.commit > context.lastIndex() ? 'beyondLog' : undefined;
    case 'MsgAppResp':
      // An acknowledgement, or the probe it rejects, is of an index this leader sent.
      if (message.index > context.lastIndex()) return 'beyondLog';
      return message.reject && message.rejectHint > message.index ? 'beyondLog' : undefined;
    case 'MsgVote':
    case 'MsgPreVote':
      return message.logTerm > message.term ? 'inconsistentEntries' : undefined;
    case 'MsgSnap': {
      const snapshot = message.snapshot;
      if (snapshot === undefined) return 'badSnapshot';
      const { index, term, confState } = snapshot.metadata;
      if (index === 0 || term === 0 || term > message.term || confState.voters.length === 0)
        return 'badSnapshot';
      if (index > indexMax) return 'implausible';
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * A membership entry must decode: once committed, every replica applies it, and one that does not
 * decode would stop the Ready loop (a normal entry that is not a command is skipped alike by all).
 */
function isDecodableConfChange(entry: Entry): boolean {
  try {
    decodeConfChange(entry.type, entry.data);
    return true;
  } catch {
    return false;
  }
}
