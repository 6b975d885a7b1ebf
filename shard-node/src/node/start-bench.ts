/**
 * How long a node takes to open the replicas it hosts: `Node.start` in this process, on the real
 * disk, for `--groups` groups of one replica each (no peers, so nothing but the opening is timed),
 * first on an empty directory (founding every group) and then on what that left (a restart), for
 * each `--in-flight` bound (1 opens them one after another). Rounds interleave the bounds, each on
 * a fresh directory, and the table gives medians with their range, wall and CPU seconds.
 *
 *   npm run bench:node-start -- [--groups 256] [--rounds 3] [--in-flight 1,8,16] [--engine leveldb]
 *
 * A benchmark prints numbers; it never fails on a slow machine.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Registry, createLogger } from '@impulse/common';
import { nullTransport, type MemberSpec } from '../replica/index.js';
import { Node, replicaOpensInFlightMax, type HostedReplica, type NodeOptions } from './node.js';

const { values } = parseArgs({
  options: {
    groups: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    'in-flight': { type: 'string', default: `1,${replicaOpensInFlightMax}` },
    engine: { type: 'string', default: 'leveldb' },
  },
});
const groups = Number(values.groups);
const rounds = Number(values.rounds);
const bounds = values['in-flight'].split(',').map(Number);
const engine = values.engine;
if (!Number.isSafeInteger(groups) || groups < 1 || groups > 1024) throw new Error('--groups: 1 to 1024');
if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error('--rounds: a positive integer');
if (bounds.some((bound) => !Number.isSafeInteger(bound) || bound < 1))
  throw new Error('--in-flight: positive integers, comma-separated');
if (engine !== 'leveldb' && engine !== 'memory') throw new Error('--engine: leveldb or memory');

function hostedReplicas(bootstrap: boolean): HostedReplica[] {
  return Array.from({ length: groups }, (_, index) => {
    const groupId = `g${index + 1}`;
    const self: MemberSpec = {
      raftId: 1,
      replicaId: `${groupId}-r1`,
      url: 'http://127.0.0.1:1',
      peerHost: '127.0.0.1',
      peerPort: 1,
    };
    return { groupId, self, initialMembers: [self], join: false, bootstrap };
  });
}

function nodeOptions(dataDirectory: string, inFlightMax: number): NodeOptions {
  return {
    nodeId: 'n1',
    dataDirectory,
    settings: {
      clusterId: 'impulse',
      engine: engine as 'leveldb' | 'memory',
      logSync: true,
      tickIntervalMs: 100,
      electionTimeoutTicks: 10,
      heartbeatTicks: 1,
      snapshotEntries: 10_000,
      snapshotCatchUpEntries: 5_000,
      proposalTimeoutMs: 5_000,
      proposalBatchMax: 1024,
    },
    openTransport: () => () => Promise.resolve(nullTransport),
    logger: createLogger({ service: 'shard-node', level: 'silent' }),
    registry: new Registry(),
    replicaOpensInFlightMax: inFlightMax,
  };
}

interface StartTime {
  readonly wallSeconds: number;
  readonly cpuSeconds: number;
}

/** Starts the node, times it to the end of `Node.start`, and stops it. */
async function timedStart(
  dataDirectory: string,
  inFlightMax: number,
  bootstrap: boolean,
): Promise<StartTime> {
  const cpuBefore = process.cpuUsage();
  const startMs = performance.now();
  const node = await Node.start(nodeOptions(dataDirectory, inFlightMax), hostedReplicas(bootstrap));
  const wallSeconds = (performance.now() - startMs) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const failed = node.failedReplicas();
  await node.stop();
  if (failed.length > 0) throw new Error(`${failed.length} replicas failed to start: ${failed[0]?.message}`);
  return { wallSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

const median = (numbers: readonly number[]): number => {
  const sorted = [...numbers].sort((left, right) => left - right);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};
const spread = (numbers: readonly number[]): string =>
  `${median(numbers).toFixed(2)} (${Math.min(...numbers).toFixed(2)} to ${Math.max(...numbers).toFixed(2)})`;

/** The commit measured, with a mark when the work tree differs from it. */
function commitOf(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const changed = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8' }).trim() !== '';
    return `${commit}${changed ? ' (with uncommitted changes)' : ''}`;
  } catch {
    return 'unknown';
  }
}

const log = (line: string): void => void process.stderr.write(`bench:node-start: ${line}\n`);
process.stdout.write(
  `bench:node-start: commit ${commitOf()}, ${groups} groups of one replica, engine ${engine}, in flight ${bounds.join(', ')}, ${rounds} round(s); load average ${loadavg()[0]?.toFixed(2)}\n`,
);
const firstStarts = new Map<number, StartTime[]>(bounds.map((bound) => [bound, []]));
const restarts = new Map<number, StartTime[]>(bounds.map((bound) => [bound, []]));
for (let round = 1; round <= rounds; round++) {
  // Each round turns the order by one place, so that no bound always goes first.
  const shift = (round - 1) % bounds.length;
  for (const bound of [...bounds.slice(shift), ...bounds.slice(0, shift)]) {
    const directory = await mkdtemp(join(tmpdir(), 'impulse-node-start-'));
    try {
      const first = await timedStart(directory, bound, true);
      const again = await timedStart(directory, bound, false);
      firstStarts.get(bound)?.push(first);
      restarts.get(bound)?.push(again);
      log(
        `round ${round}, ${bound} in flight: first start ${first.wallSeconds.toFixed(2)} s, restart ${again.wallSeconds.toFixed(2)} s`,
      );
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  }
}
const header = `${'in flight'.padStart(10)}${'first start s'.padStart(26)}${'CPU s'.padStart(22)}${'restart s'.padStart(26)}${'CPU s'.padStart(22)}`;
const lines = [`seconds to the end of Node.start, median (min to max) of ${rounds} round(s)`, header];
for (const bound of bounds) {
  const first = firstStarts.get(bound) ?? [];
  const again = restarts.get(bound) ?? [];
  lines.push(
    `${String(bound).padStart(10)}${spread(first.map((time) => time.wallSeconds)).padStart(26)}${spread(first.map((time) => time.cpuSeconds)).padStart(22)}` +
      `${spread(again.map((time) => time.wallSeconds)).padStart(26)}${spread(again.map((time) => time.cpuSeconds)).padStart(22)}`,
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
