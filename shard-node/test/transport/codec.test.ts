import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  BufferReader,
  BufferWriter,
  beginFrame,
  decodeMessage,
  decodeMessageBatch,
  encodeMessage,
  finishFrame,
  FrameDecoder,
  messageEncodedBytesBound,
  networkMessageTypes,
  type Frame,
} from '../../src/transport/index.js';
import { makeMessage, messageArbitrary } from './arbitraries.js';

function roundTrip(message: Parameters<typeof encodeMessage>[1]): ReturnType<typeof decodeMessage> {
  const writer = new BufferWriter(16);
  encodeMessage(writer, message);
  const reader = new BufferReader(writer.takeBytes());
  const decoded = decodeMessage(reader);
  reader.expectEnd('message');
  return decoded;
}

/** Feeds `bytes` to a decoder in pieces cut at `cuts`, collecting every frame. */
function splitAndDecode(bytes: Uint8Array, cuts: number[], frameBytesMax: number): Frame[] {
  const decoder = new FrameDecoder(frameBytesMax);
  const frames: Frame[] = [];
  let previous = 0;
  for (const cut of [
    ...cuts.map((cut) => cut % (bytes.byteLength + 1)).sort((a, b) => a - b),
    bytes.byteLength,
  ]) {
    decoder.push(Buffer.from(bytes.subarray(previous, cut)));
    previous = cut;
    for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
      frames.push(frame);
    }
  }
  expect(decoder.bufferedBytes).toBe(0);
  return frames;
}

describe('message codec', () => {
  for (const type of networkMessageTypes) {
    it(`round-trips every field of ${type}`, () => {
      fc.assert(
        fc.property(messageArbitrary(fc.constant(type)), (message) => {
          expect(roundTrip(message)).toEqual(message);
        }),
        { numRuns: 25 },
      );
    });
  }

  it('bounds the encoded size from above', () => {
    fc.assert(
      fc.property(messageArbitrary(), (message) => {
        const writer = new BufferWriter();
        encodeMessage(writer, message);
        expect(writer.byteLength).toBeLessThanOrEqual(messageEncodedBytesBound(message));
      }),
      { numRuns: 200 },
    );
  });

  it('is compact: a heartbeat between small ids takes a dozen bytes', () => {
    const writer = new BufferWriter();
    encodeMessage(writer, makeMessage({ type: 'MsgHeartbeat', from: 1, to: 2, term: 5, commit: 100 }));
    expect(writer.byteLength).toBe(11);
  });

  it('refuses to encode local message types (a programmer error)', () => {
    const writer = new BufferWriter();
    for (const type of ['MsgHup', 'MsgBeat', 'MsgUnreachable', 'MsgSnapStatus', 'MsgCheckQuorum'] as const) {
      expect(() => encodeMessage(writer, makeMessage({ type, from: 1, to: 2 }))).toThrow(/local message/);
    }
  });

  it('copies decoded bytes, so that they never pin the frame they came in', () => {
    const message = makeMessage({
      type: 'MsgApp',
      from: 1,
      to: 2,
      entries: [{ term: 1, index: 1, type: 'normal', data: new Uint8Array([1, 2, 3]) }],
    });
    const writer = new BufferWriter();
    encodeMessage(writer, message);
    const bytes = writer.takeBytes();
    const decoded = decodeMessage(new BufferReader(bytes));
    bytes.fill(0);
    expect(decoded.entries[0]!.data).toEqual(new Uint8Array([1, 2, 3]));
    expect(Buffer.isBuffer(decoded.entries[0]!.data)).toBe(false);
  });

  it('round-trips batches through frames cut anywhere by the network', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(messageArbitrary(), { minLength: 1, maxLength: 8 }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (batches, cuts) => {
          const writer = new BufferWriter(32);
          for (const batch of batches) {
            const start = beginFrame(writer, 'messages');
            for (const message of batch) {
              encodeMessage(writer, { ...message, from: 1, to: 2 });
            }
            finishFrame(writer, start);
          }
          const frames = splitAndDecode(writer.takeBytes(), cuts, 1024 * 1024);
          expect(frames.map((frame) => frame.kind)).toEqual(batches.map(() => 'messages'));
          const decoded = frames.map((frame) => decodeMessageBatch(new BufferReader(frame.payload), 1, 2));
          expect(decoded).toEqual(
            batches.map((batch) => batch.map((message) => ({ ...message, from: 1, to: 2 }))),
          );
        },
      ),
      { numRuns: 50 },
    );
  });

  it('refuses a message that claims another sender or receiver than the connection', () => {
    const writer = new BufferWriter();
    encodeMessage(writer, makeMessage({ type: 'MsgHeartbeat', from: 3, to: 2 }));
    expect(() => decodeMessageBatch(new BufferReader(writer.takeBytes()), 1, 2)).toThrow(
      expect.objectContaining({ code: 'PEER_FRAME_MALFORMED', reason: 'protocol' }),
    );
  });
});

describe('buffer writer', () => {
  it('round-trips varints at every width', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { maxLength: 50 }),
        (values) => {
          const writer = new BufferWriter(1);
          for (const value of values) {
            writer.writeVarint(value);
          }
          const reader = new BufferReader(writer.takeBytes());
          expect(values.map(() => reader.readVarint())).toEqual(values);
          reader.expectEnd('varints');
        },
      ),
    );
  });

  it('hands over a mostly full buffer and copies a small frame out of a big one', () => {
    const writer = new BufferWriter(1024);
    writer.writeBytes(new Uint8Array(600));
    const big = writer.takeBytes();
    writer.writeBytes(new Uint8Array([7]));
    const small = writer.takeBytes();
    expect(big.byteLength).toBe(600);
    expect(small).toEqual(Buffer.from([7]));
    expect(small.buffer.byteLength).toBeLessThan(1024 * 64);
  });
});
