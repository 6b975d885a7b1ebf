/**
 * The `groupMessages` frame and the node hello, as bytes: what the encoder fills a frame with
 * comes back from the decoder run by run, in order, whatever the mix of groups and the frame
 * limit; and hostile bytes are refused with the typed error only.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import type { Message } from '../../src/raft/index.js';
import {
  BufferReader,
  BufferWriter,
  FrameDecoder,
  PeerFrameMalformedError,
  SendQueue,
  decodeGroupMessages,
  decodeNodeHello,
  decodeSnapshotHeader,
  encodeNodeHelloFrame,
  encodeSnapshotHeaderFrame,
  fillGroupMessagesFrame,
  groupIdBytesMax,
  isWireGroupId,
  messageEncodedBytesBound,
  nodeProtocolVersion,
  runMessagesMax,
  type QueuedMessage,
} from '../../src/transport/index.js';
import { makeMessage, messageArbitrary } from './arbitraries.js';

const groupIdArbitrary = fc.constantFrom('g1', 'g2', 'meta', 'group-7.b_c', 'x'.repeat(groupIdBytesMax));

function queued(groupId: string, message: Message): QueuedMessage {
  return { groupId, message, encodedBytesBound: messageEncodedBytesBound(message) };
}

/** Fills frames until the queue is empty; returns each frame's runs as decoded from its bytes. */
function drain(queue: SendQueue, frameBytesMax: number, dropped: QueuedMessage[] = []) {
  const frames: Array<{ bytes: number; runs: ReturnType<typeof decodeGroupMessages> }> = [];
  const writer = new BufferWriter();
  while (queue.messageCount > 0) {
    const written = fillGroupMessagesFrame(writer, queue, frameBytesMax, (item) => dropped.push(item));
    if (written.length === 0) {
      expect(writer.byteLength).toBe(0);
      continue;
    }
    const bytes = writer.takeBytes();
    const decoder = new FrameDecoder(frameBytesMax);
    decoder.push(bytes);
    const frame = decoder.next()!;
    expect(frame.kind).toBe('groupMessages');
    frames.push({ bytes: bytes.byteLength, runs: decodeGroupMessages(new BufferReader(frame.payload)) });
  }
  return frames;
}

describe('groupMessages frames', () => {
  it('round-trip any mix of groups, keeping each group in order, within the frame limit', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(groupIdArbitrary, messageArbitrary()), { maxLength: 60 }),
        fc.integer({ min: 2048, max: 64 * 1024 }),
        (items, frameBytesMax) => {
          const queue = new SendQueue(10_000, 1 << 30);
          for (const [groupId, message] of items) expect(queue.offer(queued(groupId, message))).toBe(true);
          const dropped: QueuedMessage[] = [];
          const frames = drain(queue, frameBytesMax, dropped);
          for (const frame of frames) expect(frame.bytes).toBeLessThanOrEqual(frameBytesMax);
          const decoded = frames.flatMap((frame) =>
            frame.runs.flatMap((run) => run.messages.map((message) => [run.groupId, message] as const)),
          );
          const kept = items.filter(([, message]) => !dropped.some((item) => item.message === message));
          expect(decoded).toEqual(kept);
          // Only messages too large for a frame of their own are dropped.
          for (const item of dropped) expect(item.encodedBytesBound).toBeGreaterThan(frameBytesMax / 2);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('puts a round of many groups in one frame, one run per stretch of a group', () => {
    const queue = new SendQueue(10_000, 1 << 30);
    for (let group = 0; group < 64; group++) {
      for (let count = 0; count < 3; count++) {
        queue.offer(queued(`g${group}`, makeMessage({ type: 'MsgHeartbeat', from: 1, to: 2, term: 1 })));
      }
    }
    const frames = drain(queue, 4 * 1024 * 1024);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.runs.map((run) => [run.groupId, run.messages.length])).toEqual(
      Array.from({ length: 64 }, (_, group) => [`g${group}`, 3]),
    );
  });

  it(`opens a new run after ${runMessagesMax} messages of one group`, () => {
    const queue = new SendQueue(100_000, 1 << 30);
    const heartbeat = makeMessage({ type: 'MsgHeartbeat', from: 1, to: 2, term: 1 });
    for (let count = 0; count < runMessagesMax + 10; count++) queue.offer(queued('g1', heartbeat));
    const frames = drain(queue, 4 * 1024 * 1024);
    expect(frames.flatMap((frame) => frame.runs.map((run) => run.messages.length))).toEqual([
      runMessagesMax,
      10,
    ]);
  });

  it('refuses hostile payloads with the typed error only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 400 }), (bytes) => {
        try {
          decodeGroupMessages(new BufferReader(bytes));
        } catch (error) {
          expect(error).toBeInstanceOf(PeerFrameMalformedError);
        }
      }),
      { numRuns: 2000 },
    );
    const writer = new BufferWriter();
    writer.writeUint8(1);
    writer.writeString('g1');
    writer.writeUint16(runMessagesMax);
    // 65535 announced messages in 0 bytes: refused before any array grows.
    expect(() => decodeGroupMessages(new BufferReader(writer.takeBytes()))).toThrow(
      /a run of 65535 messages/,
    );
  });

  it('takes group ids of the cluster configuration and nothing else', () => {
    for (const good of ['g1', 'meta', 'A-b_c.9', 'x'.repeat(groupIdBytesMax)])
      expect(isWireGroupId(good)).toBe(true);
    for (const bad of ['', '-g', '.g', 'g 1', 'g/1', 'gé', 'x'.repeat(groupIdBytesMax + 1), 'g\u0000']) {
      expect(isWireGroupId(bad)).toBe(false);
    }
  });
});

describe('node hello and snapshot header', () => {
  it('round-trip, and refuse addresses that are not host:port', () => {
    const hello = {
      protocolVersion: nodeProtocolVersion,
      purpose: 'snapshot' as const,
      clusterId: 'impulse',
      senderAddress: '10.0.0.1:7000',
      receiverAddress: '[::1]:7001',
      nonce: new Uint8Array(32).fill(1),
      proof: new Uint8Array(32).fill(2),
    };
    const writer = new BufferWriter();
    encodeNodeHelloFrame(writer, hello);
    const decoder = new FrameDecoder(4096);
    decoder.push(writer.takeBytes());
    expect(decodeNodeHello(decoder.next()!.payload)).toEqual(hello);
    for (const senderAddress of ['10.0.0.1', 'a b:1', 'host:123456', '']) {
      encodeNodeHelloFrame(writer, { ...hello, senderAddress });
      const bad = new FrameDecoder(4096);
      bad.push(writer.takeBytes());
      expect(() => decodeNodeHello(bad.next()!.payload)).toThrow(PeerFrameMalformedError);
    }
  });

  it('round-trip a snapshot header, and refuse one from or to no replica', () => {
    const writer = new BufferWriter();
    encodeSnapshotHeaderFrame(writer, { groupId: 'g7', from: 3, to: 1 });
    const decoder = new FrameDecoder(4096);
    decoder.push(writer.takeBytes());
    const frame = decoder.next()!;
    expect(frame.kind).toBe('snapshotHeader');
    expect(decodeSnapshotHeader(frame.payload)).toEqual({ groupId: 'g7', from: 3, to: 1 });
    for (const [from, to] of [
      [0, 1],
      [1, 0],
      [2, 2],
    ] as const) {
      const payload = new BufferWriter();
      payload.writeString('g7');
      payload.writeVarint(from);
      payload.writeVarint(to);
      expect(() => decodeSnapshotHeader(payload.takeBytes())).toThrow(PeerFrameMalformedError);
    }
  });
});
