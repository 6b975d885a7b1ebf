export {
  Node,
  nodeReplicasMax,
  type HostedReplica,
  type NodeOptions,
  type ReplicaFailure,
  type ReplicaSettings,
} from './node.js';
export { NodeProcess, nodeHostingOf, nodeDataDirectoryOf, type NodeHosting } from './node-process.js';
