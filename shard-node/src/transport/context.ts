/**
 * What the parts of a transport (peer connections, inbound connections, snapshot senders) share:
 * identity, limits, metrics, logging and the injected clock and randomness.
 */
import type { Logger } from '@impulse/common';

import type { NodeId } from '../raft/index.js';
import type { TransportLimits } from './limits.js';
import type { TransportMetrics } from './metrics.js';
import type { WarningLimiter } from './warning-limiter.js';

export interface TransportContext {
  readonly selfId: NodeId;
  readonly clusterId: string;
  readonly groupId: string;
  /** The cluster secret (empty: none) that handshake proofs are keyed by (`peer-auth.ts`). */
  readonly secret: Uint8Array;
  readonly limits: TransportLimits;
  readonly metrics: TransportMetrics;
  readonly logger: Logger;
  readonly warnings: WarningLimiter;
  /** A number in [0, 1), for reconnect jitter. */
  readonly random: () => number;
  /** A monotonic clock in milliseconds. */
  readonly nowMs: () => number;
  isKnownPeer(id: NodeId): boolean;
}

/** Where a peer listens. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}
