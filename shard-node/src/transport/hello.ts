/**
 * The handshake. Each connection starts with a `hello` frame from the dialer naming the cluster,
 * the group, itself and the replica it means to reach; the receiver checks every field and either
 * answers with its own `hello` (the same fields seen from its side) or closes the connection. The
 * dialer checks the answer the same way, so that neither side ever exchanges Raft messages with a
 * process of another group, or with another replica that happens to listen on a reused port.
 *
 * Payload: varint protocol version · u8 purpose (1 messages, 2 snapshot) · string cluster id ·
 * string group id · varint sender replica id · varint receiver replica id · bytes nonce (32) ·
 * bytes proof (empty in the dialler's hello, 32 in the acceptor's answer)
 * (string = varint byte length + UTF-8, at most `helloIdBytesMax` bytes; bytes = varint length +
 * bytes). The nonces and the proof authenticate both sides (`peer-auth.ts`); the dialler's proof
 * follows in an `auth` frame, before anything else.
 */
import type { NodeId } from '../raft/index.js';
import { BufferReader, malformed } from './buffer-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import { beginFrame, finishFrame, type FrameKind } from './frame.js';
import { FrameDecoder } from './frame-decoder.js';
import { nonceBytes, proofBytes } from './peer-auth.js';

const empty = new Uint8Array(0);

/** The protocol this transport speaks; a peer with another version is refused. */
export const protocolVersion = 2;

/** The longest cluster or group id a hello may carry. */
export const helloIdBytesMax = 256;

/**
 * What a connection carries: `messages` (the persistent connection of Raft messages) or `snapshot`
 * (one snapshot stream on a connection of its own, so that its megabytes and its backpressure
 * never delay heartbeats).
 */
export type ConnectionPurpose = 'messages' | 'snapshot';

const purposeTags = { messages: 1, snapshot: 2 } as const satisfies Record<ConnectionPurpose, number>;

export interface Hello {
  readonly protocolVersion: number;
  readonly purpose: ConnectionPurpose;
  readonly clusterId: string;
  readonly groupId: string;
  readonly senderId: NodeId;
  readonly receiverId: NodeId;
  /** The sender's fresh random nonce (`nonceBytes`). */
  readonly nonce: Uint8Array;
  /** Empty from the dialler; the acceptor's proof (`proofBytes`) in its answer. */
  readonly proof: Uint8Array;
}

/** Writes a complete hello frame into `writer`. */
export function encodeHelloFrame(writer: BufferWriter, hello: Hello): void {
  const start = beginFrame(writer, 'hello');
  writer.writeVarint(hello.protocolVersion);
  writer.writeUint8(purposeTags[hello.purpose]);
  writer.writeString(hello.clusterId);
  writer.writeString(hello.groupId);
  writer.writeVarint(hello.senderId);
  writer.writeVarint(hello.receiverId);
  writer.writeLengthPrefixedBytes(hello.nonce);
  writer.writeLengthPrefixedBytes(hello.proof);
  finishFrame(writer, start);
}

/** Writes a complete `auth` frame: the dialler's proof, after the acceptor's hello. */
export function encodeAuthFrame(writer: BufferWriter, proof: Uint8Array): void {
  const start = beginFrame(writer, 'auth');
  writer.writeLengthPrefixedBytes(proof);
  finishFrame(writer, start);
}

/** Decodes an `auth` payload: the dialler's proof. */
export function decodeAuth(payload: Uint8Array): Uint8Array {
  const reader = new BufferReader(payload);
  const proof = reader.readLengthPrefixedBytes(new Uint8Array(0));
  reader.expectEnd('auth');
  if (proof.byteLength !== proofBytes) throw malformed(`a proof of ${proof.byteLength} bytes`);
  return proof;
}

/** Decodes a hello payload. Throws `PeerFrameMalformedError` on any invalid byte. */
export function decodeHello(payload: Uint8Array): Hello {
  const reader = new BufferReader(payload);
  const version = reader.readVarint();
  const purposeTag = reader.readUint8();
  const purpose: ConnectionPurpose | undefined =
    purposeTag === purposeTags.messages
      ? 'messages'
      : purposeTag === purposeTags.snapshot
        ? 'snapshot'
        : undefined;
  if (purpose === undefined) {
    throw malformed(`unknown connection purpose ${purposeTag}`);
  }
  const clusterId = reader.readString(helloIdBytesMax, 'cluster id');
  const groupId = reader.readString(helloIdBytesMax, 'group id');
  const senderId = reader.readVarint();
  const receiverId = reader.readVarint();
  // A peer of another protocol version is refused by `refuseHello`, not taken for garbage.
  if (version !== protocolVersion) {
    return {
      protocolVersion: version,
      purpose,
      clusterId,
      groupId,
      senderId,
      receiverId,
      nonce: empty,
      proof: empty,
    };
  }
  const nonce = reader.readLengthPrefixedBytes(empty);
  const proof = reader.readLengthPrefixedBytes(empty);
  reader.expectEnd('hello');
  if (nonce.byteLength !== nonceBytes) throw malformed(`a nonce of ${nonce.byteLength} bytes`);
  if (proof.byteLength !== 0 && proof.byteLength !== proofBytes)
    throw malformed(`a proof of ${proof.byteLength} bytes`);
  return { protocolVersion: version, purpose, clusterId, groupId, senderId, receiverId, nonce, proof };
}

/**
 * Why a hello is refused, or undefined when it is the expected one. `expectedSenderId` is
 * undefined on the receiving side, where any known peer may dial (`isKnownPeer` decides).
 */
export function refuseHello(
  hello: Hello,
  expected: {
    readonly clusterId: string;
    readonly groupId: string;
    readonly selfId: NodeId;
    readonly expectedSenderId?: NodeId;
    readonly isKnownPeer: (id: NodeId) => boolean;
  },
): HelloRefusal | undefined {
  if (hello.protocolVersion !== protocolVersion) {
    return 'protocolVersion';
  }
  if (hello.clusterId !== expected.clusterId) {
    return 'clusterId';
  }
  if (hello.groupId !== expected.groupId) {
    return 'groupId';
  }
  if (hello.receiverId !== expected.selfId) {
    return 'receiverId';
  }
  if (expected.expectedSenderId !== undefined && hello.senderId !== expected.expectedSenderId) {
    return 'senderId';
  }
  if (!expected.isKnownPeer(hello.senderId)) {
    return 'unknownPeer';
  }
  return undefined;
}

/** Why a handshake was refused. Kept small because it labels a metric. */
export type HelloRefusal =
  | 'protocolVersion'
  | 'clusterId'
  | 'groupId'
  | 'receiverId'
  | 'senderId'
  | 'unknownPeer'
  /** The peer's proof does not match: it does not hold the cluster secret (`peer-auth.ts`). */
  | 'authentication';

/**
 * The hello at the start of a peer connection's byte stream, for tools that sit on peer links
 * (the chaos tool's fault-injecting proxy names a connection's dialler from it): the hello, or
 * `undefined` while its frame is incomplete, or `null` when the bytes are not a valid hello frame.
 */
export function helloAtStreamStart(bytes: Buffer, frameBytesMax = 4096): Hello | null | undefined {
  return frameAtStreamStart(bytes, 'hello', decodeHello, frameBytesMax);
}

/**
 * The first frame of a byte stream decoded by `decode` when it is of `kind`: `undefined` while the
 * frame is incomplete, `null` when the bytes are not a valid frame of that kind.
 */
export function frameAtStreamStart<T>(
  bytes: Buffer,
  kind: FrameKind,
  decode: (payload: Uint8Array) => T,
  frameBytesMax: number,
): T | null | undefined {
  const decoder = new FrameDecoder(frameBytesMax);
  decoder.push(bytes);
  try {
    const frame = decoder.next();
    if (frame === undefined) return undefined;
    return frame.kind === kind ? decode(frame.payload) : null;
  } catch {
    return null;
  }
}
