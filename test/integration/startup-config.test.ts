import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster, freePort, repositoryRoot, type ReplicaProcess } from '@impulse/local-cluster';
import { rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';

/**
 * Issue 19: configurations that were accepted and then misbehaved. Every case runs a real entry
 * point (the built shard-node, gateway and `npm start` launcher) as an operator would, with a bound
 * on its time, and checks its exit status and the first line it prints on stderr; the cases about
 * data check that nothing in the data directory was written. The cases that must work (a restart
 * after kill -9, a memory-engine cluster restarted, a cluster-wide value limit) follow the table.
 *
 * `IMPULSE_STARTUP_TEST_ROOT` points the test at another checkout's build, to watch it fail there.
 */
const root = process.env['IMPULSE_STARTUP_TEST_ROOT'] ?? repositoryRoot;
const entryPoints = {
  shardNode: join(root, 'shard-node/dist/main.js'),
  gateway: join(root, 'gateway/dist/main.js'),
  launcher: join(root, 'deploy/local/dist/start.js'),
} as const;
type EntryPoint = keyof typeof entryPoints;

/** How long one run may take before it counts as hanging (a failed start must end, and soon). */
const runTimeoutMs = 20_000;
/** How long a process that must start may take to say it listens. */
const listenTimeoutMs = 20_000;

interface Run {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/**
 * A user that file modes apply to: root ignores them, so a test run as root runs a process that
 * must be refused a folder as nobody (65534) instead.
 */
const unprivilegedUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

/** Runs an entry point to its exit, killing it (and saying so) past `runTimeoutMs`. */
async function run(
  entry: EntryPoint,
  argumentsList: readonly string[],
  env: Record<string, string> = {},
  user: { uid?: number; gid?: number } = {},
): Promise<Run> {
  const child = spawn(process.execPath, [entryPoints[entry], ...argumentsList], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
    ...user,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, runTimeoutMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr, timedOut };
}

/** A process that must start: resolves once its log says it listens. */
async function startListening(
  entry: EntryPoint,
  argumentsList: readonly string[],
): Promise<{ child: ChildProcess; stdout: () => string }> {
  const child = spawn(process.execPath, [entryPoints[entry], ...argumentsList], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${entry} did not listen in time: ${stderr}`)),
      listenTimeoutMs,
    );
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (/"msg":"(server|gateway): listening"/.test(stdout)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited (code ${String(code)}) before listening: ${stderr}`));
    });
  });
  return { child, stdout: () => stdout };
}

/** SIGTERM, and the exit status once it is gone. */
async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  return code;
}

/** Every file and folder under `path` with a hash of its bytes: equal listings, nothing written. */
function treeOf(path: string): string[] {
  if (!existsSync(path)) return [`${path}: absent`];
  const status = lstatSync(path);
  if (!status.isDirectory()) {
    return [`${path}: ${createHash('sha256').update(readFileSync(path)).digest('hex')}`];
  }
  return [
    `${path}/`,
    ...readdirSync(path)
      .sort()
      .flatMap((name) => treeOf(join(path, name))),
  ];
}

function firstLineOf(text: string): string {
  return text.split('\n')[0] ?? '';
}

/** What a case may set up: a folder of its own, cluster files, processes and ports to release. */
class CaseContext {
  readonly cleanups: (() => Promise<void>)[] = [];
  private files = 0;
  constructor(readonly directory: string) {}

  path(name: string): string {
    return join(this.directory, name);
  }

  /** Writes a cluster configuration (an object, or text as given) and answers its path. */
  clusterFile(cluster: unknown): string {
    const path = this.path(`cluster-${++this.files}.json`);
    writeFileSync(path, typeof cluster === 'string' ? cluster : JSON.stringify(cluster));
    return path;
  }

  /** A data directory created by a replica that started and stopped cleanly. */
  async replicaDataDirectory(name: string, argumentsList: readonly string[]): Promise<string> {
    const dataDirectory = this.path(name);
    const replica = await startListening('shardNode', [
      '--port=0',
      `--data-dir=${dataDirectory}`,
      '--log-level=info',
      '--bootstrap',
      ...argumentsList,
    ]);
    expect(await stop(replica.child)).toBe(0);
    return dataDirectory;
  }

  /** A replica that keeps running (and holding its data directory) until the case ends. */
  async liveReplica(argumentsList: readonly string[]): Promise<ChildProcess> {
    const replica = await startListening('shardNode', [
      '--port=0',
      '--log-level=info',
      '--bootstrap',
      ...argumentsList,
    ]);
    this.cleanups.push(async () => void (await stop(replica.child)));
    return replica.child;
  }

  /** Takes a port on 127.0.0.1 for the rest of the case. */
  async occupiedPort(): Promise<number> {
    // Every connection is closed at once, so that closing the server never waits for one.
    const server: Server = createServer((socket) => socket.destroy());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    this.cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
    return (server.address() as { port: number }).port;
  }
}

interface FailureCase {
  /** The finding of issue 19 it guards (or `extra` for one of ours), then what the operator did. */
  readonly name: string;
  readonly entry: EntryPoint;
  /** Prepares what the run needs and answers its arguments (and environment). */
  readonly setup: (context: CaseContext) => Promise<{
    readonly argumentsList: readonly string[];
    readonly env?: Record<string, string>;
    /** Paths in which nothing may be written (absent ones must stay absent). */
    readonly untouched?: readonly string[];
    /** The first stderr line may name values known only once set up (a port, a path). */
    readonly stderrFirstLine?: RegExp;
    /** Runs the process as a user that file modes apply to (see `unprivilegedUser`). */
    readonly unprivileged?: boolean;
  }>;
  readonly exitCode: 1 | 2;
  /** The first line on stderr, unless setup gives one. */
  readonly stderrFirstLine?: RegExp;
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A valid one-replica cluster, to which a case adds its mistake. */
const oneReplica = (url = 'http://127.0.0.1:7001'): { groups: unknown[] } => ({
  groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url }] }],
});

const cases: readonly FailureCase[] = [
  // 1. A data directory has an identity.
  {
    name: "1. a replica started on another replica's data directory",
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = await context.replicaDataDirectory('g2-r1', [
        '--group-id=g2',
        '--replica-id=g2-r1',
      ]);
      return {
        argumentsList: ['--port=0', '--group-id=g1', '--replica-id=g1-r1', `--data-dir=${dataDirectory}`],
        untouched: [dataDirectory],
        stderrFirstLine: new RegExp(
          `^impulse-shard-node: data directory ${escapeRegExp(dataDirectory)} belongs to replica g2-r1 \\(raft id 1\\) of group g2 in cluster impulse, engine leveldb, not to replica g1-r1 \\(raft id 1\\) of group g1 in cluster impulse, engine leveldb: give this replica its own data directory \\[DATA_DIRECTORY_IDENTITY_MISMATCH\\]$`,
        ),
      };
    },
    exitCode: 2,
  },
  {
    name: "1. a replica started on another cluster's data directory",
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = await context.replicaDataDirectory('other-cluster', ['--cluster-id=blue']);
      return {
        argumentsList: ['--port=0', '--cluster-id=green', `--data-dir=${dataDirectory}`],
        untouched: [dataDirectory],
      };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: data directory .* belongs to replica g1-r1 \(raft id 1\) of group g1 in cluster blue, engine leveldb, not to replica g1-r1 \(raft id 1\) of group g1 in cluster green, engine leveldb: .*\[DATA_DIRECTORY_IDENTITY_MISMATCH\]$/,
  },
  {
    name: 'extra. a leveldb data directory started with --engine memory',
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = await context.replicaDataDirectory('leveldb', []);
      return {
        argumentsList: ['--port=0', '--engine=memory', `--data-dir=${dataDirectory}`],
        untouched: [dataDirectory],
      };
    },
    exitCode: 2,
    stderrFirstLine:
      /engine leveldb, not to replica g1-r1 \(raft id 1\) of group g1 in cluster impulse, engine memory: .*\[DATA_DIRECTORY_IDENTITY_MISMATCH\]$/,
  },
  {
    name: 'extra. a replica whose Raft id changed in the cluster file',
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = await context.replicaDataDirectory('raft-id', []);
      const cluster = {
        groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url: 'http://127.0.0.1:7001', raftId: 2 }] }],
      };
      return {
        argumentsList: [
          '--port=0',
          `--data-dir=${dataDirectory}`,
          `--cluster-file=${context.clusterFile(cluster)}`,
        ],
        untouched: [dataDirectory],
      };
    },
    exitCode: 2,
    stderrFirstLine:
      /belongs to replica g1-r1 \(raft id 1\).*not to replica g1-r1 \(raft id 2\).*\[DATA_DIRECTORY_IDENTITY_MISMATCH\]$/,
  },
  {
    name: 'extra. a data directory whose identity file is not one',
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = await context.replicaDataDirectory('damaged', []);
      writeFileSync(join(dataDirectory, 'IDENTITY'), 'not json');
      return { argumentsList: ['--port=0', `--data-dir=${dataDirectory}`], untouched: [dataDirectory] };
    },
    exitCode: 1,
    stderrFirstLine: /^impulse-shard-node: .*IDENTITY is not an identity file: .*\[DATA_DIRECTORY_DAMAGED\]$/,
  },
  // 2. The data directory is locked, on every engine.
  {
    name: "2. a second process on a live replica's data directory (memory engine)",
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = context.path('live-memory');
      const holder = await context.liveReplica(['--engine=memory', `--data-dir=${dataDirectory}`]);
      // Let the holder's election settle, so that only the second process could write.
      await new Promise((resolve) => setTimeout(resolve, 500));
      return {
        argumentsList: ['--port=0', '--engine=memory', `--data-dir=${dataDirectory}`],
        untouched: [dataDirectory],
        stderrFirstLine: new RegExp(
          `^impulse-shard-node: data directory ${escapeRegExp(dataDirectory)} is in use by another process \\(pid ${String(holder.pid)}\\): one data directory serves one replica or node at a time \\[DATA_DIRECTORY_LOCKED\\]$`,
        ),
      };
    },
    exitCode: 1,
  },
  {
    name: "2. a second process on a live replica's data directory (leveldb engine)",
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = context.path('live-leveldb');
      await context.liveReplica([`--data-dir=${dataDirectory}`]);
      await new Promise((resolve) => setTimeout(resolve, 500));
      return { argumentsList: ['--port=0', `--data-dir=${dataDirectory}`], untouched: [dataDirectory] };
    },
    exitCode: 1,
    stderrFirstLine: /is in use by another process \(pid \d+\).*\[DATA_DIRECTORY_LOCKED\]$/,
  },
  {
    name: "2. a second process with another identity on a live replica's data directory",
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = context.path('live-other');
      await context.liveReplica(['--engine=memory', `--data-dir=${dataDirectory}`]);
      await new Promise((resolve) => setTimeout(resolve, 500));
      return {
        argumentsList: ['--port=0', '--group-id=g2', '--replica-id=g2-r1', `--data-dir=${dataDirectory}`],
        untouched: [dataDirectory],
      };
    },
    exitCode: 1,
    // The lock comes first: the identity of a directory in use is not even read.
    stderrFirstLine: /is in use by another process \(pid \d+\).*\[DATA_DIRECTORY_LOCKED\]$/,
  },
  // 3. A state machine behind its own log is no longer refused at start: it is a storage fault of
  // kind `lost`, and the replica rebuilds itself from its leader (issue 20; storage-faults.test.ts,
  // "a deleted engine directory over a compacted log").
  // Issue 20, finding 3: a group is founded once, and only when told so.
  {
    name: 'issue 20. a replica on an empty data directory with neither --bootstrap nor --join',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: ['--port=0', '--replica-id=g1-r2', `--data-dir=${context.path('empty')}`],
      stderrFirstLine: new RegExp(
        `^impulse-shard-node: data directory ${escapeRegExp(context.path('empty'))} holds no Raft state: starting would found group g1 again, with no data\\. On the group's first start, pass --bootstrap; a replica that lost its data must be removed from its group \\(DELETE /admin/members/g1-r2 on the leader\\) and added back under a new replica id with --join \\[DATA_DIRECTORY_EMPTY\\]$`,
      ),
    }),
    exitCode: 2,
  },
  {
    name: 'issue 20. a replica whose whole data directory was deleted, started again as before',
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = await context.replicaDataDirectory('wiped', []);
      rmSync(dataDirectory, { recursive: true });
      return { argumentsList: ['--port=0', `--data-dir=${dataDirectory}`] };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: data directory .* holds no Raft state: .*\[DATA_DIRECTORY_EMPTY\]$/,
  },
  {
    name: 'issue 20. --bootstrap with --join',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: ['--port=0', '--bootstrap', '--join', `--data-dir=${context.path('d')}`],
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: --bootstrap and --join contradict each other: .*\[CONFIG_INVALID\]$/,
  },
  {
    name: 'issue 20. a replica whose Raft log was deleted while its state machine was kept',
    entry: 'shardNode',
    setup: async (context) => {
      const dataDirectory = await context.replicaDataDirectory('no-log', []);
      rmSync(join(dataDirectory, 'raft'), { recursive: true });
      return { argumentsList: ['--port=0', '--bootstrap', `--data-dir=${dataDirectory}`] };
    },
    exitCode: 1,
    stderrFirstLine:
      /^impulse-shard-node: the Raft log in .*\/raft is missing while the state machine has applied up to index \d+: the votes and the entries this replica acknowledged are lost, so it must not vote again under its id\. Remove it from its group .* and add it back under a new replica id with --join \[DATA_DIRECTORY_DAMAGED\]$/,
  },
  {
    name: 'issue 20. npm start on a data root whose replica started before and lost its data directory',
    entry: 'launcher',
    setup: async (context) => {
      const root = context.path('founded-root');
      mkdirSync(root, { recursive: true });
      // The launcher's record that g1-r1 started here before; its data directory is gone.
      writeFileSync(join(root, 'FOUNDED'), JSON.stringify({ format: 1, replicas: ['g1-r1'] }));
      return {
        argumentsList: [
          '--nodes=1',
          '--groups=1',
          '--replicas-per-group=1',
          '--node-base-port=0',
          '--gateway-port=0',
          `--data-dir=${root}`,
        ],
      };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse: node n1's replica of g1 did not start: data directory .*n1\/groups\/g1 holds no Raft state: starting would found group g1 again, with no data\. .*\[DATA_DIRECTORY_EMPTY\]$/,
  },
  // 4. Every duration option has a maximum.
  {
    name: '4. gateway --upstream-timeout 600h',
    entry: 'gateway',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        '--upstream-timeout=600h',
        `--cluster-file=${context.clusterFile(oneReplica())}`,
      ],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: --upstream-timeout: must be at most 60000 ms \(got "600h"\) \[CONFIG_INVALID\]$/,
  },
  {
    name: '4. gateway --request-deadline 600h',
    entry: 'gateway',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        '--request-deadline',
        '600h',
        `--cluster-file=${context.clusterFile(oneReplica())}`,
      ],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: --request-deadline: must be at most 300000 ms \(got "600h"\) \[CONFIG_INVALID\]$/,
  },
  {
    name: '4. shard-node --proposal-timeout 600h',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: ['--port=0', '--proposal-timeout=600h', `--data-dir=${context.path('d')}`],
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: --proposal-timeout: must be at most 60000 ms \(got "600h"\) \[CONFIG_INVALID\]$/,
  },
  // Issue 11, item 6: the cluster secret is read once, and refused when it cannot serve.
  {
    name: 'extra. a cluster secret file that cannot be read',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        `--data-dir=${context.path('d')}`,
        `--cluster-secret-file=${context.path('none')}`,
      ],
      untouched: [context.path('d')],
      stderrFirstLine:
        /^impulse-shard-node: invalid configuration: --cluster-secret-file .*none cannot be read: ENOENT \[CONFIG_INVALID\]$/,
    }),
    exitCode: 2,
  },
  {
    name: 'extra. a cluster secret of 5 bytes (environment)',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: ['--port=0', `--data-dir=${context.path('d')}`],
      env: { IMPULSE_CLUSTER_SECRET: 'short\n' },
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: the cluster secret \(IMPULSE_CLUSTER_SECRET\) is 5 bytes; at least 16 are needed \[CONFIG_INVALID\]$/,
  },
  {
    name: 'extra. a cluster secret given both as a file and in the environment',
    entry: 'shardNode',
    setup: async (context) => {
      const file = context.path('secret');
      writeFileSync(file, '0123456789abcdef0123456789abcdef\n');
      return {
        argumentsList: ['--port=0', `--data-dir=${context.path('d')}`, `--cluster-secret-file=${file}`],
        env: { IMPULSE_CLUSTER_SECRET: '0123456789abcdef0123456789abcdef' },
        untouched: [context.path('d')],
      };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: --cluster-secret-file and IMPULSE_CLUSTER_SECRET are both set: give the cluster secret one way \[CONFIG_INVALID\]$/,
  },
  // Decision 0017: a process that authenticates its peers authenticates its admins too.
  {
    name: 'extra. a cluster secret without an admin token',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: ['--port=0', `--data-dir=${context.path('d')}`],
      env: { IMPULSE_CLUSTER_SECRET: '0123456789abcdef0123456789abcdef' },
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: a cluster secret is given but no admin token \(--admin-token-file or IMPULSE_ADMIN_TOKEN\): .* \[CONFIG_INVALID\]$/,
  },
  {
    name: 'extra. an admin token a bearer token cannot carry',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: ['--port=0', `--data-dir=${context.path('d')}`],
      env: { IMPULSE_ADMIN_TOKEN: 'an admin token with spaces' },
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: the admin token \(IMPULSE_ADMIN_TOKEN\) holds characters a bearer token cannot carry: .* \[CONFIG_INVALID\]$/,
  },
  {
    name: 'extra. a gateway admin token file that cannot be read',
    entry: 'gateway',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        `--cluster-file=${context.clusterFile(oneReplica())}`,
        `--admin-token-file=${context.path('none')}`,
      ],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: --admin-token-file .*none cannot be read: ENOENT \[CONFIG_INVALID\]$/,
  },
  {
    name: '4. shard-node IMPULSE_SHUTDOWN_TIMEOUT=600h (environment)',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: ['--port=0', `--data-dir=${context.path('d')}`],
      env: { IMPULSE_SHUTDOWN_TIMEOUT: '600h' },
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: IMPULSE_SHUTDOWN_TIMEOUT: must be at most 300000 ms \(got "600h"\) \[CONFIG_INVALID\]$/,
  },
  {
    name: '4. gateway --shutdown-timeout past the timer limit (25 days)',
    entry: 'gateway',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        '--shutdown-timeout=600h',
        `--cluster-file=${context.clusterFile(oneReplica())}`,
      ],
    }),
    exitCode: 2,
    stderrFirstLine: /^impulse-gateway: invalid configuration: --shutdown-timeout: must be at most 300000 ms/,
  },
  // 5. Limits that must agree across processes are one cluster-wide setting.
  {
    name: '5. shard-node --value-bytes-max 4MiB against a cluster at the default 1 MiB',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        '--value-bytes-max=4MiB',
        `--data-dir=${context.path('d')}`,
        `--cluster-file=${context.clusterFile(oneReplica())}`,
      ],
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: --value-bytes-max \(IMPULSE_VALUE_BYTES_MAX\) is 4194304 bytes but the cluster configuration's valueBytesMax is 1048576: the limit is cluster-wide, .*\[CONFIG_INVALID\]$/,
  },
  {
    name: '5. gateway --value-bytes-max 1MiB against a cluster at 3MiB',
    entry: 'gateway',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        '--value-bytes-max=1MiB',
        `--cluster-file=${context.clusterFile({ ...oneReplica(), valueBytesMax: '3MiB' })}`,
      ],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: --value-bytes-max \(IMPULSE_VALUE_BYTES_MAX\) is 1048576 bytes but the cluster configuration's valueBytesMax is 3145728: /,
  },
  {
    name: '5. gateway IMPULSE_KEY_BYTES_MAX=2KiB against a cluster at 1 KiB',
    entry: 'gateway',
    setup: async (context) => ({
      argumentsList: ['--port=0', `--cluster-file=${context.clusterFile(oneReplica())}`],
      env: { IMPULSE_KEY_BYTES_MAX: '2KiB' },
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: --key-bytes-max \(IMPULSE_KEY_BYTES_MAX\) is 2048 bytes but the cluster configuration's keyBytesMax is 1024: /,
  },
  {
    name: '5. a cluster file with a valueBytesMax that is no size',
    entry: 'gateway',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        `--cluster-file=${context.clusterFile({ ...oneReplica(), valueBytesMax: 'lots' })}`,
      ],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: cluster.valueBytesMax: must be a size from 0 to 4127744 bytes/,
  },
  // Issue 11, item 2: a value must fit whole in one frame between replicas, with its key.
  {
    name: '5. a cluster file with a valueBytesMax of 4MiB, over what one frame between replicas carries',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        `--data-dir=${context.path('d')}`,
        `--cluster-file=${context.clusterFile({ ...oneReplica(), valueBytesMax: '4MiB' })}`,
      ],
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: cluster.valueBytesMax: must be a size from 0 to 4127744 bytes .*: a written value travels whole in one 4 MiB frame between the replicas/,
  },
  {
    name: '5. shard-node without a cluster file, --value-bytes-max 5MiB: over the frame',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: ['--port=0', '--bootstrap', '--value-bytes-max=5MiB', `--data-dir=${context.path('d')}`],
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: --value-bytes-max \(5242880 bytes\) is over the largest value a group can replicate with keys of up to 1024 bytes: 4192991 bytes .*Set it to at most 4192991 bytes \[CONFIG_INVALID\]$/,
  },
  // 6. Unknown fields in cluster files are errors, with their path and the nearest known name.
  {
    name: '6. gateway, cluster file with virtualNodesPerGrop',
    entry: 'gateway',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        `--cluster-file=${context.clusterFile({ ...oneReplica(), virtualNodesPerGrop: 16 })}`,
      ],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: cluster.virtualNodesPerGrop: unknown field \(did you mean virtualNodesPerGroup\?\) \[CONFIG_INVALID\]$/,
  },
  {
    name: '6. shard-node, cluster file with raftID',
    entry: 'shardNode',
    setup: async (context) => {
      const cluster = {
        groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url: 'http://127.0.0.1:7001', raftID: 1 }] }],
      };
      return {
        argumentsList: [
          '--port=0',
          `--data-dir=${context.path('d')}`,
          `--cluster-file=${context.clusterFile(cluster)}`,
        ],
        untouched: [context.path('d')],
      };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: cluster.groups\[0\].replicas\[0\].raftID: unknown field \(did you mean raftId\?\) \[CONFIG_INVALID\]$/,
  },
  {
    name: '6. shard-node, inline cluster with peerAdress',
    entry: 'shardNode',
    setup: async (context) => {
      const replica = { id: 'g1-r1', url: 'http://127.0.0.1:7001', peerAdress: '127.0.0.1:7101' };
      return {
        argumentsList: [
          '--port=0',
          `--data-dir=${context.path('d')}`,
          `--cluster=${JSON.stringify({ groups: [{ id: 'g1', replicas: [replica] }] })}`,
        ],
        untouched: [context.path('d')],
      };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: cluster.groups\[0\].replicas\[0\].peerAdress: unknown field \(did you mean peerAddress\?\) \[CONFIG_INVALID\]$/,
  },
  {
    name: '6. gateway, a group with "replica" for "replicas"',
    entry: 'gateway',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        `--cluster-file=${context.clusterFile({ groups: [{ id: 'g1', replica: [], replicas: [{ id: 'g1-r1', url: 'http://127.0.0.1:7001' }] }] })}`,
      ],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: cluster.groups\[0\].replica: unknown field \(did you mean replicas\?\)/,
  },
  // 7. Addresses are unique.
  {
    name: '7. gateway, two groups given the same replica URL',
    entry: 'gateway',
    setup: async (context) => {
      const cluster = {
        groups: [
          { id: 'g1', replicas: [{ id: 'g1-r1', url: 'http://127.0.0.1:7001' }] },
          { id: 'g2', replicas: [{ id: 'g2-r1', url: 'http://127.0.0.1:7001/' }] },
        ],
      };
      return { argumentsList: ['--port=0', `--cluster-file=${context.clusterFile(cluster)}`] };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: cluster.groups\[1\].replicas\[0\].url: address 127.0.0.1:7001 is already used by cluster.groups\[0\].replicas\[0\].url \[CONFIG_INVALID\]$/,
  },
  {
    name: '7. shard-node, two replicas of a group given the same peer address',
    entry: 'shardNode',
    setup: async (context) => {
      const cluster = {
        groups: [
          {
            id: 'g1',
            replicas: [
              { id: 'g1-r1', url: 'http://127.0.0.1:7001', peerAddress: '127.0.0.1:7101' },
              { id: 'g1-r2', url: 'http://127.0.0.1:7002', peerAddress: '127.0.0.1:7101' },
              { id: 'g1-r3', url: 'http://127.0.0.1:7003', peerAddress: '127.0.0.1:7103' },
            ],
          },
        ],
      };
      return {
        argumentsList: [
          '--port=0',
          `--data-dir=${context.path('d')}`,
          `--cluster-file=${context.clusterFile(cluster)}`,
        ],
        untouched: [context.path('d')],
      };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: cluster.groups\[0\].replicas\[1\].peerAddress: address 127.0.0.1:7101 is already used by cluster.groups\[0\].replicas\[0\].peerAddress \[CONFIG_INVALID\]$/,
  },
  {
    name: "extra. a peer address that is another replica's client URL (case differs)",
    entry: 'gateway',
    setup: async (context) => {
      const cluster = {
        groups: [
          {
            id: 'g1',
            replicas: [
              { id: 'g1-r1', url: 'http://LocalHost:7001', peerAddress: 'localhost:7101' },
              { id: 'g1-r2', url: 'http://localhost:7002', peerAddress: 'localhost:7001' },
            ],
          },
        ],
      };
      return { argumentsList: ['--port=0', `--cluster-file=${context.clusterFile(cluster)}`] };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse-gateway: invalid configuration: cluster.groups\[0\].replicas\[1\].peerAddress: address localhost:7001 is already used by cluster.groups\[0\].replicas\[0\].url/,
  },
  // 8. The launcher's --replicas-per-group: validation and help agree.
  {
    name: '8. npm start -- --replicas-per-group 2',
    entry: 'launcher',
    setup: async (context) => ({
      argumentsList: ['--replicas-per-group', '2', `--data-dir=${context.path('data')}`],
      untouched: [context.path('data')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse: invalid configuration: --replicas-per-group: must be odd \(1, 3, 5 or 7\): an even group survives no more replica failures than the odd group one smaller, and every write waits for one more replica \(got "2"\) \[CONFIG_INVALID\]$/,
  },
  {
    name: '8. IMPULSE_REPLICAS_PER_GROUP=4 npm start',
    entry: 'launcher',
    setup: async (context) => ({
      argumentsList: [`--data-dir=${context.path('data')}`],
      env: { IMPULSE_REPLICAS_PER_GROUP: '4' },
      untouched: [context.path('data')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse: invalid configuration: IMPULSE_REPLICAS_PER_GROUP: must be odd \(1, 3, 5 or 7\)/,
  },
  // 9. Start-up failures print their cause on stderr and exit 2 (configuration) or 1 (environment).
  {
    name: '9. shard-node whose group is not in the cluster file',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        '--group-id=g9',
        '--replica-id=g9-r1',
        `--data-dir=${context.path('d')}`,
        `--cluster-file=${context.clusterFile(oneReplica())}`,
      ],
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: group g9 is not in the cluster configuration \[CONFIG_INVALID\]$/,
  },
  {
    name: '9. shard-node whose replica is not in its group',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        '--replica-id=g1-r7',
        `--data-dir=${context.path('d')}`,
        `--cluster-file=${context.clusterFile(oneReplica())}`,
      ],
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: replica g1-r7 is not in group g1 of the cluster configuration \[CONFIG_INVALID\]$/,
  },
  {
    name: '9. shard-node with a cluster file that cannot be read',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        `--data-dir=${context.path('d')}`,
        `--cluster-file=${context.path('missing.json')}`,
      ],
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: cannot read cluster file .*missing\.json: ENOENT/,
  },
  {
    name: '9. shard-node with --heartbeat-ticks not below --election-timeout-ticks',
    entry: 'shardNode',
    setup: async (context) => ({
      argumentsList: [
        '--port=0',
        '--heartbeat-ticks=10',
        '--election-timeout-ticks=10',
        `--data-dir=${context.path('d')}`,
      ],
      untouched: [context.path('d')],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: invalid configuration: --heartbeat-ticks \(10\) must be below --election-timeout-ticks \(10\): /,
  },
  {
    name: '9. gateway on a port in use',
    entry: 'gateway',
    setup: async (context) => {
      const port = await context.occupiedPort();
      return {
        argumentsList: [`--port=${port}`, `--cluster-file=${context.clusterFile(oneReplica())}`],
        stderrFirstLine: new RegExp(
          `^impulse-gateway: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\[ADDRESS_IN_USE\\]$`,
        ),
      };
    },
    exitCode: 1,
  },
  {
    name: '9. shard-node on a port in use',
    entry: 'shardNode',
    setup: async (context) => {
      const port = await context.occupiedPort();
      return {
        argumentsList: [
          `--port=${port}`,
          '--bootstrap',
          '--engine=memory',
          `--data-dir=${context.path('d')}`,
        ],
        stderrFirstLine: new RegExp(
          `^impulse-shard-node: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\[ADDRESS_IN_USE\\]$`,
        ),
      };
    },
    exitCode: 1,
  },
  {
    name: "9. npm start with the gateway port in use shows the gateway's cause",
    entry: 'launcher',
    setup: async (context) => {
      const port = await context.occupiedPort();
      return {
        argumentsList: [
          '--nodes=1',
          '--groups=1',
          '--replicas-per-group=1',
          '--engine=memory',
          '--node-base-port=0',
          `--gateway-port=${port}`,
          `--data-dir=${context.path('data')}`,
        ],
        stderrFirstLine: new RegExp(
          `^impulse: gateway exited during start-up \\(code 1\\): impulse-gateway: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE \\[ADDRESS_IN_USE\\]$`,
        ),
      };
    },
    exitCode: 1,
  },
  {
    name: "extra. npm start on a data directory whose node folder is a replica's",
    entry: 'launcher',
    setup: async (context) => {
      const root = context.path('data');
      const replicaDirectory = await context.replicaDataDirectory('data/n1', [
        '--group-id=g2',
        '--replica-id=g2-r1',
      ]);
      return {
        argumentsList: [
          '--nodes=1',
          '--groups=1',
          '--replicas-per-group=1',
          '--node-base-port=0',
          '--gateway-port=0',
          `--data-dir=${root}`,
        ],
        untouched: [replicaDirectory],
      };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse: n1 exited during start-up \(code 2\): impulse-shard-node: data directory .*n1 belongs to replica g2-r1 .*, not to node n1 in cluster .*\[DATA_DIRECTORY_IDENTITY_MISMATCH\]$/,
  },
  // 10. A data directory that cannot hold data is refused at once.
  {
    name: '10. shard-node with its data directory under /proc',
    entry: 'shardNode',
    setup: async () => ({
      argumentsList: ['--port=0', '--data-dir=/proc/impulse-test/g1-r1'],
      untouched: ['/proc/impulse-test'],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: data directory \/proc\/impulse-test\/g1-r1 is on the proc pseudo file system \(at \/proc\), which cannot hold data \[DATA_DIRECTORY_UNUSABLE\]$/,
  },
  {
    name: '10. shard-node with its data directory under /sys',
    entry: 'shardNode',
    setup: async () => ({
      argumentsList: ['--port=0', '--data-dir=/sys/impulse-test'],
      untouched: ['/sys/impulse-test'],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: data directory \/sys\/impulse-test is on the sysfs pseudo file system .*\[DATA_DIRECTORY_UNUSABLE\]$/,
  },
  {
    name: '10. npm start -- --data-dir /proc/impulse-test',
    entry: 'launcher',
    setup: async () => ({
      argumentsList: ['--data-dir=/proc/impulse-test'],
      untouched: ['/proc/impulse-test'],
    }),
    exitCode: 2,
    stderrFirstLine:
      /^impulse: data directory \/proc\/impulse-test is on the proc pseudo file system \(at \/proc\), which cannot hold data \[DATA_DIRECTORY_UNUSABLE\]$/,
  },
  {
    name: '10. shard-node with its data directory in a folder it may not write',
    entry: 'shardNode',
    setup: async (context) => {
      const readOnly = context.path('read-only');
      mkdirSync(readOnly, { mode: 0o555 });
      // The process must reach the folder to be refused it, not be stopped above it.
      chmodSync(context.directory, 0o755);
      chmodSync(dirname(context.directory), 0o755);
      return {
        argumentsList: ['--port=0', `--data-dir=${readOnly}/g1-r1`],
        untouched: [readOnly],
        unprivileged: true,
        stderrFirstLine: new RegExp(
          `^impulse-shard-node: data directory ${escapeRegExp(readOnly)}/g1-r1: ${escapeRegExp(readOnly)} is not writable \\(EACCES\\) \\[DATA_DIRECTORY_NOT_WRITABLE\\]$`,
        ),
      };
    },
    exitCode: 1,
  },
  {
    name: 'extra. shard-node with a data directory inside a regular file',
    entry: 'shardNode',
    setup: async (context) => {
      const file = context.path('a-file');
      writeFileSync(file, 'not a folder');
      return { argumentsList: ['--port=0', `--data-dir=${file}/g1-r1`], untouched: [file] };
    },
    exitCode: 2,
    stderrFirstLine:
      /^impulse-shard-node: data directory .*a-file\/g1-r1: .*a-file exists and is not a directory \[DATA_DIRECTORY_UNUSABLE\]$/,
  },
];

describe('start-up refuses what it used to accept and then misbehave on (issue 19)', () => {
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  let context: CaseContext | undefined;
  let caseCount = 0;

  beforeAll(async () => {
    directory = await temporaryDirectory('startup-config');
  });
  afterEach(async () => {
    for (const cleanup of context?.cleanups.reverse() ?? []) await cleanup();
    context = undefined;
  });
  afterAll(async () => {
    await directory.remove();
  });

  async function newContext(): Promise<CaseContext> {
    const path = join(directory.path, `case-${++caseCount}`);
    mkdirSync(path);
    context = new CaseContext(path);
    return context;
  }

  it.each(cases.map((testCase) => [testCase.name, testCase] as const))('%s', async (_name, testCase) => {
    const caseContext = await newContext();
    const prepared = await testCase.setup(caseContext);
    const before = (prepared.untouched ?? []).flatMap(treeOf);
    const result = await run(
      testCase.entry,
      prepared.argumentsList,
      prepared.env,
      prepared.unprivileged === true ? unprivilegedUser : {},
    );
    const explanation = `stderr:\n${result.stderr}\nstdout (tail):\n${result.stdout.slice(-2000)}`;
    expect(result.timedOut, `still running after ${runTimeoutMs} ms\n${explanation}`).toBe(false);
    expect(result.code, explanation).toBe(testCase.exitCode);
    const expected = prepared.stderrFirstLine ?? testCase.stderrFirstLine;
    expect(expected, 'every case names its first stderr line').toBeDefined();
    expect(firstLineOf(result.stderr), explanation).toMatch(expected as RegExp);
    expect((prepared.untouched ?? []).flatMap(treeOf), 'nothing in the data was written').toEqual(before);
  });

  it('2. a replica killed with kill -9 leaves no lock behind: it starts again at once', async () => {
    const caseContext = await newContext();
    const dataDirectory = caseContext.path('killed');
    for (const engine of ['memory', 'leveldb']) {
      const first = await startListening('shardNode', [
        '--port=0',
        '--bootstrap',
        `--engine=${engine}`,
        `--data-dir=${dataDirectory}-${engine}`,
      ]);
      const exited = once(first.child, 'exit');
      first.child.kill('SIGKILL');
      await exited;
      const second = await startListening('shardNode', [
        '--port=0',
        `--engine=${engine}`,
        `--data-dir=${dataDirectory}-${engine}`,
      ]);
      expect(await stop(second.child)).toBe(0);
    }
  });

  it('3. a memory-engine cluster started by npm start stops and starts again on its data, keeping it', async () => {
    const caseContext = await newContext();
    const dataDirectory = caseContext.path('data');
    const launch = async (): Promise<{ child: ChildProcess; gateway: string }> => {
      const child = spawn(
        process.execPath,
        [
          entryPoints.launcher,
          '--engine=memory',
          '--groups=2',
          '--replicas-per-group=3',
          '--node-base-port=0',
          '--gateway-port=0',
          `--data-dir=${dataDirectory}`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const gateway = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`npm start was not ready in time: ${stderr}`)),
          60_000,
        );
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          const url = /gateway +(http:\/\/\S+)/.exec(stdout)?.[1];
          if (url !== undefined && stdout.includes('impulse: ready')) {
            clearTimeout(timer);
            resolve(url);
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`npm start exited (code ${String(code)}): ${stderr}`));
        });
      });
      caseContext.cleanups.push(async () => void (await stop(child)));
      return { child, gateway };
    };
    const first = await launch();
    for (let index = 0; index < 40; index++) {
      const answer = await rawRequest(first.gateway, `/kv/key-${index}`, {
        method: 'PUT',
        body: `value-${index}`,
      });
      expect(answer.status).toBe(204);
    }
    expect(await stop(first.child)).toBe(0);
    const second = await launch();
    for (let index = 0; index < 40; index++) {
      const answer = await rawRequest(second.gateway, `/kv/key-${index}`);
      expect(answer.status, `key-${index}`).toBe(200);
      expect(answer.body.toString()).toBe(`value-${index}`);
    }
    expect(
      (await rawRequest(second.gateway, '/kv/new', { method: 'PUT', body: 'after the restart' })).status,
    ).toBe(204);
  });

  it('3. a memory-engine replica restarts on a compacted log (its state comes from its image)', async () => {
    const caseContext = await newContext();
    const options = [
      '--engine=memory',
      `--data-dir=${caseContext.path('d')}`,
      '--snapshot-entries=5',
      '--snapshot-catch-up-entries=1',
    ];
    const first = await startListening('shardNode', ['--port=0', '--bootstrap', ...options]);
    const firstPort = Number(/"port":(\d+),"peerPort"/.exec(first.stdout())?.[1]);
    for (let index = 0; index < 23; index++) {
      const answer = await rawRequest(`http://127.0.0.1:${firstPort}`, `/kv/k${index}`, {
        method: 'PUT',
        body: `v${index}`,
      });
      expect(answer.status).toBe(204);
    }
    expect(await stop(first.child)).toBe(0);
    const second = await startListening('shardNode', ['--port=0', ...options]);
    caseContext.cleanups.push(async () => void (await stop(second.child)));
    const port = Number(/"port":(\d+),"peerPort"/.exec(second.stdout())?.[1]);
    const status = (await rawRequest(`http://127.0.0.1:${port}`, '/admin/status')).json() as {
      firstIndex: number;
    };
    expect(status.firstIndex, 'the log was compacted').toBeGreaterThan(5);
    for (let index = 0; index < 23; index++) {
      const answer = await rawRequest(`http://127.0.0.1:${port}`, `/kv/k${index}`);
      expect(answer.status, `k${index}`).toBe(200);
      expect(answer.body.toString()).toBe(`v${index}`);
    }
  });

  it('3. a memory-engine replica that joined by snapshot keeps that state across a restart of the group', async () => {
    const caseContext = await newContext();
    const cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      engine: 'memory',
      dataDirectory: caseContext.path('data'),
      shardNodeArguments: ['--snapshot-entries=20', '--snapshot-catch-up-entries=5'],
    });
    caseContext.cleanups.push(() => cluster.stop());
    const statusOf = async (replica: ReplicaProcess): Promise<{ appliedIndex: number }> =>
      (await rawRequest(replica.url, '/admin/status', { headers: cluster.adminHeaders() })).json() as {
        appliedIndex: number;
      };
    const written = 60;
    for (let index = 0; index < written; index++) {
      const answer = await rawRequest(cluster.gatewayUrl, `/kv/s-${index}`, {
        method: 'PUT',
        body: `v-${index}`,
      });
      expect(answer.status).toBe(204);
    }
    // A replica that joins has no log before the leader's first entry: it is always sent a snapshot.
    const leader = await cluster.leaderOf('g1');
    const joiner = await cluster.addReplica('g1');
    const added = await rawRequest(leader.url, '/admin/members', {
      method: 'POST',
      headers: cluster.adminHeaders(),
      body: JSON.stringify({
        replicaId: joiner.replicaId,
        raftId: joiner.raftId,
        url: joiner.url,
        peerAddress: `${cluster.host}:${joiner.peerPort}`,
      }),
    });
    expect(added.status, added.body.toString()).toBe(200);
    const target = (await statusOf(leader)).appliedIndex;
    const deadline = Date.now() + 30_000;
    const installed = async (): Promise<boolean> =>
      (await statusOf(joiner)).appliedIndex >= target &&
      /impulse_raft_snapshots_installed_total\{[^}]*\} [1-9]/.test(
        (await rawRequest(joiner.url, '/metrics')).body.toString(),
      );
    while (!(await installed())) {
      expect(Date.now(), `${joiner.replicaId} did not catch up by snapshot`).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Every replica at once, then back: the joiner's state comes from the image written when it
    // installed the snapshot, which its log does not hold.
    await Promise.all(cluster.group('g1').map((replica) => cluster.kill(replica.replicaId)));
    await Promise.all(cluster.group('g1').map((replica) => cluster.restart(replica.replicaId)));
    for (const index of [0, written / 2, written - 1]) {
      const answer = await rawRequest(joiner.url, `/kv/s-${index}?consistency=stale`);
      expect(answer.status, `s-${index}`).toBe(200);
      expect(answer.body.toString()).toBe(`v-${index}`);
    }
  });

  it('5. a cluster-wide valueBytesMax of 3MiB: a 2 MiB value is accepted, read and scanned', async () => {
    const caseContext = await newContext();
    const replicaPort = await freePort();
    const gatewayPort = await freePort();
    const cluster = caseContext.clusterFile({
      valueBytesMax: '3MiB',
      groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url: `http://127.0.0.1:${replicaPort}` }] }],
    });
    const replica = await startListening('shardNode', [
      `--port=${replicaPort}`,
      '--bootstrap',
      '--engine=memory',
      `--data-dir=${caseContext.path('d')}`,
      `--cluster-file=${cluster}`,
    ]);
    caseContext.cleanups.push(async () => void (await stop(replica.child)));
    // A flag that agrees with the cluster is taken.
    const gateway = await startListening('gateway', [
      `--port=${gatewayPort}`,
      '--value-bytes-max=3MiB',
      `--cluster-file=${cluster}`,
    ]);
    caseContext.cleanups.push(async () => void (await stop(gateway.child)));
    const base = `http://127.0.0.1:${gatewayPort}`;
    const value = Buffer.alloc(2 * 1024 * 1024, 'x');
    expect(
      (await rawRequest(base, '/kv/big', { method: 'PUT', body: value, timeoutMs: 30_000 })).status,
    ).toBe(204);
    const read = await rawRequest(base, '/kv/big', { timeoutMs: 30_000 });
    expect(read.status).toBe(200);
    expect(read.body.equals(value)).toBe(true);
    const scan = await rawRequest(base, '/kv?prefix=big', { timeoutMs: 30_000 });
    expect(scan.status, scan.body.toString().slice(0, 500)).toBe(200);
    expect((scan.json() as { items: { key: string; value: string }[] }).items[0]?.value).toBe(
      value.toString(),
    );
    const tooBig = await rawRequest(base, '/kv/bigger', {
      method: 'PUT',
      body: Buffer.alloc(5 * 1024 * 1024),
      timeoutMs: 30_000,
    });
    expect(tooBig.status).toBe(413);
  });

  it("8. npm start's help says which replica counts it takes, and why not even ones", async () => {
    const help = await run('launcher', ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(
      /--replicas-per-group <integer> +env IMPULSE_REPLICAS_PER_GROUP, default 3, from 1 to 7/,
    );
    expect(help.stdout).toContain(
      '1, 3, 5 or 7. Even numbers are refused: a group of 2 stops when either replica fails',
    );
    // Every count the help names is taken: a group of 7 is refused only for want of ports here.
    const parsed = await run('launcher', ['--replicas-per-group=5', '--groups=0']);
    expect(firstLineOf(parsed.stderr)).toBe(
      'impulse: invalid configuration: --groups: must be at least 1 (got "0") [CONFIG_INVALID]',
    );
  });
});
