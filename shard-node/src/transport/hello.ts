/**
 * The handshake. Each connection starts with a `hello` frame from the dialer naming the cluster,
 * the group, itself and the replica it means to reach; the receiver checks every field and either
 * answers with its own `hello` (the same fields seen from its side) or closes the connection. The
 * dialer checks the answer the same way, so that neither side ever exchanges Raft messages with a
 * process of another group, or with another replica that happens to listen on a reused port.
 *
 * Payload: varint protocol version · u8 purpose (1 messages, 2 snapshot) · string cluster id ·
 * string group id · varint sender replica id · varint receiver replica id
 * (string = varint byte length + UTF-8, at most `helloIdBytesMax` bytes).
 */
import type { NodeId } from '../raft/index.js';
import { BufferReader, malformed } from './buffer-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import { beginFrame, finishFrame } from './frame.js';
import { FrameDecoder } from './frame-decoder.js';

/** The protocol this transport speaks; a peer with another version is refused. */
export const protocolVersion = 1;

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
  finishFrame(writer, start);
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
  reader.expectEnd('hello');
  return { protocolVersion: version, purpose, clusterId, groupId, senderId, receiverId };
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
  'protocolVersion' | 'clusterId' | 'groupId' | 'receiverId' | 'senderId' | 'unknownPeer';

/**
 * The hello at the start of a peer connection's byte stream, for tools that sit on peer links
 * (the chaos tool's fault-injecting proxy names a connection's dialler from it): the hello, or
 * `undefined` while its frame is incomplete, or `null` when the bytes are not a valid hello frame.
 */
export function helloAtStreamStart(bytes: Buffer, frameBytesMax = 4096): Hello | null | undefined {
  const decoder = new FrameDecoder(frameBytesMax);
  decoder.push(bytes);
  try {
    const frame = decoder.next();
    if (frame === undefined) return undefined;
    return frame.kind === 'hello' ? decodeHello(frame.payload) : null;
  } catch {
    return null;
  }
}
