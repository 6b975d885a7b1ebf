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
  encodeHeartbeatSection,
  encodeNodeHelloFrame,
  encodeSnapshotHeaderFrame,
  fillGroupMessagesFrame,
  groupIdBytesMax,
  isCoalescible,
  isWireGroupId,
  messageEncodedBytesBound,
  nodeProtocolVersion,
  runMessagesMax,
  type QueuedMessage,
} from '../../src/transport/index.js';
import { makeMessage, messageArbitrary, nodeIdArbitrary, safeNatArbitrary } from './arbitraries.js';

const groupIdArbitrary = fc.constantFrom('g1', 'g2', 'meta', 'group-7.b_c', 'x'.repeat(groupIdBytesMax));

/** Heartbeats and responses as the core makes them: the only fields set are those an entry carries. */
const coreHeartbeatArbitrary: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom('MsgHeartbeat' as const, 'MsgHeartbeatResp' as const),
    from: nodeIdArbitrary,
    to: nodeIdArbitrary,
    term: safeNatArbitrary,
    commit: safeNatArbitrary,
    index: safeNatArbitrary,
    context: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 1, maxLength: 24 })),
  })
  .map((fields) => makeMessage(fields));

function queued(groupId: string, message: Message): QueuedMessage {
  return { groupId, message, encodedBytesBound: messageEncodedBytesBound(message) };
}

/** Fills frames until the queue is empty; returns each frame's runs as decoded from its bytes. */
function drain(queue: SendQueue, frameBytesMax: number, dropped: QueuedMessage[] = [], coalesced?: number[]) {
  const frames: Array<{ bytes: number; payload: Uint8Array; runs: ReturnType<typeof decodeGroupMessages> }> =
    [];
  const writer = new BufferWriter();
  const options = {
    coalesceHeartbeats: coalesced !== undefined,
    onCoalesced: (entries: number) => coalesced?.push(entries),
  };
  while (queue.messageCount > 0) {
    const written = fillGroupMessagesFrame(
      writer,
      queue,
      frameBytesMax,
      (item) => dropped.push(item),
      options,
    );
    if (written.length === 0) {
      expect(writer.byteLength).toBe(0);
      continue;
    }
    const bytes = writer.takeBytes();
    const decoder = new FrameDecoder(frameBytesMax);
    decoder.push(bytes);
    const frame = decoder.next()!;
    expect(frame.kind).toBe('groupMessages');
    frames.push({
      bytes: bytes.byteLength,
      payload: frame.payload,
      runs: decodeGroupMessages(new BufferReader(frame.payload)),
    });
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
          // Each group's messages in order (a frame hands each group its messages together).
          for (const groupId of new Set(kept.map(([group]) => group))) {
            expect(decoded.filter(([group]) => group === groupId)).toEqual(
              kept.filter(([group]) => group === groupId),
            );
          }
          expect(decoded).toHaveLength(kept.length);
          // Only messages too large for a frame of their own are dropped.
          for (const item of dropped) expect(item.encodedBytesBound).toBeGreaterThan(frameBytesMax / 2);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('coalesces the heartbeats of a frame losslessly, each group getting them after its runs', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(groupIdArbitrary, fc.oneof(coreHeartbeatArbitrary, messageArbitrary())), {
          maxLength: 80,
        }),
        fc.integer({ min: 2048, max: 64 * 1024 }),
        (items, frameBytesMax) => {
          const queue = new SendQueue(10_000, 1 << 30);
          for (const [groupId, message] of items) queue.offer(queued(groupId, message));
          const dropped: QueuedMessage[] = [];
          const coalesced: number[] = [];
          const frames = drain(queue, frameBytesMax, dropped, coalesced);
          for (const frame of frames) expect(frame.bytes).toBeLessThanOrEqual(frameBytesMax);
          const kept = items.filter(([, message]) => !dropped.some((item) => item.message === message));
          expect(coalesced.reduce((sum, entries) => sum + entries, 0)).toBe(
            kept.filter(([, message]) => isCoalescible(message)).length,
          );
          // Frame by frame, each group gets its other messages in order, then its heartbeats.
          let position = 0;
          for (const frame of frames) {
            const count = frame.runs.reduce((sum, run) => sum + run.messages.length, 0);
            const inFrame = kept.slice(position, position + count);
            position += count;
            for (const run of frame.runs) {
              const mine = inFrame
                .filter(([groupId]) => groupId === run.groupId)
                .map(([, message]) => message);
              expect(run.messages).toEqual([
                ...mine.filter((message) => !isCoalescible(message)),
                ...mine.filter((message) => isCoalescible(message)),
              ]);
            }
          }
          expect(position).toBe(kept.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('writes a round of 64 groups heartbeats as one coalesced heartbeat, smaller than 64 runs', () => {
    const fill = (coalesceHeartbeats: boolean): { bytes: number; coalesced: number[] } => {
      const queue = new SendQueue(10_000, 1 << 30);
      for (let group = 0; group < 64; group++) {
        queue.offer(
          queued(
            `g${group}`,
            makeMessage({ type: 'MsgHeartbeat', from: 1, to: 2, term: 5, commit: 1000, index: 77 }),
          ),
        );
      }
      const coalesced: number[] = [];
      const writer = new BufferWriter();
      fillGroupMessagesFrame(writer, queue, 1 << 20, () => {}, {
        coalesceHeartbeats,
        onCoalesced: (entries) => coalesced.push(entries),
      });
      return { bytes: writer.byteLength, coalesced };
    };
    const plain = fill(false);
    const coalesced = fill(true);
    expect(plain.coalesced).toEqual([]);
    expect(coalesced.coalesced).toEqual([64]);
    expect(coalesced.bytes).toBeLessThan(plain.bytes * 0.75);
  });

  it('refuses a second heartbeats section, an empty one, and entries that are not heartbeats', () => {
    const heartbeat = makeMessage({ type: 'MsgHeartbeat', from: 1, to: 2, term: 1 });
    const section = (): BufferWriter => {
      const writer = new BufferWriter();
      encodeHeartbeatSection(writer, [{ groupId: 'g1', message: heartbeat }]);
      return writer;
    };
    const twice = section();
    encodeHeartbeatSection(twice, [{ groupId: 'g2', message: heartbeat }]);
    expect(() => decodeGroupMessages(new BufferReader(twice.takeBytes()))).toThrow(
      /second heartbeats section/,
    );
    const empty = new BufferWriter();
    empty.writeUint8(2);
    empty.writeUint16(0);
    expect(() => decodeGroupMessages(new BufferReader(empty.takeBytes()))).toThrow(
      /empty heartbeats section/,
    );
    const notAHeartbeat = section().takeBytes();
    // The entry's type tag follows the section header (3 bytes) and the group id (3 bytes).
    notAHeartbeat[6] = 3;
    expect(() => decodeGroupMessages(new BufferReader(notAHeartbeat))).toThrow(/type tag 3/);
    expect(() =>
      encodeHeartbeatSection(new BufferWriter(), [{ groupId: 'g1', message: { ...heartbeat, logTerm: 1 } }]),
    ).toThrow(/assertion failed/);
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
    expect(frames).toHaveLength(1);
    expect(frames[0]!.runs.map((run) => [run.groupId, run.messages.length])).toEqual([
      ['g1', runMessagesMax + 10],
    ]);
    // The first section is a full run; the next one starts right after its messages.
    const reader = new BufferReader(frames[0]!.payload);
    expect([reader.readUint8(), reader.readString(64, 'group'), reader.readUint16()]).toEqual([
      1,
      'g1',
      runMessagesMax,
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
