import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, LocalNodeCluster, type ManagedProcess } from '@impulse/local-cluster';
import { createHttpClient } from '../create-http-client.js';
import type { HttpClientName } from '../http-client.js';
import { readRaftCounters } from '../raft-counters.js';
import { ImpulseTarget } from './impulse-target.js';
import type { RunningTarget } from './running-target.js';

export interface StartImpulseOptions {
  readonly groups: number;
  readonly replicasPerGroup: number;
  readonly engine: 'leveldb' | 'memory';
  /** How the replicas confirm linearizable reads (the shard-node's `--read-mode`). */
  readonly readMode: 'readindex' | 'lease';
  readonly client: HttpClientName;
  readonly connectionsMax: number;
  readonly requestTimeoutMs: number;
}

export interface StartImpulseNodesOptions extends StartImpulseOptions {
  /** Node processes; each hosts one replica of many groups (at least `replicasPerGroup`). */
  readonly nodes: number;
  /** How long the cluster may take to start (many groups take a while). Default 20 s per node start. */
  readonly readyTimeoutMs?: number;
}

// Warnings only: the processes log no line per request at info, but start-up chatter is noise.
const logLevel = 'warn';

/**
 * The node shape, as `npm start` runs it: `nodes` node processes, each hosting a replica of many
 * of the `groups` groups (`LocalNodeCluster`), and a gateway; fsync on; in a fresh data directory
 * that is removed afterwards. Requests go through the gateway.
 */
export async function startImpulseNodes(options: StartImpulseNodesOptions): Promise<RunningTarget> {
  const { cluster, dataDirectory } = await inFreshDirectory((directory) =>
    LocalNodeCluster.start({
      nodes: options.nodes,
      groups: options.groups,
      replicasPerGroup: options.replicasPerGroup,
      dataDirectory: directory,
      engine: options.engine,
      shardNodeArguments: [`--read-mode=${options.readMode}`],
      gatewayPort: 0,
      nodeBasePort: 0,
      logLevel,
      ...(options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs }),
    }),
  );
  return runningImpulse(options, cluster, dataDirectory, cluster.nodes, {
    name: 'impulse',
    description: `Impulse: gateway + ${options.nodes} nodes hosting ${options.groups} shard group(s) x ${options.replicasPerGroup} replica(s), engine ${options.engine}, fsync on, ${options.readMode} reads`,
    shape: {
      kind: 'nodes',
      nodes: options.nodes,
      groups: options.groups,
      replicasPerGroup: options.replicasPerGroup,
    },
  });
}

/**
 * The shape before nodes: a process per replica (gateway and shard groups of `replicasPerGroup`
 * replicas, `LocalCluster`), fsync on, in a fresh data directory that is removed afterwards.
 * Requests go through the gateway.
 */
export async function startImpulseReplicas(options: StartImpulseOptions): Promise<RunningTarget> {
  const { cluster, dataDirectory } = await inFreshDirectory((directory) =>
    LocalCluster.start({
      groups: options.groups,
      replicasPerGroup: options.replicasPerGroup,
      dataDirectory: directory,
      engine: options.engine,
      shardNodeArguments: [`--read-mode=${options.readMode}`],
      gatewayPort: 0,
      replicaBasePort: 0,
      logLevel,
    }),
  );
  return runningImpulse(options, cluster, dataDirectory, cluster.replicas, {
    name: 'impulse-replicas',
    description: `Impulse, a process per replica: gateway + ${options.groups} shard group(s) x ${options.replicasPerGroup} replica(s), engine ${options.engine}, fsync on, ${options.readMode} reads`,
    shape: {
      kind: 'replicas',
      nodes: options.replicasPerGroup,
      groups: options.groups,
      replicasPerGroup: options.replicasPerGroup,
    },
  });
}

/** A cluster started in a fresh temporary data directory, which is removed if the start fails. */
async function inFreshDirectory<Cluster>(
  start: (dataDirectory: string) => Promise<Cluster>,
): Promise<{ cluster: Cluster; dataDirectory: string }> {
  const dataDirectory = await mkdtemp(join(tmpdir(), 'impulse-bench-'));
  try {
    return { cluster: await start(dataDirectory), dataDirectory };
  } catch (error) {
    await rm(dataDirectory, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Either shape as a running target: a client of its gateway, the Raft counters and the processes
 * of `members` (the nodes, or the replica processes), and a stop that removes the data directory.
 */
function runningImpulse(
  options: StartImpulseOptions,
  cluster: {
    readonly gatewayUrl: string;
    readonly gateway: ManagedProcess | undefined;
    stop(): Promise<void>;
  },
  dataDirectory: string,
  members: readonly ManagedProcess[],
  identity: Pick<RunningTarget, 'name' | 'description' | 'shape'>,
): RunningTarget {
  const client = createHttpClient(options.client, {
    origin: cluster.gatewayUrl,
    connectionsMax: options.connectionsMax,
    requestTimeoutMs: options.requestTimeoutMs,
  });
  return {
    ...identity,
    target: new ImpulseTarget(identity.name, client),
    raftCounters: () => readRaftCounters(members.map((member) => member.url)),
    processes: () =>
      [cluster.gateway, ...members].flatMap((managed) =>
        managed?.child?.pid === undefined ? [] : [{ name: managed.name, pid: managed.child.pid }],
      ),
    stop: async () => {
      await client.close();
      await cluster.stop();
      await rm(dataDirectory, { recursive: true, force: true });
    },
  };
}
