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
