/**
 * The durable, segmented Raft log of a replica (see README.md): the store the host loop persists
 * each Ready into, which also serves the core's `Storage` reads.
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
