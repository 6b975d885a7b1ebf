import type { HttpClientName } from './http-client.js';
import type { RunningTarget, TargetName } from './targets/running-target.js';
import { startEtcd } from './targets/start-etcd.js';
import { startImpulse } from './targets/start-impulse.js';
import { startMapServer } from './targets/start-map-server.js';

export interface StartTargetOptions {
  readonly groups: number;
  readonly replicasPerGroup: number;
  readonly engine: 'leveldb' | 'memory';
  readonly readMode: 'readindex' | 'lease';
  readonly client: HttpClientName;
  readonly connectionsMax: number;
  readonly requestTimeoutMs: number;
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
  switch (name) {
    case 'impulse':
      return startImpulse({
        ...client,
        groups: options.groups,
        replicasPerGroup: options.replicasPerGroup,
        engine: options.engine,
        readMode: options.readMode,
      });
    case 'map':
      return startMapServer(client);
    case 'etcd':
      if (options.etcdBinary === undefined) throw new Error('etcd: no binary');
      return startEtcd({ ...client, binary: options.etcdBinary });
  }
}
