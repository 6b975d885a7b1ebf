import { ConfigError, option } from '@impulse/common';
import { workloadNames, type WorkloadName } from './workload.js';

export const nodeBenchProgram = {
  name: 'npm run bench:nodes --',
  summary:
    'measures what a node hosting many groups costs: idle (CPU and RSS of each node hosting N groups, no traffic) and throughput (a workload through the gateway on the node shape at --groups and at --spread-groups groups, and on the shape with a process per replica; fsyncs per 1,000 writes per node and peer messages per frame), runs interleaved, medians; prints tables and writes results/<timestamp>-nodes/result.json',
};

/** The options of `npm run bench:nodes` (environment variables IMPULSE_NODE_BENCH_*). */
export const nodeBenchOptions = {
  measure: option.enum({
    description: 'What to measure: idle, throughput, or both.',
    default: 'both',
    choices: ['idle', 'throughput', 'both'],
    env: 'IMPULSE_NODE_BENCH_MEASURE',
  }),
  rounds: option.integer({
    description:
      'Rounds: each round measures every cluster size (idle) and every shape (throughput) once, on a fresh cluster, in turn; the tables give the medians.',
    default: 3,
    min: 1,
    max: 20,
    env: 'IMPULSE_NODE_BENCH_ROUNDS',
  }),
  nodes: option.integer({
    description: 'Node processes.',
    default: 3,
    min: 1,
    max: 16,
    env: 'IMPULSE_NODE_BENCH_NODES',
  }),
  replicasPerGroup: option.integer({
    description: 'Replicas per group (at most --nodes).',
    default: 3,
    min: 1,
    max: 7,
    env: 'IMPULSE_NODE_BENCH_REPLICAS_PER_GROUP',
  }),
  engine: option.enum({
    description: 'Storage engine of every replica.',
    default: 'leveldb',
    choices: ['leveldb', 'memory'],
    env: 'IMPULSE_NODE_BENCH_ENGINE',
  }),
  idleGroups: option.string({
    description: 'Idle: the cluster sizes, in groups, comma-separated.',
    default: '3,64,256',
    env: 'IMPULSE_NODE_BENCH_IDLE_GROUPS',
  }),
  idleSettle: option.string({
    description:
      'Idle: once every group has a leader, wait this long before measuring (seconds, or 500ms, 10s, 2m).',
    default: '10',
    env: 'IMPULSE_NODE_BENCH_IDLE_SETTLE',
  }),
  idleWindow: option.string({
    description: 'Idle: the measurement window (seconds, or 500ms, 10s, 2m).',
    default: '20',
    env: 'IMPULSE_NODE_BENCH_IDLE_WINDOW',
  }),
  groups: option.integer({
    description: 'Throughput: the groups of the base clusters (both shapes).',
    default: 3,
    min: 1,
    max: 1024,
    env: 'IMPULSE_NODE_BENCH_GROUPS',
  }),
  spreadGroups: option.integer({
    description: 'Throughput: the groups of the node cluster the load is spread over.',
    default: 64,
    min: 1,
    max: 1024,
    env: 'IMPULSE_NODE_BENCH_SPREAD_GROUPS',
  }),
  replicasShape: option.boolean({
    description:
      'Throughput: also run the shape with a process per replica at --groups (fsyncs and messages per frame before nodes).',
    default: true,
    env: 'IMPULSE_NODE_BENCH_REPLICAS_SHAPE',
  }),
  workload: option.enum<WorkloadName>({
    description: 'Throughput: the YCSB workload (see npm run bench -- --help).',
    default: 'put',
    choices: [...workloadNames],
    env: 'IMPULSE_NODE_BENCH_WORKLOAD',
  }),
  distribution: option.enum({
    description:
      "Throughput: the request distribution. uniform (the default here) spreads the load evenly over every group; zipfian puts YCSB's hot keys, and so a few groups, under most of it.",
    default: 'uniform',
    choices: ['default', 'zipfian', 'uniform', 'latest'],
    env: 'IMPULSE_NODE_BENCH_DISTRIBUTION',
  }),
  duration: option.string({
    description: 'Throughput: the run phase of each run (seconds, or 500ms, 10s, 2m).',
    default: '10',
    env: 'IMPULSE_NODE_BENCH_DURATION',
  }),
  warmup: option.string({
    description: 'Throughput: the workload for this long before each run phase, not recorded; 0 skips it.',
    default: '0',
    env: 'IMPULSE_NODE_BENCH_WARMUP',
  }),
  concurrency: option.integer({
    description: 'Throughput: operations in flight (closed loop), and connections to the gateway.',
    default: 100,
    min: 1,
    max: 1024,
    env: 'IMPULSE_NODE_BENCH_CONCURRENCY',
  }),
  recordBytes: option.bytes({
    description: 'Throughput: size of each value written.',
    default: 100,
    min: 1,
    max: 1024 * 1024,
    env: 'IMPULSE_NODE_BENCH_RECORD_BYTES',
  }),
  recordCount: option.integer({
    description: 'Throughput: records written by the load phase (the key space).',
    default: 1000,
    min: 1,
    max: 100_000_000,
    env: 'IMPULSE_NODE_BENCH_RECORD_COUNT',
  }),
  countSyncs: option.boolean({
    description:
      "Throughput: count the servers' fdatasync and fsync calls in the kernel (perf record on the syscall tracepoints; needs perf and root).",
    default: true,
    env: 'IMPULSE_NODE_BENCH_COUNT_SYNCS',
  }),
  client: option.enum({
    description: 'HTTP client of the load generator: undici (Pool) or node (node:http keep-alive Agent).',
    default: 'undici',
    choices: ['undici', 'node'],
    env: 'IMPULSE_NODE_BENCH_CLIENT',
  }),
  requestTimeout: option.milliseconds({
    description: 'An operation not answered within this fails (counted as an error).',
    default: 10_000,
    min: 1,
    env: 'IMPULSE_NODE_BENCH_REQUEST_TIMEOUT',
  }),
  seed: option.integer({
    description: 'Seed of the operation and key choice.',
    default: 1,
    min: 0,
    max: 2 ** 32 - 1,
    env: 'IMPULSE_NODE_BENCH_SEED',
  }),
  results: option.string({
    description: 'Directory under which each run writes <timestamp>-nodes/result.json.',
    default: 'results',
    env: 'IMPULSE_NODE_BENCH_RESULTS',
  }),
};

/** The largest cluster the idle measurement starts (a node hosts at most 1024 replicas). */
export const idleGroupsMax = 1024;

/** Parses a comma-separated list of group counts ("3,64,256"): each 1 to 1024, no repeats. */
export function parseGroupCounts(flag: string, text: string): number[] {
  const parts = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  const problems: string[] = [];
  const counts: number[] = [];
  for (const part of parts) {
    const value = /^\d+$/.test(part) ? Number(part) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < 1 || value > idleGroupsMax) {
      problems.push(`${flag}: ${JSON.stringify(part)} is not a group count from 1 to ${idleGroupsMax}`);
    } else if (counts.includes(value)) {
      problems.push(`${flag}: ${value} is given twice`);
    } else {
      counts.push(value);
    }
  }
  if (parts.length === 0)
    problems.push(`${flag}: needs at least one group count (got ${JSON.stringify(text)})`);
  if (problems.length > 0) throw new ConfigError(problems);
  return counts;
}
