import { createServer } from 'node:net';
import { createLogger, createMetricsRegistry } from '@impulse/common';
import { Replica, type MemberSpec, type ReplicaOptions } from '../../src/replica/index.js';

export const silentLogger = createLogger({ service: 'shard-node', level: 'silent' });

/** A member of a test group on loopback; `peerPort` must be known before its peers start. */
export function memberSpec(raftId: number, peerPort = 0): MemberSpec {
  return {
    raftId,
    replicaId: `g1-r${raftId}`,
    url: `http://127.0.0.1:${7000 + raftId}`,
    peerHost: '127.0.0.1',
    peerPort,
  };
}

/** Ports free at the time of asking, for peer transports that must know each other's in advance. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Starts a replica in this process with fast ticks and small snapshots; `overrides` win. */
export function startReplica(
  self: MemberSpec,
  members: readonly MemberSpec[],
  dataDirectory: string,
  overrides: Partial<ReplicaOptions> = {},
): Promise<Replica> {
  return Replica.start({
    clusterId: 'impulse',
    groupId: 'g1',
    self,
    peerListenHost: '127.0.0.1',
    initialMembers: members,
    join: false,
    bootstrap: true,
    dataDirectory,
    engine: 'leveldb',
    logSync: true,
    tickIntervalMs: 10,
    // 300 to 600 ms: the machine running the tests may be loaded, and a missed election costs little.
    electionTimeoutTicks: 30,
    heartbeatTicks: 1,
    snapshotEntries: 20,
    snapshotCatchUpEntries: 5,
    proposalTimeoutMs: 5_000,
    proposalBatchMax: 1024,
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'shard-node', replica: self.replicaId }),
    // A replica that fails in a test fails the test: vitest reports the uncaught error.
    onFailure: (error) => {
      setImmediate(() => {
        throw error;
      });
    },
    ...overrides,
  });
}

/** Polls `probe` until it answers something other than `undefined`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Resolves once `replica` leads and takes writes: the core elects it before its host has handled
 * the Ready that says so.
 */
export async function untilLeading(replica: Replica): Promise<void> {
  await waitFor('a leader that takes writes', async () => {
    if (replica.status().role !== 'leader') return undefined;
    try {
      await replica.readBarrier();
      return true;
    } catch {
      return undefined;
    }
  });
}

/** The replica of `running` that leads and is healthy, once there is one. */
export function servingLeader(running: ReadonlyMap<number, Replica>): Promise<Replica> {
  return waitFor('a serving leader', () =>
    [...running.values()].find(
      (replica) => replica.status().role === 'leader' && replica.fault === undefined,
    ),
  );
}

/**
 * Writes `value` under `key` through whichever replica of `running` leads, again after a change of
 * leader (a loaded machine can delay heartbeats past an election timeout), under one request id.
 */
export async function writeToGroup(
  running: ReadonlyMap<number, Replica>,
  key: string,
  value: Buffer,
): Promise<void> {
  const requestId = Buffer.from(`request-${key}`.slice(0, 64));
  await waitFor(
    `a write of ${key.slice(0, 40)}`,
    async () => {
      try {
        await (await servingLeader(running)).write({ operation: 'put', requestId, key, value });
        return true;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === 'NOT_LEADER' || code === 'STORAGE_FAULT' || code === 'COMMIT_TIMEOUT') return undefined;
        throw error;
      }
    },
    30_000,
  );
}

export { nullTransport } from '../../src/replica/index.js';
