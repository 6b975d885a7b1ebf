import type { HttpClientName } from './http-client.js';
import type { RunningTarget, TargetName } from './targets/running-target.js';
import { startEtcd } from './targets/start-etcd.js';
import { startImpulseNodes, startImpulseReplicas } from './targets/start-impulse.js';
import { startMapServer } from './targets/start-map-server.js';

export interface StartTargetOptions {
  /** Impulse's node processes (the `impulse` target; `impulse-replicas` runs a process per replica). */
  readonly nodes: number;
  readonly groups: number;
  readonly replicasPerGroup: number;
  readonly engine: 'leveldb' | 'memory';
  readonly readMode: 'readindex' | 'lease';
  readonly client: HttpClientName;
  readonly connectionsMax: number;
  readonly requestTimeoutMs: number;
  /** How long Impulse's processes may take to become ready (default: the cluster's). */
  readonly readyTimeoutMs?: number;
  /** The etcd binary (see findEtcd). */
  readonly etcdBinary?: string;
}

/** Starts a fresh store of the given kind for one run. */
export async function startTarget(name: TargetName, options: StartTargetOptions): Promise<RunningTarget> {
  const client = {
    client: options.client,
    connectionsMax: options.connectionsMax,
    requestTimeoutMs: options.requestTimeoutMs,
  };
  const impulse = {
    ...client,
    groups: options.groups,
    replicasPerGroup: options.replicasPerGroup,
    engine: options.engine,
    readMode: options.readMode,
  };
  switch (name) {
    case 'impulse':
      return startImpulseNodes({
        ...impulse,
        nodes: options.nodes,
        ...(options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs }),
      });
    case 'impulse-replicas':
      return startImpulseReplicas(impulse);
    case 'map':
      return startMapServer(client);
    case 'etcd':
      if (options.etcdBinary === undefined) throw new Error('etcd: no binary');
      return startEtcd({ ...client, binary: options.etcdBinary });
  }
}
