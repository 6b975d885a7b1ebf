/**
 * The durable, segmented Raft log of a replica (see README.md): the store the host loop persists
 * each Ready into, which also serves the core's `Storage` reads. Either one log per replica
 * (`RaftLogStore`) or one log per node shared by its groups (`NodeLog`, one `GroupLog` per group);
 * both are `ReplicaLog`s.
 */
export {
  isRaftLogError,
  RaftLogError,
  raftLogErrorCodes,
  type CorruptionLocation,
  type RaftLogErrorCode,
} from './errors.js';
export {
  RECORD_BYTES_MAX_DEFAULT,
  SEGMENT_BYTES_MAX_DEFAULT,
  SEGMENT_BYTES_MIN,
  type RaftLogObserver,
  type RaftLogOptions,
} from './options.js';
export { RaftLogStore } from './raft-log-store.js';
export type { RaftLogUpdate, ReplicaLog, WriteOptions } from './replica-log.js';
export { GROUP_ID_BYTES_MAX, isGroupId } from './group-id.js';
export { GroupLog } from './group-log.js';
export { NodeLog, type PinningGroup } from './node-log.js';
export {
  GROUPS_MAX_DEFAULT,
  PENDING_BYTES_MAX_DEFAULT,
  type GroupLogOptions,
  type NodeLogFlush,
  type NodeLogObserver,
  type NodeLogOptions,
} from './node-log-options.js';
