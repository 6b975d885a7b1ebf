import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@impulse/local-cluster';
import { createHttpClient } from '../create-http-client.js';
import type { HttpClient, HttpClientName } from '../http-client.js';
import { EtcdTarget } from './etcd-target.js';
import type { RunningTarget } from './running-target.js';

export const etcdInstallHint =
  'etcd is not installed; on Debian: apt-get install -y etcd-server etcd-client (or put an etcd binary on PATH, or set ETCD_BIN)';

const host = '127.0.0.1';
const membersCount = 3;
const healthTimeoutMs = 30_000;
const stopTimeoutMs = 10_000;

/** The etcd binary, or undefined when there is none. */
export function findEtcd(): string | undefined {
  const binary = process.env['ETCD_BIN'] ?? 'etcd';
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? binary : undefined;
}

/**
 * A 3-member etcd cluster on loopback ports, with etcd's defaults (every commit fsynced), in a
 * fresh data directory that is removed afterwards. Requests go to every member's JSON gateway.
 */
export async function startEtcd(options: {
  readonly binary: string;
  readonly client: HttpClientName;
  readonly connectionsMax: number;
  readonly requestTimeoutMs: number;
}): Promise<RunningTarget> {
  const root = await mkdtemp(join(tmpdir(), 'etcd-bench-'));
  const members: Array<{ name: string; clientPort: number; peerPort: number; child?: ChildProcess }> = [];
  for (let index = 1; index <= membersCount; index++) {
    members.push({ name: `m${index}`, clientPort: await freePort(host), peerPort: await freePort(host) });
  }
  const initialCluster = members
    .map((member) => `${member.name}=http://${host}:${member.peerPort}`)
    .join(',');
  const log = createWriteStream(join(root, 'etcd.log'));
  const stop = async (): Promise<void> => {
    await Promise.all(
      members.map(async (member) => {
        const child = member.child;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
        await exited;
        clearTimeout(timer);
      }),
    );
    log.end();
    await rm(root, { recursive: true, force: true });
  };
  for (const member of members) {
    const child = spawn(
      options.binary,
      [
        `--name=${member.name}`,
        `--data-dir=${join(root, member.name)}`,
        `--listen-client-urls=http://${host}:${member.clientPort}`,
        `--advertise-client-urls=http://${host}:${member.clientPort}`,
        `--listen-peer-urls=http://${host}:${member.peerPort}`,
        `--initial-advertise-peer-urls=http://${host}:${member.peerPort}`,
        `--initial-cluster=${initialCluster}`,
        '--initial-cluster-state=new',
        '--initial-cluster-token=impulse-bench',
        '--logger=zap',
        '--log-level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    member.child = child;
  }
  const clients: HttpClient[] = members.map((member) =>
    createHttpClient(options.client, {
      origin: `http://${host}:${member.clientPort}`,
      // Spread the client's connections over the members, as etcd's client balancer would.
      connectionsMax: Math.max(1, Math.ceil(options.connectionsMax / membersCount)),
      requestTimeoutMs: options.requestTimeoutMs,
    }),
  );
  try {
    await Promise.all(members.map((member) => waitHealthy(`http://${host}:${member.clientPort}`)));
  } catch (error) {
    await Promise.all(clients.map((client) => client.close()));
    await stop();
    throw error;
  }
  return {
    name: 'etcd',
    target: new EtcdTarget(clients),
    description: `etcd ${etcdVersion(options.binary)}: ${membersCount} members on loopback, default fsync, JSON gateway`,
    processes: () =>
      members.flatMap((member) =>
        member.child?.pid === undefined ? [] : [{ name: `etcd-${member.name}`, pid: member.child.pid }],
      ),
    stop: async () => {
      await Promise.all(clients.map((client) => client.close()));
      await stop();
    },
  };
}

function etcdVersion(binary: string): string {
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  return /etcd Version: (\S+)/.exec(probe.stdout)?.[1] ?? 'unknown version';
}

async function waitHealthy(url: string): Promise<void> {
  const deadline = Date.now() + healthTimeoutMs;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await response.json()) as { health?: string };
      if (body.health === 'true') return;
      lastError = JSON.stringify(body);
    } catch (error) {
      lastError = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`etcd member ${url} was not healthy within ${healthTimeoutMs} ms (${lastError})`);
}
