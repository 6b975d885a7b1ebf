import { option, replicasPerGroupMax } from '@impulse/common';

export const startProgram = {
  name: 'npm start --',
  summary: 'starts a local Impulse cluster (shard groups and a gateway) as processes on this machine',
};

/** The options of `npm start` (the local cluster launcher). */
export const startOptions = {
  groups: option.integer({ description: 'Number of shard groups.', default: 3, min: 1, max: 64 }),
  replicasPerGroup: option.integer({
    description:
      'Replicas per shard group: each group is a Raft group of this many replicas: 1, 3, 5 or 7. Even numbers are refused: a group of 2 stops when either replica fails (a majority of 2 is 2), and one of 4 survives no more failures than one of 3 while every write waits for one more replica.',
    default: 3,
    min: 1,
    max: replicasPerGroupMax,
    check: (value) =>
      value % 2 === 1
        ? undefined
        : 'must be odd (1, 3, 5 or 7): an even group survives no more replica failures than the odd group one smaller, and every write waits for one more replica',
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
