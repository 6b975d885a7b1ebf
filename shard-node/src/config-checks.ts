import {
  ConfigError,
  loadClusterConfig,
  optionsGiven,
  readAdminToken,
  readSecret,
  withClusterLimits,
} from '@impulse/common';
import { clusterSecretBytesMin, type ShardNodeConfig } from './config.js';
import { nodeHostingOf } from './node/node-process.js';
import { membersOf } from './shard-node.js';
import { keyBytesMaxProblem, valueBytesMaxProblem } from './value-limit.js';

/**
 * The checks of a shard-node's configuration that look at more than one option, or at the cluster
 * configuration, made once at start-up before anything is opened so that a mistake is reported
 * as one (exit 2, every problem on stderr) rather than as a failed start. Answers the
 * configuration to run with: the cluster-wide key and value limits in place of the flags', and
 * the cluster secret and admin token read from where the options say.
 *
 * A cluster secret without an admin token is refused: a cluster that authenticates its peers
 * would otherwise answer its admin reads to anyone (docs/decisions/0017-admin-authentication.md).
 */
export function checkShardNodeConfig(
  parsed: ShardNodeConfig,
  env: Readonly<Record<string, string | undefined>> = {},
): ShardNodeConfig {
  const clusterSecret = readSecret({
    name: 'the cluster secret',
    fileFlag: '--cluster-secret-file',
    file: parsed.clusterSecretFile,
    environmentVariable: 'IMPULSE_CLUSTER_SECRET',
    fromEnvironment: env['IMPULSE_CLUSTER_SECRET'],
    bytesMin: clusterSecretBytesMin,
  });
  const adminToken = readAdminToken(parsed.adminTokenFile, env);
  if (clusterSecret !== undefined && adminToken === undefined)
    throw new ConfigError([
      'a cluster secret is given but no admin token (--admin-token-file or IMPULSE_ADMIN_TOKEN): a process whose peers must prove who they are must ask the same of its admins. Give every node and gateway of the cluster the same admin token (docs/decisions/0017-admin-authentication.md)',
    ]);
  if (parsed.heartbeatTicks >= parsed.electionTimeoutTicks) {
    throw new ConfigError([
      `--heartbeat-ticks (${parsed.heartbeatTicks}) must be below --election-timeout-ticks (${parsed.electionTimeoutTicks}): a follower that hears no heartbeat for an election timeout campaigns, so a healthy leader would be deposed between two of its heartbeats`,
    ]);
  }
  if (parsed.bootstrap && parsed.join) {
    throw new ConfigError([
      '--bootstrap and --join contradict each other: --bootstrap founds a new group (its first start), --join adds this replica to a live one',
    ]);
  }
  if (parsed.nodeId === '' && parsed.bootstrapGroups !== '')
    throw new ConfigError([
      '--bootstrap-groups is for a node (--node-id); a one-replica process takes --bootstrap',
    ]);
  if (parsed.nodeId !== '') {
    const given = optionsGiven(parsed);
    const replicaOnly = (['groupId', 'replicaId', 'join'] as const).filter((name) => given.has(name));
    if (replicaOnly.length > 0) {
      throw new ConfigError([
        `--node-id runs a node, which hosts the replicas the cluster configuration places on it: ${replicaOnly.map((name) => `--${name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`).join(', ')} belong${replicaOnly.length === 1 ? 's' : ''} to a one-replica process`,
      ]);
    }
  }
  // Without a cluster configuration the replica is a group of one, and its flags are its limits.
  // The limits are checked on the parsed configuration itself, which knows which options were given.
  const limited = parsed.cluster === '' && parsed.clusterFile === '' ? parsed : withLimitsOfCluster(parsed);
  const keyProblem = keyBytesMaxProblem(limited.keyBytesMax);
  if (keyProblem !== undefined) throw new ConfigError([keyProblem]);
  const valueProblem = valueBytesMaxProblem(limited.valueBytesMax, limited.keyBytesMax);
  if (valueProblem !== undefined) throw new ConfigError([valueProblem]);
  return Object.freeze({
    ...limited,
    ...(clusterSecret === undefined ? {} : { clusterSecret }),
    ...(adminToken === undefined ? {} : { adminToken }),
  });
}

function withLimitsOfCluster(config: ShardNodeConfig): ShardNodeConfig {
  const cluster = loadClusterConfig({ json: config.cluster, file: config.clusterFile });
  // Throws when this replica (or node) is not in the cluster configuration.
  if (config.nodeId !== '') nodeHostingOf(config);
  else membersOf(config);
  return withClusterLimits(config, cluster);
}
