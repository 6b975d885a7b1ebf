import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '@impulse/local-cluster';
import { createHttpClient } from '../create-http-client.js';
import type { HttpClientName } from '../http-client.js';
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

/** The sum of every sample of `name` in a Prometheus text page. */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return sum;
}

/**
 * A local Impulse cluster of real processes (gateway and shard groups of `replicasPerGroup`
 * replicas, fsync on), in a fresh data directory that is removed afterwards. Requests go through the gateway.
 */
export async function startImpulse(options: StartImpulseOptions): Promise<RunningTarget> {
  const dataDirectory = await mkdtemp(join(tmpdir(), 'impulse-bench-'));
  let cluster: LocalCluster;
  try {
    cluster = await LocalCluster.start({
      groups: options.groups,
      replicasPerGroup: options.replicasPerGroup,
      dataDirectory,
      engine: options.engine,
      shardNodeArguments: [`--read-mode=${options.readMode}`],
      gatewayPort: 0,
      replicaBasePort: 0,
      // Warnings only: the processes log no line per request at info, but start-up chatter is noise.
      logLevel: 'warn',
    });
  } catch (error) {
    await rm(dataDirectory, { recursive: true, force: true });
    throw error;
  }
  const client = createHttpClient(options.client, {
    origin: cluster.gatewayUrl,
    connectionsMax: options.connectionsMax,
    requestTimeoutMs: options.requestTimeoutMs,
  });
  return {
    name: 'impulse',
    target: new ImpulseTarget('impulse', client),
    description: `Impulse: gateway + ${options.groups} shard group(s) x ${options.replicasPerGroup} replica(s), engine ${options.engine}, fsync on, ${options.readMode} reads`,
    raftCounters: async () => {
      let fsyncs = 0;
      let committedEntries = 0;
      for (const replica of cluster.replicas) {
        const text = await (await fetch(`${replica.url}/metrics`)).text();
        fsyncs += metricSum(text, 'impulse_raft_log_fsync_duration_seconds_count');
        committedEntries += metricSum(text, 'impulse_raft_proposals_committed_total');
      }
      return { fsyncs, committedEntries };
    },
    processes: () =>
      [cluster.gateway, ...cluster.replicas].flatMap((managed) =>
        managed?.child?.pid === undefined ? [] : [{ name: managed.name, pid: managed.child.pid }],
      ),
    stop: async () => {
      await client.close();
      await cluster.stop();
      await rm(dataDirectory, { recursive: true, force: true });
    },
  };
}
