import { option } from '@impulse/common';
import { workloadNames, type WorkloadName } from './workload.js';

export const benchProgram = {
  name: 'npm run bench --',
  summary:
    'runs a YCSB workload (load phase, then run phase) against Impulse (as nodes, or a process per replica), a bare Node Map server and etcd, side by side, runs interleaved, and writes JSON, HTML and PNG results',
};

/**
 * The options of `npm run bench`. Environment variables are IMPULSE_BENCH_*, so that the
 * variables of `npm start` (IMPULSE_GROUPS, IMPULSE_ENGINE, ...) never leak into a benchmark.
 */
export const benchOptions = {
  workload: option.enum<WorkloadName>({
    description: 'YCSB core workload a to f, or put (updates only) or get (reads only).',
    default: 'a',
    choices: [...workloadNames],
    env: 'IMPULSE_BENCH_WORKLOAD',
  }),
  target: option.enum({
    description:
      'What to measure: impulse (nodes, each hosting a replica of many groups: what npm start runs), impulse-replicas (a process per replica, the shape before nodes), etcd, map (bare node:http + Map server), both (impulse and etcd), shapes (impulse-replicas, impulse and etcd) or all (the four).',
    default: 'all',
    choices: ['impulse', 'impulse-replicas', 'etcd', 'both', 'shapes', 'map', 'all'],
    env: 'IMPULSE_BENCH_TARGET',
  }),
  duration: option.string({
    description: 'Length of the run phase of each target, in seconds (or 500ms, 10s, 2m).',
    default: '10',
    env: 'IMPULSE_BENCH_DURATION',
  }),
  warmup: option.string({
    description:
      'Before the run phase of each target, the same workload for this long, not recorded, so that every process is measured warm (a fresh Node process needs about 30 s under load to reach its steady speed); 0 skips it.',
    default: '0',
    env: 'IMPULSE_BENCH_WARMUP',
  }),
  concurrency: option.integer({
    description:
      'Closed loop: operations in flight (clients), each sending its next when answered. Also the load phase concurrency and the connections per target.',
    default: 32,
    min: 1,
    max: 1024,
    env: 'IMPULSE_BENCH_CONCURRENCY',
  }),
  rate: option.integer({
    description:
      'Open loop: operations per second started on schedule whatever the target does, latency measured from the intended start; 0 runs the closed loop.',
    default: 0,
    min: 0,
    max: 1_000_000,
    env: 'IMPULSE_BENCH_RATE',
  }),
  recordBytes: option.bytes({
    description: 'Size of each value written.',
    default: 1024,
    min: 1,
    max: 1024 * 1024,
    env: 'IMPULSE_BENCH_RECORD_BYTES',
  }),
  recordCount: option.integer({
    description:
      "Records inserted by the load phase (the key space of reads and updates); 1000 is YCSB's default.",
    default: 1000,
    min: 1,
    max: 100_000_000,
    env: 'IMPULSE_BENCH_RECORD_COUNT',
  }),
  distribution: option.enum({
    description:
      "Request distribution: the workload's own (default), zipfian (scrambled), uniform or latest.",
    default: 'default',
    choices: ['default', 'zipfian', 'uniform', 'latest'],
    env: 'IMPULSE_BENCH_DISTRIBUTION',
  }),
  nodes: option.integer({
    description:
      'Node processes of the impulse target (each hosts a replica of many groups; at least --replicas-per-group).',
    default: 3,
    min: 1,
    max: 16,
    env: 'IMPULSE_BENCH_NODES',
  }),
  groups: option.integer({
    description: 'Impulse shard groups.',
    default: 3,
    min: 1,
    max: 64,
    env: 'IMPULSE_BENCH_GROUPS',
  }),
  replicasPerGroup: option.integer({
    description: 'Replicas per Impulse shard group (a Raft group of this many).',
    default: 3,
    min: 1,
    max: 7,
    env: 'IMPULSE_BENCH_REPLICAS_PER_GROUP',
  }),
  engine: option.enum({
    description: "Impulse's storage engine (leveldb fsyncs every acknowledged write).",
    default: 'leveldb',
    choices: ['leveldb', 'memory'],
    env: 'IMPULSE_BENCH_ENGINE',
  }),
  readMode: option.enum({
    description:
      "How Impulse's leaders confirm linearizable reads: readindex (a heartbeat round per batch of reads, etcd's way) or lease (no round while the leader's lease holds; see the shard-node's --read-mode).",
    default: 'readindex',
    choices: ['readindex', 'lease'],
    env: 'IMPULSE_BENCH_READ_MODE',
  }),
  countSyncs: option.boolean({
    description:
      "Count the servers' fdatasync and fsync calls in the kernel during each run phase (perf record on the syscall tracepoints; needs perf and root), for fsyncs per 1,000 writes per node.",
    default: true,
    env: 'IMPULSE_BENCH_COUNT_SYNCS',
  }),
  runs: option.integer({
    description:
      'Runs of each target (a fresh store each time), interleaved (every target once, then again); the summary gives the medians.',
    default: 1,
    min: 1,
    max: 20,
    env: 'IMPULSE_BENCH_RUNS',
  }),
  client: option.enum({
    description: 'HTTP client of the load generator: undici (Pool) or node (node:http keep-alive Agent).',
    default: 'undici',
    choices: ['undici', 'node'],
    env: 'IMPULSE_BENCH_CLIENT',
  }),
  inflightMax: option.integer({
    description:
      'Open loop: operations in flight at most (due operations wait past it, and the wait counts).',
    default: 1024,
    min: 1,
    max: 100_000,
    env: 'IMPULSE_BENCH_INFLIGHT_MAX',
  }),
  requestTimeout: option.milliseconds({
    description: 'An operation not answered within this fails (counted as an error).',
    default: 10_000,
    min: 1,
    env: 'IMPULSE_BENCH_REQUEST_TIMEOUT',
  }),
  seed: option.integer({
    description: 'Seed of the operation and key choice (the same seed replays the same sequence).',
    default: 1,
    min: 0,
    max: 2 ** 32 - 1,
    env: 'IMPULSE_BENCH_SEED',
  }),
  results: option.string({
    description: 'Directory under which each run writes <timestamp>-<workload>/ (JSON, HTML, PNG).',
    default: 'results',
    env: 'IMPULSE_BENCH_RESULTS',
  }),
};
