/**
 * Untrusted bytes: garbage, truncations and bit flips must only ever produce the typed error
 * (code PEER_FRAME_MALFORMED), never another exception, never a hang.
 */
import { crc32 } from 'node:zlib';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  BufferReader,
  BufferWriter,
  beginFrame,
  decodeHello,
  decodeMessage,
  decodeMessageBatch,
  encodeHelloFrame,
  encodeMessage,
  finishFrame,
  FrameDecoder,
  PeerFrameMalformedError,
  protocolVersion,
} from '../../src/transport/index.js';
import { messageArbitrary } from './arbitraries.js';

const frameBytesMax = 64 * 1024;

/** Runs `decode`, which may succeed or throw the typed error, and nothing else. */
function expectOnlyTypedError(decode: () => unknown): 'decoded' | 'refused' {
  try {
    decode();
    return 'decoded';
  } catch (error: unknown) {
    if (!(error instanceof PeerFrameMalformedError) || error.code !== 'PEER_FRAME_MALFORMED') {
      throw new Error(`unexpected error: ${String(error)}`, { cause: error });
    }
    return 'refused';
  }
}

function encodeOne(message: Parameters<typeof encodeMessage>[1]): Buffer {
  const writer = new BufferWriter();
  encodeMessage(writer, message);
  return writer.takeBytes();
}

/** Decodes every frame `bytes` holds; returns how many came out. */
function decodeFrames(bytes: Uint8Array): number {
  const decoder = new FrameDecoder(frameBytesMax);
  decoder.push(Buffer.from(bytes));
  let frames = 0;
  for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
    frames += 1;
    if (frame.kind === 'messages') {
      decodeMessageBatch(new BufferReader(frame.payload), 1, 2);
    } else if (frame.kind === 'hello') {
      decodeHello(frame.payload);
    }
  }
  return frames;
}

function validFrame(messages: readonly Parameters<typeof encodeMessage>[1][]): Buffer {
  const writer = new BufferWriter();
  const start = beginFrame(writer, 'messages');
  for (const message of messages) {
    encodeMessage(writer, { ...message, from: 1, to: 2 });
  }
  finishFrame(writer, start);
  return writer.takeBytes();
}

describe('decoding untrusted bytes', () => {
  it('refuses random garbage as a message with the typed error only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        expectOnlyTypedError(() => decodeMessage(new BufferReader(bytes)));
        expectOnlyTypedError(() => decodeMessageBatch(new BufferReader(bytes), 1, 2));
        expectOnlyTypedError(() => decodeHello(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses every truncation of a valid message', () => {
    fc.assert(
      fc.property(messageArbitrary(), fc.nat(), (message, cut) => {
        const bytes = encodeOne(message);
        const truncated = bytes.subarray(0, cut % bytes.byteLength);
        expect(expectOnlyTypedError(() => decodeMessage(new BufferReader(truncated)))).toBe('refused');
      }),
      { numRuns: 500 },
    );
  });

  it('survives bit flips inside a message payload (no checksum to help)', () => {
    fc.assert(
      fc.property(
        messageArbitrary(),
        fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
        (message, flips) => {
          const bytes = Buffer.from(encodeOne(message));
          for (const flip of flips) {
            const bit = flip % (bytes.byteLength * 8);
            bytes[bit >> 3] = bytes[bit >> 3]! ^ (1 << (bit & 7));
          }
          expectOnlyTypedError(() => decodeMessageBatch(new BufferReader(bytes), 1, 2));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('detects any single bit flip in a valid frame', () => {
    fc.assert(
      fc.property(
        fc.array(messageArbitrary(), { minLength: 1, maxLength: 5 }),
        fc.nat(),
        (messages, flip) => {
          const frame = Buffer.from(validFrame(messages));
          const bit = flip % (frame.byteLength * 8);
          frame[bit >> 3] = frame[bit >> 3]! ^ (1 << (bit & 7));
          // A flip in the length field may also announce more bytes than there are: then the
          // decoder waits for them (no frame, no error), which a live connection ends by a timeout.
          let frames = 0;
          const outcome = expectOnlyTypedError(() => {
            frames = decodeFrames(frame);
          });
          expect(outcome === 'refused' || frames === 0).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never hangs nor throws anything but the typed error on a garbage stream', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4000 }), (bytes) => {
        expectOnlyTypedError(() => decodeFrames(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses an announced 2 GiB frame from its first four bytes, before buffering it', () => {
    const decoder = new FrameDecoder(frameBytesMax);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(2 ** 31);
    decoder.push(header);
    expect(() => decoder.next()).toThrow(
      expect.objectContaining({ code: 'PEER_FRAME_MALFORMED', reason: 'tooLarge' }),
    );
  });

  it('refuses a frame with an unknown version or kind', () => {
    const writer = new BufferWriter();
    encodeHelloFrame(writer, {
      protocolVersion,
      purpose: 'messages',
      clusterId: 'c',
      groupId: 'g',
      senderId: 1,
      receiverId: 2,
      nonce: new Uint8Array(32),
      proof: new Uint8Array(0),
    });
    const frame = writer.takeBytes();
    for (const [versionAndKind, reason] of [
      [0x21, 'version'],
      [0x1f, 'kind'],
    ] as const) {
      const altered = Buffer.from(frame);
      altered[8] = versionAndKind;
      // Recompute the checksum, so that the check under test is the one that fires.
      altered.writeUInt32BE(crc32(altered.subarray(8)), 4);
      const decoder = new FrameDecoder(frameBytesMax);
      decoder.push(altered);
      expect(() => decoder.next()).toThrow(expect.objectContaining({ reason }));
    }
  });

  it('refuses non-canonical and oversized varints', () => {
    expect(() => new BufferReader(new Uint8Array([0x80, 0x00])).readVarint()).toThrow(
      PeerFrameMalformedError,
    );
    expect(() => new BufferReader(new Uint8Array(9).fill(0xff)).readVarint()).toThrow(
      PeerFrameMalformedError,
    );
    // 2^53 is one above the largest safe integer.
    expect(() =>
      new BufferReader(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10])).readVarint(),
    ).toThrow(PeerFrameMalformedError);
  });

  it('never allocates for a hostile entry count', () => {
    // A MsgApp header that announces 2^40 entries in a 20-byte buffer.
    const writer = new BufferWriter();
    writer.writeUint8(3);
    writer.writeUint8(0);
    for (let field = 0; field < 7; field++) {
      writer.writeVarint(1);
    }
    writer.writeVarint(0);
    writer.writeVarint(2 ** 40);
    expect(() => decodeMessage(new BufferReader(writer.takeBytes()))).toThrow(/entry count/);
  });
});
