import { MemoryFileSystem, createLogger, wrapHandles, type FileSystem, type Registry } from '@impulse/common';
import type { HostedReplica, NodeOptions } from '../../src/node/index.js';
import { nullTransport } from '../replica/harness.js';

/** A file system whose writes under `failingPrefix` fail with EIO once it is set: a disk going bad. */
export class FailingDisk {
  failingPrefix: string | undefined;
  readonly disk = new MemoryFileSystem();
  readonly fs: FileSystem = wrapHandles(this.disk, (path, handle) => {
    const check = (): void => {
      if (this.failingPrefix !== undefined && path.startsWith(this.failingPrefix))
        throw Object.assign(new Error(`EIO: i/o error, write '${path}'`), { code: 'EIO' });
    };
    return {
      write: (buffer, offset, length, position) => {
        check();
        return handle.write(buffer, offset, length, position);
      },
      writeNow: (buffer, offset, length, position) => {
        check();
        return handle.writeNow(buffer, offset, length, position);
      },
    };
  });
}

/** A replica of `groupId`, a group of one on node n1. */
export function hosted(groupId: string, bootstrap = true): HostedReplica {
  const self = { raftId: 1, replicaId: `${groupId}-r1`, url: 'http://n1', peerHost: 'n1', peerPort: 1 };
  return { groupId, self, initialMembers: [self], join: false, bootstrap };
}

export function nodeOptions(fs: FileSystem, registry: Registry, logs: 'node' | 'replica'): NodeOptions {
  return {
    nodeId: 'n1',
    dataDirectory: '/data/n1',
    settings: {
      clusterId: 'impulse',
      engine: 'memory',
      logSync: true,
      tickIntervalMs: 10,
      electionTimeoutTicks: 10,
      heartbeatTicks: 1,
      snapshotEntries: 20,
      snapshotCatchUpEntries: 5,
      proposalTimeoutMs: 2_000,
      proposalBatchMax: 64,
    },
    openTransport: () => () => Promise.resolve(nullTransport),
    logger: createLogger({ service: 'shard-node', level: 'silent' }),
    registry,
    fileSystem: fs,
    logs,
  };
}
