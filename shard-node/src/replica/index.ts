export {
  Replica,
  type MemberSpec,
  type MembershipChange,
  type ReadMode,
  type ReplicaOptions,
  type ReplicaRole,
  type ReplicaStatus,
} from './replica.js';
export type { RequestedCompactionOutcome } from './compaction-policy.js';
export { systemScheduler, sleep, type Scheduler, type Timer } from './scheduler.js';
export { sharedIntervals } from './shared-intervals.js';
export { logMetricsOf, nodeLogObserverOf, type LogMetrics } from './log-metrics.js';
export type {
  InboundSender,
  OpenReplicaTransport,
  ReplicaTransport,
  ReplicaTransportHandlers,
} from './replica-transport.js';
export { nullTransport } from './replica-transport.js';
export type { PeerAddress } from './member-directory.js';
export type { OpenReplicaLog } from './replica-state.js';
