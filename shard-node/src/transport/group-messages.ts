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
 */
import type { Message } from '../raft/index.js';
import type { BufferReader } from './buffer-reader.js';
import { malformed } from './buffer-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import { decodeMessage, encodeMessage, messageEncodedBytesMin } from './codec.js';
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
} as const;

/** One group's messages in a frame. */
export interface GroupRun {
  readonly groupId: string;
  readonly messages: Message[];
}

/**
 * Encodes as many queued messages as fit in `frameBytesMax` into one complete `groupMessages`
 * frame in `writer` (empty before), and returns them, taken off the queue. A message too large
 * for a frame of its own is taken off and handed to `dropTooLarge`. Returns an empty list, and
 * leaves the writer empty, when no message was written.
 */
export function fillGroupMessagesFrame<Item extends QueuedMessage>(
  writer: BufferWriter,
  queue: SendQueue<Item>,
  frameBytesMax: number,
  dropTooLarge: (item: Item) => void,
): Item[] {
  assert(writer.byteLength === 0, 'a frame starts in an empty writer');
  const start = beginFrame(writer, 'groupMessages');
  const written: Item[] = [];
  let runGroupId: string | undefined;
  let runCountOffset = 0;
  let runCount = 0;
  for (let item = queue.peek(); item !== undefined; item = queue.peek()) {
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
    if (writer.byteLength - start <= frameBytesMax) {
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
  finishFrame(writer, start);
  return written;
}

/**
 * Decodes the payload of a `groupMessages` frame into its runs. Throws `PeerFrameMalformedError`
 * (and nothing else) on any invalid byte: an unknown section kind, a bad group id, an empty run, a count the remaining
 * bytes cannot hold, a message that does not decode, trailing bytes.
 */
export function decodeGroupMessages(reader: BufferReader): GroupRun[] {
  const runs: GroupRun[] = [];
  while (reader.remainingBytes > 0) {
    const sectionKind = reader.readUint8();
    if (sectionKind !== sectionKinds.run) throw malformed(`unknown section kind ${sectionKind}`);
    const groupId = readGroupId(reader);
    const count = reader.readUint16();
    if (count === 0) throw malformed(`an empty run of group ${groupId}`);
    // Checked before any array grows: each message takes at least `messageEncodedBytesMin` bytes.
    if (count * messageEncodedBytesMin > reader.remainingBytes)
      throw malformed(`a run of ${count} messages in ${reader.remainingBytes} bytes`);
    const messages: Message[] = [];
    for (let position = 0; position < count; position++) messages.push(decodeMessage(reader));
    runs.push({ groupId, messages });
  }
  return runs;
}
