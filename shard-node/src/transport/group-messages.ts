/**
 * The `groupMessages` frame: the Raft messages of many groups, from one node to another, in runs
 * tagged by group. A node's replicas hand their messages to one send queue per peer node, and each
 * event-loop round's messages for a node leave in one frame (or as few as `frameBytesMax` allows).
 *
 * Payload: sections back to back until the end of the payload, each opened by a u8 section kind.
 * Kind 1 is a run of one group's messages:
 *
 *   u8 1 · string group id (`group-id.ts`) · u16 BE message count (1 to `runMessagesMax`) · the
 *   messages (layout in `codec.ts`)
 *
 * The count is a fixed-width u16 so that the encoder can patch it once it knows how many messages
 * of the group fitted. Consecutive queued messages of one group share a run; the order of each
 * group's messages is kept (the order across groups means nothing: they are separate Raft groups).
 * Which replica each message is for is in the message (`to`, a Raft id in its group); the receiver
 * checks it against the replica it hosts for the group when it dispatches the run.
 *
 * Kind 2 is the round's coalesced heartbeats (`coalesced-heartbeats.ts`), at most one section per
 * frame, written after the runs:
 *
 *   u8 2 · u16 BE entry count (1 to `runMessagesMax`) · the entries
 *
 * The decoder hands back each group's messages of the frame together: its runs' messages in
 * order, then its heartbeats.
 */
import type { Message } from '../raft/index.js';
import type { BufferReader } from './buffer-reader.js';
import { malformed } from './buffer-reader.js';
import { BufferWriter } from './buffer-writer.js';
import { decodeMessage, encodeMessage, messageEncodedBytesMin } from './codec.js';
import {
  decodeHeartbeatEntry,
  encodeHeartbeatEntry,
  heartbeatEntryBytesMin,
  isCoalescible,
} from './coalesced-heartbeats.js';

import { assert } from './errors.js';
import { beginFrame, finishFrame } from './frame.js';
import { readGroupId, writeGroupId } from './group-id.js';
import type { QueuedMessage, SendQueue } from './send-queue.js';

/** The most messages in one run: the largest u16. A longer stretch of one group opens a new run. */
export const runMessagesMax = 0xffff;

/** Section kinds, as written in a section's first byte. They must never change. */
export const sectionKinds = {
  /** A run of one group's messages. */
  run: 1,
  /** The frame's coalesced heartbeats and heartbeat responses, of any groups. */
  heartbeats: 2,
} as const;

/** The bytes a heartbeats section takes besides its entries (kind and count). */
const heartbeatSectionHeaderBytes = 3;

export interface GroupFrameOptions {
  /** Whether heartbeats and their responses go in one coalesced section (`isCoalescible` ones). */
  readonly coalesceHeartbeats: boolean;
  /** Told how many heartbeats a frame carried coalesced, when it carried any. */
  readonly onCoalesced?: (entries: number) => void;
}

/** One group's messages in a frame. */
export interface GroupRun {
  readonly groupId: string;
  readonly messages: Message[];
}

/**
 * Encodes as many queued messages as fit in `frameBytesMax` into one complete `groupMessages`
 * frame in `writer` (empty before), and returns them, taken off the queue. A message too large
 * for a frame of its own is taken off and handed to `dropTooLarge`. Returns an empty list, and
 * leaves the writer empty, when no message was written. With `coalesceHeartbeats`, heartbeats and
 * their responses go in the frame's one heartbeats section, after the runs.
 */
export function fillGroupMessagesFrame<Item extends QueuedMessage>(
  writer: BufferWriter,
  queue: SendQueue<Item>,
  frameBytesMax: number,
  dropTooLarge: (item: Item) => void,
  options: GroupFrameOptions = { coalesceHeartbeats: false },
): Item[] {
  assert(writer.byteLength === 0, 'a frame starts in an empty writer');
  const start = beginFrame(writer, 'groupMessages');
  const written: Item[] = [];
  let runGroupId: string | undefined;
  let runCountOffset = 0;
  let runCount = 0;
  // The heartbeats section is written last; until then it grows here, and counts against the frame.
  const heartbeats = options.coalesceHeartbeats ? new BufferWriter(1024) : undefined;
  let heartbeatCount = 0;
  const heartbeatSectionBytes = (): number =>
    heartbeatCount === 0 ? 0 : heartbeatSectionHeaderBytes + heartbeats!.byteLength;
  for (let item = queue.peek(); item !== undefined; item = queue.peek()) {
    if (heartbeats !== undefined && heartbeatCount < runMessagesMax && isCoalescible(item.message)) {
      const mark = heartbeats.byteLength;
      encodeHeartbeatEntry(heartbeats, item.groupId, item.message);
      const frameBytes = writer.byteLength - start + heartbeatSectionHeaderBytes + heartbeats.byteLength;
      if (frameBytes <= frameBytesMax) {
        queue.shift();
        written.push(item);
        heartbeatCount += 1;
        continue;
      }
      heartbeats.truncate(mark);
      if (written.length > 0) break;
      queue.shift();
      dropTooLarge(item);
      continue;
    }
    const mark = writer.byteLength;
    const opensRun = item.groupId !== runGroupId || runCount === runMessagesMax;
    let countOffset = runCountOffset;
    if (opensRun) {
      writer.writeUint8(sectionKinds.run);
      writeGroupId(writer, item.groupId);
      countOffset = writer.byteLength;
      writer.writeUint16(0);
    }
    encodeMessage(writer, item.message);
    if (writer.byteLength - start + heartbeatSectionBytes() <= frameBytesMax) {
      queue.shift();
      written.push(item);
      if (opensRun) {
        runGroupId = item.groupId;
        runCountOffset = countOffset;
        runCount = 0;
      }
      runCount += 1;
      writer.patchUint16(runCountOffset, runCount);
      continue;
    }
    // The message (and the run it opened) does not fit: the frame ends before it.
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
  if (heartbeatCount > 0) {
    writer.writeUint8(sectionKinds.heartbeats);
    writer.writeUint16(heartbeatCount);
    writer.writeBytes(heartbeats!.view());
    options.onCoalesced?.(heartbeatCount);
  }
  finishFrame(writer, start);
  return written;
}

/**
 * Decodes the payload of a `groupMessages` frame into what each group receives from it: one entry
 * per group, in the order the groups first appear, with the group's run messages in order and then
 * its coalesced heartbeats. Throws `PeerFrameMalformedError` (and nothing else) on any invalid
 * byte: an unknown section kind, a second heartbeats section, a bad group id, an empty run or
 * section, a count the remaining bytes cannot hold, a message that does not decode.
 */
export function decodeGroupMessages(reader: BufferReader): GroupRun[] {
  const byGroup = new Map<string, Message[]>();
  const append = (groupId: string, message: Message): void => {
    let messages = byGroup.get(groupId);
    if (messages === undefined) {
      messages = [];
      byGroup.set(groupId, messages);
    }
    messages.push(message);
  };
  const heartbeats: Array<{ readonly groupId: string; readonly message: Message }> = [];
  let heartbeatSections = 0;
  while (reader.remainingBytes > 0) {
    const sectionKind = reader.readUint8();
    if (sectionKind === sectionKinds.run) {
      const groupId = readGroupId(reader);
      const count = reader.readUint16();
      if (count === 0) throw malformed(`an empty run of group ${groupId}`);
      // Checked before any array grows: each message takes at least `messageEncodedBytesMin` bytes.
      if (count * messageEncodedBytesMin > reader.remainingBytes)
        throw malformed(`a run of ${count} messages in ${reader.remainingBytes} bytes`);
      for (let position = 0; position < count; position++) append(groupId, decodeMessage(reader));
    } else if (sectionKind === sectionKinds.heartbeats) {
      heartbeatSections += 1;
      if (heartbeatSections > 1) throw malformed('a second heartbeats section in one frame');
      const count = reader.readUint16();
      if (count === 0) throw malformed('an empty heartbeats section');
      if (count * heartbeatEntryBytesMin > reader.remainingBytes)
        throw malformed(`${count} coalesced heartbeats in ${reader.remainingBytes} bytes`);
      for (let position = 0; position < count; position++) heartbeats.push(decodeHeartbeatEntry(reader));
    } else {
      throw malformed(`unknown section kind ${sectionKind}`);
    }
  }
  // Each group's heartbeats after its runs: the order the sender wrote them in.
  for (const { groupId, message } of heartbeats) append(groupId, message);
  return [...byGroup].map(([groupId, messages]) => ({ groupId, messages }));
}

/**
 * Writes a frame payload of one heartbeats section holding `entries` into `writer`; for tools and
 * the simulator, which carry coalesced heartbeats through the same bytes as the transport.
 */
export function encodeHeartbeatSection(
  writer: BufferWriter,
  entries: ReadonlyArray<{ readonly groupId: string; readonly message: Message }>,
): void {
  assert(
    entries.length >= 1 && entries.length <= runMessagesMax,
    'a heartbeats section holds 1 to 65535 entries',
  );
  writer.writeUint8(sectionKinds.heartbeats);
  writer.writeUint16(entries.length);
  for (const { groupId, message } of entries) encodeHeartbeatEntry(writer, groupId, message);
}
