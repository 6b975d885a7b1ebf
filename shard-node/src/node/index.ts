export {
  Node,
  nodeReplicasMax,
  replicaOpensInFlightMax,
  type HostedReplica,
  type NodeOptions,
  type ReplicaFailure,
  type ReplicaSettings,
} from './node.js';
export { NodeProcess, nodeHostingOf, nodeDataDirectoryOf, type NodeHosting } from './node-process.js';
export {
  LogPurge,
  logPurgeDefaults,
  type ForcedCompactionOutcome,
  type LogPurgeSettings,
} from './log-purge.js';
