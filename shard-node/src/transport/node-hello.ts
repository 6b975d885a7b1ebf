/**
 * The node transport's hello (frame kind `nodeHello`). A node is one process hosting replicas of
 * many groups, so the hello names nodes, not groups or replicas: the cluster, the dialler's
 * advertised peer address, and the address it dialled (the acceptor's advertised one, as every
 * member directory lists it). Which group and replica each message is for travels with the message
 * (`group-messages.ts`), or in a snapshot stream's header (`snapshot-chunk.ts`).
 *
 * Payload: varint protocol version · u8 purpose (1 messages, 2 snapshot) · string cluster id ·
 * string sender address · string receiver address · bytes nonce (32) · bytes proof (empty from the
 * dialler, 32 in the acceptor's answer). Addresses are `host:port` in ASCII, at most
 * `nodeAddressBytesMax` bytes.
 */
import { BufferReader, malformed } from './buffer-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { PeerAddress } from './context.js';
import { beginFrame, finishFrame } from './frame.js';
import { frameAtStreamStart, helloIdBytesMax, type ConnectionPurpose } from './hello.js';
import { nonceBytes, proofBytes } from './peer-auth.js';

/** The node protocol this transport speaks; a peer with another version is refused. */
export const nodeProtocolVersion = 1;

/**
 * The longest node address: a DNS name (at most 253 bytes) or a bracketed IPv6 address, a colon
 * and a port of up to five digits.
 */
export const nodeAddressBytesMax = 260;

/** `host:port` with an ASCII host name, IPv4 address or bracketed IPv6 address. */
const nodeAddressPattern = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$/;

export function isNodeAddress(text: string): boolean {
  return text.length <= nodeAddressBytesMax && nodeAddressPattern.test(text);
}

/**
 * The peer address a node address names (the inverse of `addressKey`: an IPv6 host loses its
 * brackets), or undefined when `text` is not one or its port is not a TCP port a node can listen
 * on (1 to 65535): such an address is never dialled.
 */
export function peerAddressOf(text: string): PeerAddress | undefined {
  if (!isNodeAddress(text)) return undefined;
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon);
  const port = Number(text.slice(colon + 1));
  if (port < 1 || port > 65_535) return undefined;
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port };
}

const purposeTags = { messages: 1, snapshot: 2 } as const satisfies Record<ConnectionPurpose, number>;

const empty = new Uint8Array(0);

export interface NodeHello {
  readonly protocolVersion: number;
  readonly purpose: ConnectionPurpose;
  readonly clusterId: string;
  /** The sender's advertised peer address. */
  readonly senderAddress: string;
  /** The address the sender believes it speaks to. */
  readonly receiverAddress: string;
  readonly nonce: Uint8Array;
  /** Empty from the dialler; the acceptor's proof in its answer. */
  readonly proof: Uint8Array;
}

export function encodeNodeHelloFrame(writer: BufferWriter, hello: NodeHello): void {
  const start = beginFrame(writer, 'nodeHello');
  writer.writeVarint(hello.protocolVersion);
  writer.writeUint8(purposeTags[hello.purpose]);
  writer.writeString(hello.clusterId);
  writer.writeString(hello.senderAddress);
  writer.writeString(hello.receiverAddress);
  writer.writeLengthPrefixedBytes(hello.nonce);
  writer.writeLengthPrefixedBytes(hello.proof);
  finishFrame(writer, start);
}

/** Decodes a node hello payload. Throws `PeerFrameMalformedError` on any invalid byte. */
export function decodeNodeHello(payload: Uint8Array): NodeHello {
  const reader = new BufferReader(payload);
  const version = reader.readVarint();
  const purposeTag = reader.readUint8();
  const purpose: ConnectionPurpose | undefined =
    purposeTag === purposeTags.messages
      ? 'messages'
      : purposeTag === purposeTags.snapshot
        ? 'snapshot'
        : undefined;
  if (purpose === undefined) throw malformed(`unknown connection purpose ${purposeTag}`);
  const clusterId = reader.readString(helloIdBytesMax, 'cluster id');
  const senderAddress = reader.readString(nodeAddressBytesMax, 'sender address');
  const receiverAddress = reader.readString(nodeAddressBytesMax, 'receiver address');
  // A peer of another protocol version is refused by `refuseNodeHello`, not taken for garbage.
  if (version !== nodeProtocolVersion) {
    return {
      protocolVersion: version,
      purpose,
      clusterId,
      senderAddress,
      receiverAddress,
      nonce: empty,
      proof: empty,
    };
  }
  // Addresses label metrics and logs: only well-formed ones get that far.
  if (!isNodeAddress(senderAddress)) throw malformed('a sender address that is not host:port');
  if (!isNodeAddress(receiverAddress)) throw malformed('a receiver address that is not host:port');
  const nonce = reader.readLengthPrefixedBytes(empty);
  const proof = reader.readLengthPrefixedBytes(empty);
  reader.expectEnd('node hello');
  if (nonce.byteLength !== nonceBytes) throw malformed(`a nonce of ${nonce.byteLength} bytes`);
  if (proof.byteLength !== 0 && proof.byteLength !== proofBytes)
    throw malformed(`a proof of ${proof.byteLength} bytes`);
  return { protocolVersion: version, purpose, clusterId, senderAddress, receiverAddress, nonce, proof };
}

/**
 * The node hello at the start of a node transport connection's byte stream, for tools that sit on
 * peer links (the chaos tool's fault-injecting proxy names the dialling node from its sender
 * address): the hello, or `undefined` while its frame is incomplete, or `null` when the bytes are
 * not a valid node hello frame.
 */
export function nodeHelloAtStreamStart(bytes: Buffer, frameBytesMax = 4096): NodeHello | null | undefined {
  return frameAtStreamStart(bytes, 'nodeHello', decodeNodeHello, frameBytesMax);
}

/** Why a node hello is refused. Kept small because it labels a metric. */
export type NodeHelloRefusal =
  | 'protocolVersion'
  | 'clusterId'
  /** The dialler dialled another address than this node's advertised one. */
  | 'receiverAddress'
  /** The answer comes from another node than the one dialled. */
  | 'senderAddress'
  | 'purpose'
  | 'authentication';

/** Why `hello` is refused, or undefined when it is the expected one. */
export function refuseNodeHello(
  hello: NodeHello,
  expected: {
    readonly clusterId: string;
    readonly selfAddress: string;
    /** The answer's sender, on the dialling side; any node may dial. */
    readonly expectedSenderAddress?: string;
  },
): NodeHelloRefusal | undefined {
  if (hello.protocolVersion !== nodeProtocolVersion) return 'protocolVersion';
  if (hello.clusterId !== expected.clusterId) return 'clusterId';
  if (hello.receiverAddress !== expected.selfAddress) return 'receiverAddress';
  if (expected.expectedSenderAddress !== undefined && hello.senderAddress !== expected.expectedSenderAddress)
    return 'senderAddress';
  return undefined;
}
