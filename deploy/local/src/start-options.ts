import { option } from '@impulse/common';

export const startProgram = {
  name: 'npm start --',
  summary: 'starts a local Impulse cluster (shard groups and a gateway) as processes on this machine',
};

/** The options of `npm start` (the local cluster launcher). */
export const startOptions = {
  groups: option.integer({ description: 'Number of shard groups.', default: 3, min: 1, max: 64 }),
  replicasPerGroup: option.integer({
    description: 'Replicas per shard group: each group is a Raft group of this many replicas (1, 3 or 5).',
    default: 3,
    min: 1,
    max: 7,
  }),
  dataDir: option.string({
    description: "Root of the replicas' data and of the process logs.",
    default: './data',
  }),
  engine: option.enum({
    description: 'Storage engine of every replica.',
    default: 'leveldb',
    choices: ['leveldb', 'memory'],
  }),
  host: option.string({ description: 'Address every process listens on.', default: '127.0.0.1' }),
  gatewayPort: option.integer({ description: 'Port of the gateway.', default: 8080, min: 0, max: 65535 }),
  replicaBasePort: option.integer({
    description: 'Port of the first replica; the others take the next ports (0 picks free ports).',
    default: 7001,
    min: 0,
    max: 65535,
  }),
  logLevel: option.enum({
    description: 'Log level of every process (logs go to <data-dir>/logs).',
    default: 'info',
    choices: ['trace', 'debug', 'info', 'warn', 'error'],
  }),
};
