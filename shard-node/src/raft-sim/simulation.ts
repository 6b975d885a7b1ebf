/**
 * One seeded simulation: builds a cluster, runs clients against it under faults, then heals every
 * fault and checks liveness, and finally checks the client history for linearizability. The run
 * is a pure function of its options: the same seed gives the same result, tick for tick.
 */
import { isRaftMutant, silentLogger, type Logger, type RaftMutant } from '../raft/index.js';
import { SimCluster, attempt } from './cluster.js';
import type { HistoryChecker } from './history-checker.js';
import type { Violation } from './invariants.js';
import { encodeCommand } from './kv-state-machine.js';
import { allFaults, Nemesis, type NemesisOptions } from './nemesis.js';
import type { NetworkFaults } from './network.js';
import { Prng } from './prng.js';
import { Workload, type WorkloadOptions } from './workload.js';

export interface SimulationOptions {
  readonly seed: number;
  /** Voters at start: 3 or 5. */
  readonly replicas: number;
  /** Ticks with faults and clients; then faults heal and liveness is checked. */
  readonly ticks: number;
  /** Ticks allowed, after healing, to elect a leader and commit a new proposal. */
  readonly livenessTicksMax?: number;
  readonly faults?: NemesisOptions;
  /** Checks the client history; without one the run skips the linearizability check. */
  readonly checkHistory?: HistoryChecker;
  readonly logger?: Logger;
  /**
   * Serve ReadIndex reads under a leader lease (with CheckQuorum) instead of a heartbeat round.
   * Off by default: leases assume bounded clock drift, which the simulator does not vary.
   */
  readonly leaseReads?: boolean;
  /** Called with the cluster when the run ends, to inspect it (debugging, tests). */
  readonly inspect?: (cluster: SimCluster) => void;
  /** Test-only: a host that breaks the Ready ordering rule (see `ReplicaOptions`). */
  readonly unsafeSendBeforePersist?: boolean;
  /** Test-only, deliberately wrong: serve reads from the asked replica's state, no ReadIndex. */
  readonly unsafeLocalReads?: boolean;
  /** Forces CheckQuorum on or off; by default it is drawn per seed (on with lease reads). */
  readonly checkQuorum?: boolean;
  /** Forces PreVote on or off; by default it is drawn per seed. */
  readonly preVote?: boolean;
  /** Forces the network's losses and delays; by default a profile is drawn per seed. */
  readonly network?: NetworkFaults;
  /** Forces parts of the client workload; by default each is drawn per seed. */
  readonly workload?: Partial<Pick<WorkloadOptions, 'clientCount' | 'keys' | 'issueProbability'>>;
  /** Test-only: one planted bug, of the core or of the simulated host (`mutants.ts`). */
  readonly mutant?: SimMutant;
}

/** The simulated host's own planted bug: see `ReplicaOptions.ackBeforePersist`. */
export const hostMutants = ['ack-before-persist'] as const;
export type HostMutant = (typeof hostMutants)[number];
/** A planted bug of the core (`raft/mutants.ts`) or of the simulated host. */
export type SimMutant = RaftMutant | HostMutant;

export interface SimulationResult {
  readonly seed: number;
  readonly replicas: number;
  readonly ticks: number;
  readonly violations: readonly Violation[];
  readonly operationsInvoked: number;
  readonly operationsOk: number;
  readonly commandsCommitted: number;
  readonly linearizability: 'linearizable' | 'not-linearizable' | 'unknown' | 'skipped';
  readonly faults: Readonly<Record<string, number>>;
}

const electionTimeoutTicks = 10;
const defaultLivenessTicksMax = 30 * electionTimeoutTicks;
/** Search budget per key for the history check; 'unknown' is reported, never a pass. */
const historyStepsPerKeyMax = 2_000_000;

const networkProfiles: readonly NetworkFaults[] = [
  { dropProbability: 0, duplicateProbability: 0, delayTicksMax: 1 },
  { dropProbability: 0.02, duplicateProbability: 0.02, delayTicksMax: 3 },
  { dropProbability: 0.05, duplicateProbability: 0.05, delayTicksMax: 5 },
  { dropProbability: 0.15, duplicateProbability: 0.1, delayTicksMax: 8 },
];

export function runSimulation(options: SimulationOptions): SimulationResult {
  const prng = new Prng(options.seed);
  const drawnPreVote = prng.chance(0.5);
  const preVote = options.preVote ?? drawnPreVote;
  const checkQuorum = options.leaseReads === true || (options.checkQuorum ?? prng.chance(0.5));
  const mutant = options.mutant;
  const voters = Array.from({ length: options.replicas }, (_, index) => index + 1);
  const cluster = new SimCluster(
    prng,
    {
      electionTimeoutTicks,
      heartbeatTicks: 1,
      snapshotEveryEntries: prng.between(5, 40),
      entriesKeptAfterCompaction: prng.between(0, 5),
      preVote,
      checkQuorum,
      readOnlyOption: options.leaseReads === true ? 'leaseBased' : 'safe',
      maxSizePerMessageBytes: prng.pick([0, 256, 1024 * 1024]),
      maxInflightMessages: prng.pick([1, 4, 256]),
      maxUncommittedEntriesBytes: prng.pick([1024, 4096]),
      ...(options.unsafeSendBeforePersist === true ? { unsafeSendBeforePersist: true } : {}),
      ...(mutant === 'ack-before-persist' ? { ackBeforePersist: true } : {}),
      ...(mutant !== undefined && isRaftMutant(mutant) ? { mutants: [mutant] } : {}),
    },
    voters,
    options.logger ?? silentLogger,
  );
  let requestId = 0;
  const nextRequestId = (): number => (requestId += 1);
  const drawnWorkload: WorkloadOptions = {
    clientCount: prng.between(2, 6),
    keys: ['a', 'b', 'c', 'd'].slice(0, prng.between(1, 4)),
    requestTimeoutTicks: prng.between(15, 60),
    issueProbability: prng.pick([0.1, 0.3, 0.8]),
    readIndexShare: 0.7,
  };
  const workload = new Workload(prng, { ...drawnWorkload, ...options.workload }, nextRequestId);
  cluster.workload = workload;
  cluster.unsafeLocalReads = options.unsafeLocalReads === true;
  const drawnNetwork = prng.pick(networkProfiles);
  cluster.network.faults = options.network ?? drawnNetwork;
  const nemesis = new Nemesis(prng, cluster, options.faults ?? allFaults, options.replicas + 1);

  const finish = (linearizability: SimulationResult['linearizability']): SimulationResult => ({
    seed: options.seed,
    replicas: options.replicas,
    ticks: cluster.nowTick,
    violations: cluster.monitor.violations,
    operationsInvoked: workload.operationsInvoked,
    operationsOk: workload.operationsOk,
    commandsCommitted: cluster.commandsCommitted,
    linearizability,
    faults: { ...nemesis.counters, ...cluster.network.counters },
  });

  try {
    for (let tick = 0; tick < options.ticks; tick += 1) {
      nemesis.step(cluster.nowTick + 1);
      cluster.runTick();
    }
    workload.stop();
    nemesis.healAll();
    checkLiveness(cluster, nemesis, nextRequestId, options.livenessTicksMax ?? defaultLivenessTicksMax);
    cluster.checkLogMatching();
  } catch (error: unknown) {
    cluster.monitor.record({
      invariant: 'exception',
      tick: cluster.nowTick,
      detail: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
    return finish('skipped');
  }

  options.inspect?.(cluster);
  if (options.checkHistory === undefined) return finish('skipped');
  const check = options.checkHistory(workload.history, { stepsPerKeyMax: historyStepsPerKeyMax });
  if (check.result !== 'linearizable') {
    cluster.monitor.record({
      invariant: 'linearizability',
      tick: cluster.nowTick,
      detail:
        check.result === 'unknown'
          ? 'history check ran out of budget'
          : `key ${check.counterexample?.key}: ${JSON.stringify(check.counterexample?.operations)}`,
    });
  }
  return finish(check.result);
}

/**
 * After every fault has healed, a leader must be elected and a new proposal committed within
 * `ticksMax` ticks. A probe is proposed to each leader (and term) seen; any probe applied by its
 * leader counts.
 */
function checkLiveness(
  cluster: SimCluster,
  nemesis: Nemesis,
  nextRequestId: () => number,
  ticksMax: number,
): void {
  const probes: { leaderId: number; term: number; requestId: number }[] = [];
  const startTick = cluster.nowTick;
  while (cluster.nowTick - startTick < ticksMax) {
    nemesis.step(cluster.nowTick + 1);
    cluster.runTick();
    const leader = cluster.leader();
    if (leader === undefined) continue;
    if (probes.some((probe) => cluster.replicas.get(probe.leaderId)?.machine.hasApplied(probe.requestId)))
      return;
    const term = leader.node!.raft.term;
    if (!probes.some((probe) => probe.leaderId === leader.id && probe.term === term)) {
      const requestId = nextRequestId();
      if (attempt(() => leader.node!.propose(encodeCommand({ requestId, op: 'noop' })))) {
        probes.push({ leaderId: leader.id, term, requestId });
      }
    }
  }
  cluster.monitor.record({
    invariant: 'liveness',
    tick: cluster.nowTick,
    detail: `no leader committed a new proposal within ${ticksMax} ticks after faults healed (leader: ${cluster.leader()?.id ?? 'none'})`,
  });
}
