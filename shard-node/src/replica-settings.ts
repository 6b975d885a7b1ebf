import type { ShardNodeConfig } from './config.js';
import type { ReplicaSettings } from './node/node.js';
import type { ReadMode } from './replica/index.js';

/** The settings a replica takes from the process's options: every hosted replica shares them. */
export function replicaSettingsOf(config: ShardNodeConfig): ReplicaSettings {
  return {
    clusterId: config.clusterId,
    clusterSecret: config.clusterSecret,
    engine: config.engine,
    logSync: config.raftLogSync,
    logSegmentBytesMax: config.raftLogSegmentBytesMax,
    tickIntervalMs: config.tickInterval,
    electionTimeoutTicks: config.electionTimeoutTicks,
    heartbeatTicks: config.heartbeatTicks,
    readMode: config.readMode as ReadMode,
    snapshotEntries: config.snapshotEntries,
    snapshotCatchUpEntries: config.snapshotCatchUpEntries,
    proposalTimeoutMs: config.proposalTimeout,
    proposalBatchMax: 1024,
  };
}
