/**
 * What the parts of a transport (outbound and inbound connections, snapshot senders) share,
 * whichever transport they serve (a replica's `PeerTransport` or a node's `NodeTransport`):
 * limits, metrics, logging and the injected clock and randomness. Who is speaking to whom is the
 * handshake's business (`handshake.ts`).
 */
import type { Logger } from '@impulse/common';

import type { TransportLimits } from './limits.js';
import type { TransportMetrics } from './metrics.js';
import type { WarningLimiter } from './warning-limiter.js';

export interface TransportContext {
  readonly limits: TransportLimits;
  readonly metrics: TransportMetrics;
  readonly logger: Logger;
  readonly warnings: WarningLimiter;
  /** A number in [0, 1), for reconnect jitter. */
  readonly random: () => number;
  /** A monotonic clock in milliseconds. */
  readonly nowMs: () => number;
}

/** Where a peer listens. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** An address as a connection key and a metric label: `host:port` (IPv6 hosts in brackets). */
export function addressKey(address: PeerAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
