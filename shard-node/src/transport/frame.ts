/**
 * The frame: the unit of every byte exchanged between peers.
 *
 *   offset 0  u32 BE  bodyLength: the bytes that follow this field (5 + payload)
 *   offset 4  u32 BE  CRC-32 (node:zlib) of the bytes from offset 8 to the end of the frame
 *   offset 8  u8      version (high nibble, currently 1) | kind (low nibble)
 *   offset 9  ...     payload, as defined by the kind
 *
 * The length comes first so that a reader can refuse an oversized frame from its first four bytes,
 * before buffering any of it. The checksum covers the kind byte so that a flipped bit cannot turn a
 * frame into another kind.
 */
import { crc32 } from 'node:zlib';

import type { BufferWriter } from './buffer-writer.js';
import { assert, PeerFrameMalformedError } from './errors.js';

export const frameVersion = 1;

/** Frame kinds, as written in the low nibble of the version/kind byte. They must never change. */
export const frameKinds = {
  /** The first frame each way on every connection: who is speaking to whom (see `hello.ts`). */
  hello: 1,
  /** A batch of Raft messages for the receiver (see `encodeMessageBatch`). */
  messages: 2,
  /** One chunk of a snapshot stream (see `snapshot-chunk.ts`). */
  snapshotChunk: 3,
  /** The receiver's confirmation that a whole snapshot stream was handled. */
  snapshotAck: 4,
  /** The dialler's proof that it holds the cluster secret, after the acceptor's hello (`peer-auth.ts`). */
  auth: 5,
  /** A node transport's hello: who is speaking to whom, node to node (see `node-hello.ts`). */
  nodeHello: 6,
  /** Raft messages of many groups, in runs tagged by group (see `group-messages.ts`). */
  groupMessages: 7,
  /** The first frame of a node transport's snapshot stream: which group and replicas it is for. */
  snapshotHeader: 8,
} as const;

export type FrameKind = keyof typeof frameKinds;

const frameKindsByNumber: ReadonlyMap<number, FrameKind> = new Map(
  (Object.keys(frameKinds) as FrameKind[]).map((kind) => [frameKinds[kind], kind]),
);

/** The length field, the checksum and the version/kind byte. */
export const frameHeaderBytes = 9;
/** The smallest body length (checksum and version/kind byte, empty payload). */
export const frameBodyBytesMin = frameHeaderBytes - 4;

/** A frame whose envelope was checked: length, checksum, version and kind. */
export interface Frame {
  readonly kind: FrameKind;
  /** The payload, a view into the received bytes. */
  readonly payload: Uint8Array;
  /** The frame's size on the wire, header included. */
  readonly frameBytes: number;
}

/** Starts a frame in `writer` (which must be empty) by reserving its header; returns its start. */
export function beginFrame(writer: BufferWriter, kind: FrameKind): number {
  const start = writer.byteLength;
  writer.writeUint32(0);
  writer.writeUint32(0);
  writer.writeUint8((frameVersion << 4) | frameKinds[kind]);
  return start;
}

/** Fills in the length and checksum of the frame started at `start`; returns its size in bytes. */
export function finishFrame(writer: BufferWriter, start: number): number {
  const end = writer.byteLength;
  const frameBytes = end - start;
  assert(frameBytes >= frameHeaderBytes, 'a frame has a header');
  writer.patchUint32(start, frameBytes - 4);
  writer.patchUint32(start + 4, crc32(writer.view(start + 8, end)));
  return frameBytes;
}

/**
 * Checks the length announced by a frame's first four bytes, before any of its body is buffered.
 * Throws `PeerFrameMalformedError('tooLarge')` for a frame over `frameBytesMax` or under a header.
 */
export function checkAnnouncedBodyLength(bodyLength: number, frameBytesMax: number): void {
  if (bodyLength + 4 > frameBytesMax) {
    throw new PeerFrameMalformedError(
      'tooLarge',
      `announced frame of ${bodyLength + 4} bytes is over ${frameBytesMax}`,
    );
  }
  if (bodyLength < frameBodyBytesMin) {
    throw new PeerFrameMalformedError(
      'tooLarge',
      `announced frame body of ${bodyLength} bytes is under a header`,
    );
  }
}

/**
 * Checks a complete frame body (everything after the length field): checksum, version and kind.
 * Returns the frame with its payload as a view into `body`.
 */
export function openFrameBody(body: Uint8Array): Frame {
  assert(body.byteLength >= frameBodyBytesMin, 'the body length was checked');
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const expectedChecksum = view.getUint32(0);
  const covered = body.subarray(4);
  const actualChecksum = crc32(covered);
  if (actualChecksum !== expectedChecksum) {
    throw new PeerFrameMalformedError(
      'checksum',
      `CRC-32 ${actualChecksum} does not match ${expectedChecksum}`,
    );
  }
  const versionAndKind = covered[0]!;
  const version = versionAndKind >> 4;
  if (version !== frameVersion) {
    throw new PeerFrameMalformedError('version', `frame version ${version} is not ${frameVersion}`);
  }
  const kind = frameKindsByNumber.get(versionAndKind & 0x0f);
  if (kind === undefined) {
    throw new PeerFrameMalformedError('kind', `unknown frame kind ${versionAndKind & 0x0f}`);
  }
  return { kind, payload: covered.subarray(1), frameBytes: body.byteLength + 4 };
}
