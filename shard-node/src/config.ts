import {
  ConfigError,
  adminTokenBytesMin,
  httpServerLimitProblems,
  httpServerOptions,
  keyBytesMaxDefault,
  logLevels,
  option,
  parseConfig,
  valueBytesMaxDefault,
  type ConfigOf,
  type ParseConfigInput,
} from '@impulse/common';
import { SEGMENT_BYTES_MAX_DEFAULT, SEGMENT_BYTES_MIN } from './raft-log/index.js';
import { engineNames } from './storage/index.js';

/** The shortest cluster secret accepted. */
export const clusterSecretBytesMin = 16;

export const shardNodeProgram = {
  name: 'impulse-shard-node',
  summary: 'one replica of a shard group: stores keys in a storage engine and serves them over HTTP',
};

export const shardNodeOptions = {
  nodeId: option.string({
    description:
      'Run as a node: host a replica of every group that the cluster configuration places on this node id, on one client port and one peer port. Without it, the process is one replica (--group-id, --replica-id).',
    default: '',
  }),
  groupId: option.string({ description: 'Id of the shard group this replica belongs to.', default: 'g1' }),
  replicaId: option.string({ description: 'Id of this replica, unique in the cluster.', default: 'g1-r1' }),
  host: option.string({ description: 'Address the client API listens on.', default: '127.0.0.1' }),
  port: option.integer({
    description: 'Port of the client API (0 picks a free port).',
    default: 7001,
    min: 0,
    max: 65535,
  }),
  engine: option.enum({ description: 'Storage engine.', default: 'leveldb', choices: engineNames }),
  dataDir: option.string({
    description:
      'Directory of this replica\'s data; "" means ./data/GROUP-ID/REPLICA-ID (./data/NODE-ID for a node).',
    default: '',
  }),
  clusterFile: option.string({
    description: 'Path of the cluster configuration (JSON); without one the replica is a group of one.',
    default: '',
  }),
  cluster: option.string({
    description: 'Inline cluster configuration (JSON); wins over --cluster-file.',
    default: '',
  }),
  clusterId: option.string({
    description: 'Name of the cluster; peers of another cluster are refused.',
    default: 'impulse',
  }),
  clusterSecretFile: option.string({
    description: `File holding the cluster secret (at least ${clusterSecretBytesMin} bytes; a trailing newline is ignored) that peers prove to each other when they connect. IMPULSE_CLUSTER_SECRET may hold the secret itself instead (an environment variable only: a flag would show in ps). Without either, peer links are not authenticated.`,
    default: '',
  }),
  adminTokenFile: option.string({
    description: `File holding the admin token (at least ${adminTokenBytesMin} bytes of letters, digits and - . _ ~ + /; a trailing newline is ignored) that requests to the admin routes (/admin/...) must carry as 'Authorization: Bearer <token>'; give every node and gateway of a cluster the same one. IMPULSE_ADMIN_TOKEN may hold the token itself instead (an environment variable only: a flag would show in ps). Without either, admin reads are open and admin changes refused; a process given a cluster secret needs one.`,
    default: '',
  }),
  peerPort: option.integer({
    description: "Port of the peer transport; 0 takes the port of this replica's peerAddress, or a free one.",
    default: 0,
    min: 0,
    max: 65535,
  }),
  join: option.boolean({
    description:
      'Join a live group as a new replica (added by POST /admin/members on its leader) instead of founding it.',
    default: false,
  }),
  bootstrap: option.boolean({
    description:
      'First start of this group: found it if the data directory holds no Raft state (ignored once it does). Without it (or --join) an empty data directory is refused. Never give it to a replica that lost its data: remove it from the group and add it back under a new replica id.',
    default: false,
  }),
  bootstrapGroups: option.string({
    description:
      'A node only: the groups (comma-separated ids) whose first start on this node this is; each founds its group if its state here is empty, as --bootstrap does for all of them. A launcher that adds groups to running nodes names the new ones here, so that an old group whose data was lost is refused rather than founded again, empty.',
    default: '',
  }),
  raftLogSync: option.boolean({
    description:
      'fsync the Raft log before acknowledging (one fsync per batch of writes). Off only for benchmarks.',
    default: true,
  }),
  raftLogSegmentBytesMax: option.bytes({
    description:
      'A new Raft log segment file starts once the current one would grow past this. Small values (tests) give many segments.',
    default: SEGMENT_BYTES_MAX_DEFAULT,
    min: SEGMENT_BYTES_MIN,
    // Recovery reads each segment whole into memory.
    max: 1024 * 1024 * 1024,
  }),
  tickInterval: option.milliseconds({ description: 'One Raft tick.', default: 100, min: 1, max: 60_000 }),
  electionTimeoutTicks: option.integer({
    description: 'Ticks without a leader before a follower campaigns (randomised up to twice this).',
    default: 10,
    min: 2,
    max: 10_000,
  }),
  heartbeatTicks: option.integer({
    description: 'Ticks between leader heartbeats.',
    default: 1,
    min: 1,
    max: 1000,
  }),
  readMode: option.enum({
    description:
      "How a linearizable read confirms leadership: 'readindex' (a heartbeat round, shared by the reads of one turn; no clock assumption) or 'lease' (the leader answers at once while a quorum's heartbeat acknowledgements hold its lease; assumes the replicas' clocks run at the same rate, within a tick per election timeout).",
    default: 'readindex',
    choices: ['readindex', 'lease'],
  }),
  snapshotEntries: option.integer({
    description: 'Applied entries between state machine snapshots; the Raft log is compacted behind each.',
    default: 10_000,
    min: 1,
  }),
  snapshotCatchUpEntries: option.integer({
    description: 'Entries kept behind a snapshot so that a slow follower catches up without one.',
    default: 5_000,
    min: 0,
  }),
  proposalTimeout: option.milliseconds({
    description: 'How long a write waits to be committed and applied before COMMIT_TIMEOUT.',
    default: 5_000,
    min: 1,
    max: 60_000,
  }),
  consistencyCheckInterval: option.milliseconds({
    description:
      'How often the leader runs a consistency check of its group: every replica hashes its state at one log index in the background and the leader compares the hashes (POST /admin/consistency-check runs one on demand). 0 turns periodic checks off.',
    default: 24 * 3_600_000,
    min: 0,
    max: 7 * 24 * 3_600_000,
  }),
  valueBytesMax: option.bytes({
    description:
      'Largest value accepted. With a cluster configuration the limit is cluster-wide: its valueBytesMax (1MiB when absent), which this flag, if given, must equal.',
    default: valueBytesMaxDefault,
    min: 0,
    max: 64 * 1024 * 1024,
  }),
  keyBytesMax: option.bytes({
    description:
      'Longest key accepted, in bytes of UTF-8. With a cluster configuration the limit is cluster-wide: its keyBytesMax (1KiB when absent), which this flag, if given, must equal.',
    default: keyBytesMaxDefault,
    min: 1,
    max: 64 * 1024,
  }),
  ...httpServerOptions,
  shutdownTimeout: option.milliseconds({
    description: 'How long SIGTERM waits for requests in flight before closing the engine.',
    default: 10_000,
    min: 0,
    max: 300_000,
  }),
  logLevel: option.enum({ description: 'Log level.', default: 'info', choices: logLevels }),
};

/**
 * A shard node's configuration: its options, and the secrets they lead to (see
 * `checkShardNodeConfig`): the cluster secret (from `--cluster-secret-file` or
 * IMPULSE_CLUSTER_SECRET) and the admin token (from `--admin-token-file` or IMPULSE_ADMIN_TOKEN).
 */
export type ShardNodeConfig = ConfigOf<typeof shardNodeOptions> & {
  readonly clusterSecret?: Uint8Array;
  readonly adminToken?: Uint8Array;
};

export function parseShardNodeConfig(input: ParseConfigInput): ShardNodeConfig {
  const config = parseConfig(shardNodeProgram, shardNodeOptions, input);
  const problems = httpServerLimitProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
