/**
 * The peer transports: Raft messages and snapshot streams between replicas, over persistent TCP
 * connections with length-prefixed, checksummed binary frames. `PeerTransport` serves one replica
 * (a process of one replica); `NodeTransport` serves a node hosting replicas of many groups, with
 * one connection per peer node. See README.md.
 */
export { PeerTransport, type PeerTransportOptions, type SendSnapshotOptions } from './peer-transport.js';
export { NodeTransport, type NodeTransportOptions } from './node-transport.js';
export { addressKey, type PeerAddress } from './context.js';
export type { PeerConnectionState, PeerStatus } from './outbound-connection.js';
export type { SnapshotAbort, SnapshotChunk } from './inbound-connection.js';
export type { SnapshotSendResult } from './snapshot-sender.js';
export { defaultTransportLimits, resolveTransportLimits, type TransportLimits } from './limits.js';
export {
  PeerFrameMalformedError,
  TransportError,
  transportErrorCodes,
  type MalformedReason,
  type TransportErrorCode,
} from './errors.js';
export {
  decodeMessage,
  decodeMessageBatch,
  encodeMessage,
  isNetworkMessageType,
  messageEncodedBytesBound,
  messageTypeTags,
  networkMessageTypes,
  type NetworkMessageType,
} from './codec.js';
export { BufferReader } from './buffer-reader.js';
export { BufferWriter } from './buffer-writer.js';
export { FrameDecoder } from './frame-decoder.js';
export {
  beginFrame,
  finishFrame,
  frameHeaderBytes,
  frameKinds,
  frameVersion,
  type Frame,
  type FrameKind,
} from './frame.js';
export {
  decodeAuth,
  decodeHello,
  helloAtStreamStart,
  encodeAuthFrame,
  encodeHelloFrame,
  protocolVersion,
  type ConnectionPurpose,
  type Hello,
} from './hello.js';
export {
  newNonce,
  nodeProofOf,
  nonceBytes,
  proofBytes,
  proofMatches,
  proofOf,
  type ConnectionIdentity,
  type NodeConnectionIdentity,
} from './peer-auth.js';
export {
  createTransportMetrics,
  type DropReason,
  type InboundDropReason,
  type TransportMetrics,
} from './metrics.js';
export {
  decodeNodeHello,
  encodeNodeHelloFrame,
  isNodeAddress,
  nodeAddressBytesMax,
  nodeHelloAtStreamStart,
  nodeProtocolVersion,
  type NodeHello,
} from './node-hello.js';
export { groupIdBytesMax, isWireGroupId } from './group-id.js';
export {
  decodeGroupMessages,
  encodeHeartbeatSection,
  fillGroupMessagesFrame,
  runMessagesMax,
  sectionKinds,
  type GroupFrameOptions,
  type GroupRun,
} from './group-messages.js';
// `coalescerMutants` and `nodeResponsesTo` are the coalescer's planted bugs: for the node simulator only.
export {
  coalescerMutants,
  isCoalescible,
  nodeResponsesTo,
  type CoalescerMutant,
} from './coalesced-heartbeats.js';
export { decodeSnapshotHeader, encodeSnapshotHeaderFrame, type SnapshotHeader } from './snapshot-chunk.js';
export { SendQueue, type QueuedMessage } from './send-queue.js';
export { WarningLimiter } from './warning-limiter.js';
export { Backoff } from './backoff.js';
