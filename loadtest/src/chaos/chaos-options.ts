import { option } from '@impulse/common';

export const chaosProgram = {
  name: 'npm run chaos --',
  summary:
    'starts a local cluster (nodes hosting many groups, or one process per replica) whose peer links go through a fault-injecting proxy, runs a register workload through the gateway while nemeses kill, pause, partition, cut the power of nodes (every replica on them) and replace replicas, then checks the history for linearizability and lost writes and writes a report',
};

/** The options of `npm run chaos`; environment variables are IMPULSE_CHAOS_*. */
export const chaosOptions = {
  time: option.integer({
    description: 'Seconds of workload under faults (the final heal, reads and check come after).',
    default: 60,
    min: 1,
    max: 86_400,
    env: 'IMPULSE_CHAOS_TIME',
  }),
  nemesis: option.string({
    description:
      'Comma-separated nemeses: kill, pause, partition, power, member (or all, or none). kill, pause, partition and power act on processes (nodes, with every replica on them, or replicas); power cuts their power (kill -9 and the loss of every write not fsynced) and needs /dev/fuse and fuse3. member replaces a replica, moving it to a node that does not host its group in the node shape (so it needs more --nodes than --replicas-per-group; all leaves it out otherwise).',
    default: 'all',
    env: 'IMPULSE_CHAOS_NEMESIS',
  }),
  seed: option.integer({
    description:
      'Seed of the fault schedule and of each client (separate streams): the same seed gives the same faults at the same offsets; 0 picks one (printed).',
    default: 0,
    min: 0,
    max: 2 ** 32 - 1,
    env: 'IMPULSE_CHAOS_SEED',
  }),
  clients: option.integer({
    description: 'Concurrent clients, each with one operation outstanding.',
    default: 16,
    min: 1,
    max: 200,
    env: 'IMPULSE_CHAOS_CLIENTS',
  }),
  keys: option.integer({
    description: 'Registers in use at once (small, so that operations collide).',
    default: 6,
    min: 1,
    max: 1000,
    env: 'IMPULSE_CHAOS_KEYS',
  }),
  operationsPerKey: option.integer({
    description: 'Operations one register receives before a fresh register replaces it.',
    default: 150,
    min: 1,
    max: 100_000,
    env: 'IMPULSE_CHAOS_OPERATIONS_PER_KEY',
  }),
  requestTimeout: option.milliseconds({
    description: 'A client gives up on a request after this; the operation is then indeterminate.',
    default: 5_000,
    min: 100,
    max: 600_000,
    env: 'IMPULSE_CHAOS_REQUEST_TIMEOUT',
  }),
  shape: option.enum({
    description:
      'What the processes are: nodes (the production shape: --nodes processes, each hosting a replica of many groups) or replicas (one process per replica, the shape before nodes).',
    default: 'nodes',
    choices: ['nodes', 'replicas'],
    env: 'IMPULSE_CHAOS_SHAPE',
  }),
  nodes: option.integer({
    description:
      'Node processes (--shape nodes); each group has a replica on --replicas-per-group of them. 4 by default, so that the member nemesis has a node to move a replica to.',
    default: 4,
    min: 1,
    max: 16,
    env: 'IMPULSE_CHAOS_NODES',
  }),
  groups: option.integer({
    description: 'Shard groups.',
    default: 3,
    min: 1,
    max: 16,
    env: 'IMPULSE_CHAOS_GROUPS',
  }),
  replicasPerGroup: option.integer({
    description: 'Replicas per group.',
    default: 3,
    min: 1,
    max: 7,
    env: 'IMPULSE_CHAOS_REPLICAS_PER_GROUP',
  }),
  readMode: option.enum({
    description:
      "The replicas' --read-mode: readindex (a heartbeat round per batch of reads) or lease (the leader's lease, which the pause nemesis puts to the test).",
    default: 'readindex',
    choices: ['readindex', 'lease'],
    env: 'IMPULSE_CHAOS_READ_MODE',
  }),
  results: option.string({
    description: 'Folder under which each run writes a folder named after its start time and seed.',
    default: 'results',
    env: 'IMPULSE_CHAOS_RESULTS',
  }),
  checkTimeBudget: option.milliseconds({
    description: 'Wall-clock budget of the linearizability check; past it, undecided keys are unknown.',
    default: 300_000,
    min: 1_000,
    max: 86_400_000,
    env: 'IMPULSE_CHAOS_CHECK_TIME_BUDGET',
  }),
  servingWindow: option.integer({
    description:
      'Liveness window, in seconds: once the grace after a fault has passed, every window this long without a kill, pause, partition or power cut must hold --serving-operations-min successful operations, or the run fails.',
    default: 5,
    min: 1,
    max: 3_600,
    env: 'IMPULSE_CHAOS_SERVING_WINDOW',
  }),
  servingGrace: option.integer({
    description:
      'Seconds after a fault heals before the liveness windows start (a restart and an election); the run ends with this grace and one window without faults.',
    default: 5,
    min: 0,
    max: 3_600,
    env: 'IMPULSE_CHAOS_SERVING_GRACE',
  }),
  servingOperationsMin: option.integer({
    description:
      'Successful operations required in every fault-free liveness window (0 turns the check off).',
    default: 20,
    min: 0,
    max: 1_000_000,
    env: 'IMPULSE_CHAOS_SERVING_OPERATIONS_MIN',
  }),
  dryRun: option.boolean({
    description:
      'Print the fault schedule the seed gives (JSON, one fault a line) and exit without starting anything.',
    default: false,
    env: 'IMPULSE_CHAOS_DRY_RUN',
  }),
  keepData: option.boolean({
    description:
      "Keep the replicas' data directories after a run that passed (failed runs always keep them).",
    default: false,
    env: 'IMPULSE_CHAOS_KEEP_DATA',
  }),
};
