import { option } from '@impulse/common';

export const seedBenchProgram = {
  name: 'npm run bench:seed --',
  summary:
    "reproduces the seed project's benchmarks against a local Impulse cluster for each storage engine: concurrent (many clients on one key for a while) and sequential (one request after another), for PUT, GET and DELETE, in requests per second",
};

/** The options of `npm run bench:seed` (environment variables IMPULSE_SEED_BENCH_*). */
export const seedBenchOptions = {
  duration: option.string({
    description:
      'How long each concurrent benchmark (PUT, GET, DELETE) runs, in seconds (or 500ms, 10s, 2m).',
    default: '10',
    env: 'IMPULSE_SEED_BENCH_DURATION',
  }),
  clients: option.integer({
    description: 'Concurrent clients, each sending its next request when answered.',
    default: 100,
    min: 1,
    max: 1024,
    env: 'IMPULSE_SEED_BENCH_CLIENTS',
  }),
  requests: option.integer({
    description: 'Requests of each sequential benchmark (PUT, GET, DELETE), one after another.',
    default: 1000,
    min: 1,
    max: 10_000_000,
    env: 'IMPULSE_SEED_BENCH_REQUESTS',
  }),
  engines: option.enum({
    description: 'Storage engines to measure, each on a fresh cluster.',
    default: 'both',
    choices: ['both', 'leveldb', 'memory'],
    env: 'IMPULSE_SEED_BENCH_ENGINES',
  }),
  valueBytes: option.bytes({
    description: 'Size of the value each PUT writes.',
    default: 1024,
    min: 0,
    max: 1024 * 1024,
    env: 'IMPULSE_SEED_BENCH_VALUE_BYTES',
  }),
  nodes: option.integer({
    description:
      'Node processes of the cluster (as npm start runs them); the groups, of one replica each, are spread over them.',
    default: 3,
    min: 1,
    max: 16,
    env: 'IMPULSE_SEED_BENCH_NODES',
  }),
  groups: option.integer({
    description: 'Shard groups of the cluster (the key lives in one of them).',
    default: 3,
    min: 1,
    max: 64,
    env: 'IMPULSE_SEED_BENCH_GROUPS',
  }),
  client: option.enum({
    description: 'HTTP client: undici (Pool) or node (node:http keep-alive Agent).',
    default: 'undici',
    choices: ['undici', 'node'],
    env: 'IMPULSE_SEED_BENCH_CLIENT',
  }),
  results: option.string({
    description: 'Directory under which the run writes <timestamp>-seed/result.json.',
    default: 'results',
    env: 'IMPULSE_SEED_BENCH_RESULTS',
  }),
};
