/**
 * Coalesced heartbeats (CockroachDB's, over this transport's frames). A node that leads many
 * groups whose followers share a node sends, on each tick, one heartbeat per group to that node;
 * the frame of the round already carries them all, and coalescing writes them as one section of
 * compact entries instead of one run per group (`group-messages.ts`, section kind 2). The receiver
 * expands each entry back into the exact MsgHeartbeat or MsgHeartbeatResp the sending core made,
 * and hands it to its group's replica with the group's other messages of the frame. Responses are
 * coalesced the same way on the way back.
 *
 * Only messages that an entry carries whole are coalesced (`isCoalescible`): a heartbeat is its
 * type, sender, receiver, term, commit, index (the lease stamp) and context (a ReadIndex context);
 * every other field is zero. So expanding is lossless, field for field: the core sees the same
 * messages, sent in the same round (nothing waits to be coalesced), each with its own term,
 * commit, stamp and context. See docs/decisions/0013-node-transport.md for why that keeps leases
 * and ReadIndex safe.
 *
 * Entry: string group id · u8 type tag (8 MsgHeartbeat, 9 MsgHeartbeatResp: etcd's raftpb
 * numbers) · varint from · varint to · varint term · varint commit · varint index · bytes context.
 */
import { EMPTY_BYTES, type Message } from '../raft/index.js';
import { malformed, type BufferReader } from './buffer-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import { messageTypeTags } from './codec.js';
import { assert } from './errors.js';
import { readGroupId, writeGroupId } from './group-id.js';

/**
 * The fewest bytes an entry takes (a one-byte group id, the type tag, five one-byte varints and
 * an empty context). Counts read from the wire are checked against it before any array grows.
 */
export const heartbeatEntryBytesMin = 2 + 1 + 5 + 1;

/** A heartbeat (or its response) whose every field an entry carries: the only ones coalesced. */
export function isCoalescible(message: Message): boolean {
  return (
    (message.type === 'MsgHeartbeat' || message.type === 'MsgHeartbeatResp') &&
    message.logTerm === 0 &&
    message.entries.length === 0 &&
    !message.reject &&
    message.rejectHint === 0 &&
    message.snapshot === undefined
  );
}

/**
 * Planted bugs of the coalescer, for the node simulator's mutation tests only (docs/raft.md, "The
 * node simulator's mutants"): each breaks one rule of the safety argument in
 * docs/decisions/0013-node-transport.md, so that the simulator can be seen to catch an unsafe
 * coalescer. Production never plants one: `NodeTransport` never calls `nodeResponsesTo`, no
 * production source outside this file and the package index may name them (an eslint rule, and
 * `shard-node/test/raft-sim/mutants-production.test.ts`), and only the simulator passes one.
 */
export const coalescerMutants = [
  /**
   * The receiving node acknowledges every coalesced heartbeat itself, at once, on behalf of the
   * replica it is addressed to, echoing the heartbeat's term, lease stamp and ReadIndex context
   * (an "optimization" that saves the follower's round). It breaks rule 2: the transport never
   * makes a response. The acknowledgement claims a term the replica may have left, and is made
   * whether or not the heartbeat ever reaches the replica, so a deposed leader can confirm a
   * ReadIndex or renew a lease on it.
   */
  'node-acknowledges-heartbeats',
] as const;

/** One planted bug of the coalescer; see `coalescerMutants`. */
export type CoalescerMutant = (typeof coalescerMutants)[number];

/**
 * The responses the receiving node makes by itself for the coalesced heartbeat entries it
 * received: none, as rule 2 requires (every response is made by the addressed replica's core,
 * after it stepped the heartbeat). Only with a planted bug (`coalescerMutants`, test only) does
 * it make some.
 */
export function nodeResponsesTo(
  entries: ReadonlyArray<{ readonly groupId: string; readonly message: Message }>,
  mutant: CoalescerMutant | undefined,
): Array<{ readonly groupId: string; readonly message: Message }> {
  if (mutant !== 'node-acknowledges-heartbeats') return [];
  // MUTANT (test only): the node answers for its replica, in the heartbeat's term, with its stamp
  // and context, without asking the replica's core.
  return entries
    .filter(({ message }) => message.type === 'MsgHeartbeat')
    .map(({ groupId, message }) => ({
      groupId,
      message: {
        type: 'MsgHeartbeatResp',
        from: message.to,
        to: message.from,
        term: message.term,
        logTerm: 0,
        index: message.index,
        entries: [],
        commit: 0,
        reject: false,
        rejectHint: 0,
        context: message.context,
      },
    }));
}

export function encodeHeartbeatEntry(writer: BufferWriter, groupId: string, message: Message): void {
  assert(isCoalescible(message), `a ${message.type} with fields an entry cannot carry is not coalesced`);
  writeGroupId(writer, groupId);
  writer.writeUint8(messageTypeTags[message.type as 'MsgHeartbeat' | 'MsgHeartbeatResp']);
  writer.writeVarint(message.from);
  writer.writeVarint(message.to);
  writer.writeVarint(message.term);
  writer.writeVarint(message.commit);
  writer.writeVarint(message.index);
  writer.writeLengthPrefixedBytes(message.context);
}

/** Decodes one entry into the message it stands for; throws `PeerFrameMalformedError` on bad bytes. */
export function decodeHeartbeatEntry(reader: BufferReader): {
  readonly groupId: string;
  readonly message: Message;
} {
  const groupId = readGroupId(reader);
  const tag = reader.readUint8();
  const type =
    tag === messageTypeTags.MsgHeartbeat
      ? 'MsgHeartbeat'
      : tag === messageTypeTags.MsgHeartbeatResp
        ? 'MsgHeartbeatResp'
        : undefined;
  if (type === undefined) throw malformed(`a coalesced heartbeat of type tag ${tag}`);
  const from = reader.readVarint();
  const to = reader.readVarint();
  const term = reader.readVarint();
  const commit = reader.readVarint();
  const index = reader.readVarint();
  const context = reader.readLengthPrefixedBytes(EMPTY_BYTES);
  return {
    groupId,
    message: {
      type,
      from,
      to,
      term,
      logTerm: 0,
      index,
      entries: [],
      commit,
      reject: false,
      rejectHint: 0,
      context,
    },
  };
}
