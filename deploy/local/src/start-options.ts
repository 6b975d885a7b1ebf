import { option, replicasPerGroupMax } from '@impulse/common';

export const startProgram = {
  name: 'npm start --',
  summary:
    'starts a local Impulse cluster on this machine: node processes, each hosting a replica of many shard groups, and a gateway',
};

/** The options of `npm start` (the local cluster launcher). */
export const startOptions = {
  nodes: option.integer({
    description:
      'Node processes. Each hosts one replica of many groups on one client port and one peer port; replica r of group g lives on node (g + r - 2) mod nodes + 1.',
    default: 3,
    min: 1,
    max: 64,
  }),
  groups: option.integer({
    description: 'Number of shard groups, spread over the nodes.',
    default: 3,
    min: 1,
    max: 1024,
  }),
  replicasPerGroup: option.integer({
    description:
      'Replicas per shard group, each on a different node (at most --nodes): each group is a Raft group of this many replicas: 1, 3, 5 or 7. Even numbers are refused: a group of 2 stops when either replica fails (a majority of 2 is 2), and one of 4 survives no more failures than one of 3 while every write waits for one more replica.',
    default: 3,
    min: 1,
    max: replicasPerGroupMax,
    check: (value) =>
      value % 2 === 1
        ? undefined
        : 'must be odd (1, 3, 5 or 7): an even group survives no more replica failures than the odd group one smaller, and every write waits for one more replica',
  }),
  dataDir: option.string({
    description: "Root of the nodes' data (one directory per node) and of the process logs.",
    default: './data',
  }),
  engine: option.enum({
    description: 'Storage engine of every replica.',
    default: 'leveldb',
    choices: ['leveldb', 'memory'],
  }),
  host: option.string({ description: 'Address every process listens on.', default: '127.0.0.1' }),
  gatewayPort: option.integer({ description: 'Port of the gateway.', default: 8080, min: 0, max: 65535 }),
  nodeBasePort: option.integer({
    description:
      'Client port of the first node; the others take the next ports, and each peer port is its client port + 100 (0 picks free ports).',
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
