export {
  Replica,
  type MemberSpec,
  type ReadMode,
  type ReplicaOptions,
  type ReplicaRole,
  type ReplicaStatus,
} from './replica.js';
