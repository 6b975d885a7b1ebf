export {
  Node,
  nodeReplicasMax,
  type HostedReplica,
  type NodeOptions,
  type ReplicaFailure,
  type ReplicaSettings,
} from './node.js';
