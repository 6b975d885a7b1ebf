/**
 * The peer transport: Raft messages and snapshot streams between the replicas of one group, over
 * persistent TCP connections with length-prefixed, checksummed binary frames. See README.md.
 */
export { PeerTransport, type PeerTransportOptions, type SendSnapshotOptions } from './peer-transport.js';
export type { PeerAddress } from './context.js';
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
  nonceBytes,
  proofBytes,
  proofMatches,
  proofOf,
  type ConnectionIdentity,
} from './peer-auth.js';
export { createTransportMetrics, type DropReason, type TransportMetrics } from './metrics.js';
export { WarningLimiter } from './warning-limiter.js';
export { Backoff } from './backoff.js';
