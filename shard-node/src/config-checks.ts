import { readFileSync } from 'node:fs';
import { ConfigError, loadClusterConfig, optionsGiven, withClusterLimits } from '@impulse/common';
import { clusterSecretBytesMin, type ShardNodeConfig } from './config.js';
import { nodeHostingOf } from './node/node-process.js';
import { membersOf } from './shard-node.js';
import { keyBytesMaxProblem, valueBytesMaxProblem } from './value-limit.js';

/**
 * The checks of a shard-node's configuration that look at more than one option, or at the cluster
 * configuration, made once at start-up before anything is opened so that a mistake is reported
 * as one (exit 2, every problem on stderr) rather than as a failed start. Answers the
 * configuration to run with: the cluster-wide key and value limits in place of the flags'.
 */
export function checkShardNodeConfig(
  parsed: ShardNodeConfig,
  env: Readonly<Record<string, string | undefined>> = {},
): ShardNodeConfig {
  const clusterSecret = clusterSecretOf(parsed.clusterSecretFile, env['IMPULSE_CLUSTER_SECRET']);
  const config = clusterSecret === undefined ? parsed : { ...parsed, clusterSecret };
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
  if (config.nodeId === '' && config.bootstrapGroups !== '')
    throw new ConfigError([
      '--bootstrap-groups is for a node (--node-id); a one-replica process takes --bootstrap',
    ]);
  if (config.nodeId !== '') {
    const given = optionsGiven(parsed);
    const replicaOnly = (['groupId', 'replicaId', 'join'] as const).filter((name) => given.has(name));
    if (replicaOnly.length > 0) {
      throw new ConfigError([
        `--node-id runs a node, which hosts the replicas the cluster configuration places on it: ${replicaOnly.map((name) => `--${name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`).join(', ')} belong${replicaOnly.length === 1 ? 's' : ''} to a one-replica process`,
      ]);
    }
  }
  // Without a cluster configuration the replica is a group of one, and its flags are its limits.
  const limited = config.cluster === '' && config.clusterFile === '' ? config : withLimitsOfCluster(config);
  const keyProblem = keyBytesMaxProblem(limited.keyBytesMax);
  if (keyProblem !== undefined) throw new ConfigError([keyProblem]);
  const valueProblem = valueBytesMaxProblem(limited.valueBytesMax, limited.keyBytesMax);
  if (valueProblem !== undefined) throw new ConfigError([valueProblem]);
  return limited;
}

function withLimitsOfCluster(config: ShardNodeConfig): ShardNodeConfig {
  const cluster = loadClusterConfig({ json: config.cluster, file: config.clusterFile });
  // Throws when this replica (or node) is not in the cluster configuration.
  if (config.nodeId !== '') nodeHostingOf(config);
  else membersOf(config);
  return withClusterLimits(config, cluster);
}

/**
 * The cluster secret, from the file `--cluster-secret-file` names or from IMPULSE_CLUSTER_SECRET
 * (never both), without a trailing newline; undefined when neither is given. A secret shorter than
 * `clusterSecretBytesMin` bytes, or a file that cannot be read, is a configuration error. The
 * secret itself is never part of a message.
 */
function clusterSecretOf(file: string, fromEnvironment: string | undefined): Buffer | undefined {
  if (file !== '' && fromEnvironment !== undefined)
    throw new ConfigError([
      '--cluster-secret-file and IMPULSE_CLUSTER_SECRET are both set: give the cluster secret one way',
    ]);
  let secret: Buffer;
  if (file !== '') {
    try {
      secret = readFileSync(file);
    } catch (error) {
      throw new ConfigError([
        `--cluster-secret-file ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      ]);
    }
  } else if (fromEnvironment !== undefined) {
    secret = Buffer.from(fromEnvironment, 'utf8');
  } else {
    return undefined;
  }
  let end = secret.length;
  while (end > 0 && (secret[end - 1] === 0x0a || secret[end - 1] === 0x0d)) end--;
  secret = secret.subarray(0, end);
  if (secret.length < clusterSecretBytesMin)
    throw new ConfigError([
      `the cluster secret (${file !== '' ? `--cluster-secret-file ${file}` : 'IMPULSE_CLUSTER_SECRET'}) is ${secret.length} bytes; at least ${clusterSecretBytesMin} are needed`,
    ]);
  return secret;
}
