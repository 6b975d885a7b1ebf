import { option } from '@impulse/common';

export const failoverProgram = {
  name: 'npm run bench:failover --',
  summary:
    'measures failover on the node shape: each round kills (kill -9) the node that leads the most groups and times, for every group it led, a new leader and the first write that succeeds through the gateway; then restarts the node and waits until it has caught up. Prints per-group times, and the max and median over every round',
};

/** The options of `npm run bench:failover` (environment variables IMPULSE_FAILOVER_*). */
export const failoverOptions = {
  rounds: option.integer({
    description: 'Rounds: a node killed, its groups failed over, the node restarted and caught up.',
    default: 5,
    min: 1,
    max: 100,
    env: 'IMPULSE_FAILOVER_ROUNDS',
  }),
  nodes: option.integer({
    description: 'Node processes.',
    default: 3,
    min: 2,
    max: 16,
    env: 'IMPULSE_FAILOVER_NODES',
  }),
  groups: option.integer({
    description: 'Shard groups (with 3 nodes, each node first leads about a third of them).',
    default: 12,
    min: 1,
    max: 1024,
    env: 'IMPULSE_FAILOVER_GROUPS',
  }),
  replicasPerGroup: option.integer({
    description: 'Replicas per group (at least 3: a group must keep a majority without the killed node).',
    default: 3,
    min: 3,
    max: 7,
    env: 'IMPULSE_FAILOVER_REPLICAS_PER_GROUP',
  }),
  engine: option.enum({
    description: 'Storage engine of every replica.',
    default: 'leveldb',
    choices: ['leveldb', 'memory'],
    env: 'IMPULSE_FAILOVER_ENGINE',
  }),
  probeInterval: option.milliseconds({
    description:
      'After the kill, a new write through the gateway to each group the node led, every this often, until one succeeds (writes overlap: one held by the gateway does not delay the next).',
    default: 100,
    min: 10,
    max: 10_000,
    env: 'IMPULSE_FAILOVER_PROBE_INTERVAL',
  }),
  writeTimeout: option.milliseconds({
    description: 'How long one write through the gateway may take before it counts as failed.',
    default: 5000,
    min: 1,
    max: 60_000,
    env: 'IMPULSE_FAILOVER_WRITE_TIMEOUT',
  }),
  roundTimeout: option.milliseconds({
    description:
      'How long the failovers of one round may take in all; what is left then counts as unfinished.',
    default: 30_000,
    min: 100,
    max: 600_000,
    env: 'IMPULSE_FAILOVER_ROUND_TIMEOUT',
  }),
  catchUpTimeout: option.milliseconds({
    description:
      'How long the restarted node may take to run every replica and apply what its leader committed.',
    default: 120_000,
    min: 100,
    max: 600_000,
    env: 'IMPULSE_FAILOVER_CATCH_UP_TIMEOUT',
  }),
  settle: option.milliseconds({
    description: 'Pause after the restarted node caught up, before the next round.',
    default: 2000,
    min: 0,
    max: 600_000,
    env: 'IMPULSE_FAILOVER_SETTLE',
  }),
  results: option.string({
    description: 'Directory under which the run writes <timestamp>-failover/result.json.',
    default: 'results',
    env: 'IMPULSE_FAILOVER_RESULTS',
  }),
};
