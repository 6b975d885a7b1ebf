/**
 * The Raft consensus core: a pure, synchronous state machine in the style of etcd's raft library.
 * Hosts (the replica's event loop, the seeded simulator) drive it through `RawNode`.
 */
export type {
  ConfChange,
  ConfChangeSingle,
  ConfChangeTransition,
  ConfChangeType,
  ConfChangeV2,
  ConfState,
  Entry,
  EntryType,
  HardState,
  LogFields,
  Logger,
  Message,
  MessageType,
  NodeId,
  ProgressState,
  ProgressStatus,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotMetadata,
  SoftState,
  Status,
} from './types.js';
export { NONE } from './types.js';
export type { Config, ReadOnlyOption, ResolvedConfig } from './config.js';
export { silentLogger, validateConfig } from './config.js';
export { isRaftMutant, type RaftMutant, raftMutants } from './mutants.js';
export {
  assert,
  CompactedError,
  RaftError,
  type RaftErrorCode,
  raftErrorCodes,
  SnapshotOutOfDateError,
  SnapshotTemporarilyUnavailableError,
  UnavailableError,
} from './errors.js';
export type { InitialState, MemoryStorageOptions, Storage } from './storage.js';
export { EMPTY_CONF_STATE, EMPTY_HARD_STATE, MemoryStorage } from './storage.js';
export { RawNode } from './raw-node.js';
export { CAMPAIGN_TRANSFER_CONTEXT, type Raft } from './raft.js';
export { createSeededRandom } from './random.js';
export {
  asConfChangeV2,
  decodeConfChange,
  describeConfChange,
  encodeConfChange,
  enterJointOf,
  isConfChangeV2,
  isLeaveJoint,
} from './confchange-codec.js';
export { EMPTY_BYTES, ENTRY_HEADER_BYTES, entrySizeBytes, payloadBytes } from './entry.js';
export {
  describeConfState,
  describeEntries,
  describeEntry,
  describeHardState,
  describeMessage,
  describeReady,
  describeSnapshot,
  describeSoftState,
} from './describe.js';
