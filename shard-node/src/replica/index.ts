export {
  Replica,
  type MemberSpec,
  type ReplicaOptions,
  type ReplicaRole,
  type ReplicaStatus,
} from './replica.js';
