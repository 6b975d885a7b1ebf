/**
 * The binary encoding of Raft messages, used inside `messages` frames. It is compact (varints,
 * one flags byte, no field names) and every field of `Message` round-trips, including entries and
 * the optional snapshot with its metadata, configuration and data.
 *
 * Layout of one message (varint = unsigned LEB128, bytes = varint length + bytes):
 *
 *   u8 type tag · u8 flags (bit 0 reject, bit 1 has snapshot)
 *   varint from, to, term, logTerm, index, commit, rejectHint · bytes context
 *   varint entry count · per entry: u8 entry type tag, varint term, varint index, bytes data
 *   if has snapshot: varint index, varint term, confState, bytes data
 *   confState: id list voters, learners, votersOutgoing, learnersNext (varint count, varint ids),
 *              u8 autoLeave (0 or 1)
 *
 * Decoding treats the bytes as hostile: see `BufferReader`.
 */
import {
  EMPTY_BYTES,
  type ConfState,
  type Entry,
  type EntryType,
  type Message,
  type MessageType,
  type NodeId,
  type Snapshot,
} from '../raft/index.js';
import type { BufferReader } from './buffer-reader.js';
import { malformed } from './buffer-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import { assert, PeerFrameMalformedError } from './errors.js';
import { beginFrame, finishFrame } from './frame.js';
import type { QueuedMessage, SendQueue } from './send-queue.js';

/**
 * The wire tag of each message type that crosses the network. The numbers are etcd's raftpb enum
 * values, so that a packet capture reads the same in both worlds; they must never change. Local
 * types (MsgHup, MsgBeat, MsgUnreachable, MsgSnapStatus, MsgCheckQuorum) have no tag: the host
 * never sends them, and a peer that sends one is sending garbage.
 */
export const messageTypeTags = {
  MsgProp: 2,
  MsgApp: 3,
  MsgAppResp: 4,
  MsgVote: 5,
  MsgVoteResp: 6,
  MsgSnap: 7,
  MsgHeartbeat: 8,
  MsgHeartbeatResp: 9,
  MsgTransferLeader: 13,
  MsgTimeoutNow: 14,
  MsgReadIndex: 15,
  MsgReadIndexResp: 16,
  MsgPreVote: 17,
  MsgPreVoteResp: 18,
  // The host's own, beyond etcd's enum: a faulted replica asks its leader for a rebuild snapshot.
  MsgRebuildRequest: 100,
} as const satisfies Partial<Record<MessageType, number>>;

/** A message type that may cross the network. */
export type NetworkMessageType = keyof typeof messageTypeTags;

/** Every message type that may cross the network, in tag order. */
export const networkMessageTypes = Object.keys(messageTypeTags) as NetworkMessageType[];

const messageTypesByTag: ReadonlyMap<number, NetworkMessageType> = new Map(
  networkMessageTypes.map((type) => [messageTypeTags[type], type]),
);

export function isNetworkMessageType(type: MessageType): type is NetworkMessageType {
  return Object.hasOwn(messageTypeTags, type);
}

const entryTypeTags = { normal: 0, confChange: 1, confChangeV2: 2 } as const satisfies Record<
  EntryType,
  number
>;
const entryTypesByTag: readonly EntryType[] = ['normal', 'confChange', 'confChangeV2'];

const flagReject = 0b01;
const flagSnapshot = 0b10;

/**
 * The fewest bytes one encoded message takes (two tag bytes, seven one-byte varints, an empty
 * context and an empty entry list). Counts read from the wire are checked against it before any
 * array is built.
 */
export const messageEncodedBytesMin = 11;
const entryEncodedBytesMin = 4;

/** Appends the encoding of `message` to `writer`. Local message types are a programmer error. */
export function encodeMessage(writer: BufferWriter, message: Message): void {
  assert(
    isNetworkMessageType(message.type),
    `${message.type} is a local message and never crosses the network`,
  );
  writer.writeUint8(messageTypeTags[message.type]);
  writer.writeUint8((message.reject ? flagReject : 0) | (message.snapshot === undefined ? 0 : flagSnapshot));
  writer.writeVarint(message.from);
  writer.writeVarint(message.to);
  writer.writeVarint(message.term);
  writer.writeVarint(message.logTerm);
  writer.writeVarint(message.index);
  writer.writeVarint(message.commit);
  writer.writeVarint(message.rejectHint);
  writer.writeLengthPrefixedBytes(message.context);
  writer.writeVarint(message.entries.length);
  for (const entry of message.entries) {
    writer.writeUint8(entryTypeTags[entry.type]);
    writer.writeVarint(entry.term);
    writer.writeVarint(entry.index);
    writer.writeLengthPrefixedBytes(entry.data);
  }
  if (message.snapshot !== undefined) {
    encodeSnapshot(writer, message.snapshot);
  }
}

function encodeSnapshot(writer: BufferWriter, snapshot: Snapshot): void {
  writer.writeVarint(snapshot.metadata.index);
  writer.writeVarint(snapshot.metadata.term);
  const confState = snapshot.metadata.confState;
  encodeIds(writer, confState.voters);
  encodeIds(writer, confState.learners);
  encodeIds(writer, confState.votersOutgoing);
  encodeIds(writer, confState.learnersNext);
  writer.writeUint8(confState.autoLeave ? 1 : 0);
  writer.writeLengthPrefixedBytes(snapshot.data);
}

function encodeIds(writer: BufferWriter, ids: readonly NodeId[]): void {
  writer.writeVarint(ids.length);
  for (const id of ids) {
    writer.writeVarint(id);
  }
}

/**
 * An upper bound of the bytes `encodeMessage` writes for `message`, computed without encoding it.
 * Send queues count bytes with it; it is exact enough (every varint counted at its widest) and
 * cheap (no pass over the data).
 */
export function messageEncodedBytesBound(message: Message): number {
  const varintBytesMax = 8;
  let bytes = 2 + 7 * varintBytesMax + varintBytesMax + message.context.byteLength + varintBytesMax;
  for (const entry of message.entries) {
    bytes += 1 + 3 * varintBytesMax + entry.data.byteLength;
  }
  const snapshot = message.snapshot;
  if (snapshot !== undefined) {
    const confState = snapshot.metadata.confState;
    const idCount =
      confState.voters.length +
      confState.learners.length +
      confState.votersOutgoing.length +
      confState.learnersNext.length;
    bytes += (2 + 4 + idCount + 1) * varintBytesMax + 1 + snapshot.data.byteLength;
  }
  return bytes;
}

/** Decodes one message. Throws `PeerFrameMalformedError` (and nothing else) on any invalid byte. */
export function decodeMessage(reader: BufferReader): Message {
  const tag = reader.readUint8();
  const type = messageTypesByTag.get(tag);
  if (type === undefined) {
    throw malformed(`unknown message type tag ${tag}`);
  }
  const flags = reader.readUint8();
  if ((flags & ~(flagReject | flagSnapshot)) !== 0) {
    throw malformed(`unknown message flags ${flags}`);
  }
  const from = reader.readVarint();
  const to = reader.readVarint();
  const term = reader.readVarint();
  const logTerm = reader.readVarint();
  const index = reader.readVarint();
  const commit = reader.readVarint();
  const rejectHint = reader.readVarint();
  const context = reader.readLengthPrefixedBytes(EMPTY_BYTES);
  const entryCount = reader.readVarintAtMost(
    Math.floor(reader.remainingBytes / entryEncodedBytesMin),
    'entry count',
  );
  const entries: Entry[] = [];
  for (let position = 0; position < entryCount; position++) {
    entries.push(decodeEntry(reader));
  }
  const base = {
    type,
    from,
    to,
    term,
    logTerm,
    index,
    entries,
    commit,
    reject: (flags & flagReject) !== 0,
    rejectHint,
    context,
  };
  if ((flags & flagSnapshot) === 0) {
    return base;
  }
  return { ...base, snapshot: decodeSnapshot(reader) };
}

function decodeEntry(reader: BufferReader): Entry {
  const tag = reader.readUint8();
  const type = entryTypesByTag[tag];
  if (type === undefined) {
    throw malformed(`unknown entry type tag ${tag}`);
  }
  const term = reader.readVarint();
  const index = reader.readVarint();
  const data = reader.readLengthPrefixedBytes(EMPTY_BYTES);
  return { term, index, type, data };
}

function decodeSnapshot(reader: BufferReader): Snapshot {
  const index = reader.readVarint();
  const term = reader.readVarint();
  const voters = decodeIds(reader);
  const learners = decodeIds(reader);
  const votersOutgoing = decodeIds(reader);
  const learnersNext = decodeIds(reader);
  const autoLeaveByte = reader.readUint8();
  if (autoLeaveByte > 1) {
    throw malformed(`autoLeave byte ${autoLeaveByte} is neither 0 nor 1`);
  }
  const confState: ConfState = {
    voters,
    learners,
    votersOutgoing,
    learnersNext,
    autoLeave: autoLeaveByte === 1,
  };
  const data = reader.readLengthPrefixedBytes(EMPTY_BYTES);
  return { metadata: { index, term, confState }, data };
}

function decodeIds(reader: BufferReader): NodeId[] {
  // Each id takes at least one byte, so the count can never exceed the bytes that remain.
  const count = reader.readVarintAtMost(reader.remainingBytes, 'id count');
  const ids: NodeId[] = [];
  for (let position = 0; position < count; position++) {
    ids.push(reader.readVarint());
  }
  return ids;
}

/**
 * Decodes the payload of a `messages` frame: messages back to back until the end of the payload
 * (the sender appends messages while it fills a frame, so the count is not known up front).
 * Every message must come from `expectedFromId` and be addressed to `expectedToId`: the
 * handshake fixed both, and a message that says otherwise is a protocol violation.
 */
export function decodeMessageBatch(
  reader: BufferReader,
  expectedFromId: NodeId,
  expectedToId: NodeId,
): Message[] {
  const messages: Message[] = [];
  while (reader.remainingBytes > 0) {
    const message = decodeMessage(reader);
    if (message.from !== expectedFromId || message.to !== expectedToId) {
      throw new PeerFrameMalformedError(
        'protocol',
        `message from ${message.from} to ${message.to} on the connection from ${expectedFromId} to ${expectedToId}`,
      );
    }
    messages.push(message);
  }
  return messages;
}

/**
 * Encodes as many queued messages as fit in `frameBytesMax` into one complete `messages` frame in
 * `writer` (empty before), and returns them, taken off the queue. A message too large for a frame
 * of its own is taken off and handed to `dropTooLarge`. Returns an empty list, and leaves the
 * writer empty, when no message was written.
 */
export function fillMessagesFrame<Item extends QueuedMessage>(
  writer: BufferWriter,
  queue: SendQueue<Item>,
  frameBytesMax: number,
  dropTooLarge: (item: Item) => void,
): Item[] {
  assert(writer.byteLength === 0, 'a frame starts in an empty writer');
  const start = beginFrame(writer, 'messages');
  const written: Item[] = [];
  for (let item = queue.peek(); item !== undefined; item = queue.peek()) {
    const mark = writer.byteLength;
    encodeMessage(writer, item.message);
    if (writer.byteLength - start <= frameBytesMax) {
      queue.shift();
      written.push(item);
      continue;
    }
    writer.truncate(mark);
    if (written.length > 0) break;
    // Alone in a frame and still too large: it can never be sent.
    queue.shift();
    dropTooLarge(item);
  }
  if (written.length === 0) {
    writer.resetAndShrink(2 * frameBytesMax);
    return written;
  }
  finishFrame(writer, start);
  return written;
}
