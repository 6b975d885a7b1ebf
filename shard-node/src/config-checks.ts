import { ConfigError, loadClusterConfig, withClusterLimits } from '@impulse/common';
import type { ShardNodeConfig } from './config.js';
import { membersOf } from './shard-node.js';

/**
 * The checks of a shard-node's configuration that look at more than one option, or at the cluster
 * configuration, made once at start-up before anything is opened so that a mistake is reported
 * as one (exit 2, every problem on stderr) rather than as a failed start. Answers the
 * configuration to run with: the cluster-wide key and value limits in place of the flags'.
 */
export function checkShardNodeConfig(config: ShardNodeConfig): ShardNodeConfig {
  if (config.heartbeatTicks >= config.electionTimeoutTicks) {
    throw new ConfigError([
      `--heartbeat-ticks (${config.heartbeatTicks}) must be below --election-timeout-ticks (${config.electionTimeoutTicks}): a follower that hears no heartbeat for an election timeout campaigns, so a healthy leader would be deposed between two of its heartbeats`,
    ]);
  }
  if (config.bootstrap && config.join) {
    throw new ConfigError([
      '--bootstrap and --join contradict each other: --bootstrap founds a new group (its first start), --join adds this replica to a live one',
    ]);
  }
  // Without a cluster configuration the replica is a group of one, and its flags are its limits.
  if (config.cluster === '' && config.clusterFile === '') return config;
  const cluster = loadClusterConfig({ json: config.cluster, file: config.clusterFile });
  // Throws when this replica is not in its group of the cluster configuration.
  membersOf(config);
  return withClusterLimits(config, cluster);
}
