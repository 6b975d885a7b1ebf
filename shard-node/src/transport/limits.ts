/**
 * The limits and timings of the transport. Every queue, frame and wait has a named maximum here,
 * with its unit in its name and its default beside it; `resolveTransportLimits` checks them once
 * at start-up.
 */
import { assert } from './errors.js';
import { frameHeaderBytes } from './frame.js';
import { snapshotChunkOverheadBytesMax } from './snapshot-chunk.js';

export interface TransportLimits {
  /** The largest frame sent or accepted, header included. Default 4 MiB. */
  readonly frameBytesMax: number;
  /** Messages queued for one peer before new ones are dropped. Default 4096. */
  readonly sendQueueMessagesMax: number;
  /** Encoded bytes (upper bound) queued for one peer before new messages are dropped. Default 64 MiB. */
  readonly sendQueueBytesMax: number;
  /**
   * How long messages for a peer that is not connected wait for the connection. After that they
   * are dropped, and so is every new message until the peer is connected again. Default 1000 ms.
   */
  readonly disconnectedBufferMs: number;
  /** The first reconnect delay; it doubles on each failure. Default 50 ms. */
  readonly reconnectDelayMsMin: number;
  /** The largest reconnect delay. Default 2000 ms. */
  readonly reconnectDelayMsMax: number;
  /** How long connecting plus the hello exchange may take. Default 5000 ms. */
  readonly handshakeTimeoutMs: number;
  /** How long a write may wait for the socket to drain before the connection is deemed dead. Default 15000 ms. */
  readonly writeStallTimeoutMs: number;
  /** The idle time before TCP keep-alive probes start. Default 10000 ms. */
  readonly keepAliveInitialDelayMs: number;
  /** Accepted connections open at once (all purposes); more are closed at once. Default 64. */
  readonly inboundConnectionsMax: number;
  /** Inbound snapshot streams at once; more are refused. Default 2. */
  readonly inboundSnapshotStreamsMax: number;
  /** How long a snapshot sender waits for the receiver's acknowledgement after the last chunk. Default 60000 ms. */
  readonly snapshotAckTimeoutMs: number;
  /** The shortest interval between two warnings of the same kind; the ones between are counted. Default 5000 ms. */
  readonly warningIntervalMs: number;
}

export const defaultTransportLimits: TransportLimits = Object.freeze({
  frameBytesMax: 4 * 1024 * 1024,
  sendQueueMessagesMax: 4096,
  sendQueueBytesMax: 64 * 1024 * 1024,
  disconnectedBufferMs: 1000,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 2000,
  handshakeTimeoutMs: 5000,
  writeStallTimeoutMs: 15_000,
  keepAliveInitialDelayMs: 10_000,
  inboundConnectionsMax: 64,
  inboundSnapshotStreamsMax: 2,
  snapshotAckTimeoutMs: 60_000,
  warningIntervalMs: 5000,
});

/** The frame size above which nothing is accepted whatever the configuration (the u32 length field). */
const frameBytesCeiling = 2 ** 31;

/** Merges `overrides` over the defaults and checks the result; a bad limit is a programmer error. */
export function resolveTransportLimits(overrides: Partial<TransportLimits> = {}): TransportLimits {
  const limits: TransportLimits = { ...defaultTransportLimits, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    assert(
      Number.isSafeInteger(value) && value >= 0,
      `limit ${name} is a non-negative integer, got ${value}`,
    );
  }
  assert(
    limits.frameBytesMax > snapshotChunkOverheadBytesMax + frameHeaderBytes &&
      limits.frameBytesMax <= frameBytesCeiling,
    `frameBytesMax ${limits.frameBytesMax} leaves room for a snapshot chunk header and fits in a u32`,
  );
  assert(limits.sendQueueMessagesMax >= 1, 'sendQueueMessagesMax is at least 1');
  assert(limits.sendQueueBytesMax >= 1, 'sendQueueBytesMax is at least 1');
  assert(limits.reconnectDelayMsMin >= 1, 'reconnectDelayMsMin is at least 1');
  assert(
    limits.reconnectDelayMsMax >= limits.reconnectDelayMsMin,
    'reconnectDelayMsMax >= reconnectDelayMsMin',
  );
  assert(limits.handshakeTimeoutMs >= 1, 'handshakeTimeoutMs is at least 1');
  assert(limits.writeStallTimeoutMs >= 1, 'writeStallTimeoutMs is at least 1');
  assert(limits.inboundConnectionsMax >= 1, 'inboundConnectionsMax is at least 1');
  return Object.freeze(limits);
}
