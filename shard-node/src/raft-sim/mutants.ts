/**
 * Mutation testing of the simulator: each mutant plants one known bug (in the core, see
 * `../raft/mutants.ts`, or in the simulated host), and the simulator must catch it, as an
 * invariant violation, within a bounded number of seeds. A catch counts only if the same seed
 * without the mutant runs clean (the control run), so that it is the mutant that was caught and
 * not a flaw of the simulator or of the schedule.
 *
 * Each mutant runs under the schedule that exposes it: the random faults for most, a targeted
 * schedule where random faults seldom produce the run that matters (Figure 8 rounds for the
 * commit rule, stale-leader rounds for the lease). `npm run sim:mutants` runs them all; so does
 * `shard-node/test/raft-sim/mutants.test.ts` in `npm test`.
 */
import { performance } from 'node:perf_hooks';

import type { HistoryChecker } from './history-checker.js';
import type { Violation } from './invariants.js';
import type { NemesisOptions } from './nemesis.js';
import { runSimulation, type SimMutant, type SimulationOptions } from './simulation.js';

/** The first seed every mutant is run from. */
export const mutantFirstSeed = 1;
/**
 * The bound: every mutant must be caught within this many seeds (seeds 1 to 40). Each catches on
 * at least one seed in five (measured over 200 seeds; docs/raft.md), so a change to the
 * simulator that merely reshuffles the seeds keeps every mutant well inside the bound.
 */
export const mutantSeedsMax = 40;

export type Invariant = Violation['invariant'];

export interface MutantSpec {
  readonly mutant: SimMutant;
  /** The rule of Raft, or of the host contract, that the mutant breaks. */
  readonly breaks: string;
  /** The simulation each seed runs (the mutant is added to it). */
  readonly simulation: Omit<SimulationOptions, 'seed' | 'mutant' | 'checkHistory'>;
  /** The invariants expected to catch it: a catch by any other one is a failure of the run. */
  readonly caughtBy: readonly Invariant[];
}

const noRandomFaults: NemesisOptions = {
  crashes: false,
  partitions: false,
  transfers: false,
  membershipChanges: false,
};

/** Every invariant that a lost committed entry can break first (or the core's own assertion). */
const lostEntryInvariants: readonly Invariant[] = [
  'committed-entry-lost',
  'leader-completeness',
  'state-machine-safety',
  'log-matching',
  'linearizability',
];

export const mutantSpecs: readonly MutantSpec[] = [
  {
    mutant: 'commit-earlier-term',
    breaks:
      'a leader commits an entry of an earlier term only through an entry of its own term (Raft §5.4.2, Figure 8)',
    simulation: {
      replicas: 3,
      ticks: 1000,
      faults: { ...noRandomFaults, figure8: true, figure8RoundProbability: 0.1 },
    },
    caughtBy: lostEntryInvariants,
  },
  {
    mutant: 'leader-keeps-leading-on-higher-term',
    breaks: 'a node that sees a higher term becomes a follower of it (Raft §5.1)',
    simulation: { replicas: 3, ticks: 500 },
    caughtBy: ['election-safety', ...lostEntryInvariants],
  },
  {
    mutant: 'no-check-quorum-step-down',
    breaks: 'a leader that heard from no quorum for an election timeout steps down (thesis §6.2)',
    simulation: { replicas: 3, ticks: 500, checkQuorum: true },
    caughtBy: ['check-quorum'],
  },
  {
    mutant: 'two-votes-per-term',
    breaks: 'a node grants at most one vote per term (Raft §5.2)',
    simulation: { replicas: 3, ticks: 500 },
    caughtBy: ['election-safety', ...lostEntryInvariants],
  },
  {
    mutant: 'lease-without-fresh-quorum',
    breaks:
      'a lease read needs a quorum of acknowledgements of heartbeats sent less than an election timeout ago (raft README, "Lease reads")',
    simulation: {
      replicas: 3,
      ticks: 1000,
      leaseReads: true,
      // The fastest elections the rules allow, and clients busy on one key: a stale lease lives
      // only until CheckQuorum deposes its leader, so the new leader must commit writes before.
      preVote: false,
      network: { dropProbability: 0, duplicateProbability: 0, delayTicksMax: 1 },
      workload: { clientCount: 6, keys: ['a'], issueProbability: 0.8 },
      faults: { ...noRandomFaults, staleLeaders: true, staleLeaderProbability: 0.05 },
    },
    caughtBy: ['linearizability'],
  },
  {
    mutant: 'ack-before-persist',
    breaks: 'a replica acknowledges entries only once they are durable (the Ready contract)',
    simulation: {
      replicas: 3,
      ticks: 500,
      faults: { ...noRandomFaults, crashes: true, crashProbability: 0.1 },
    },
    // The crash that strikes between the early acknowledgement and the write shows at once
    // (acknowledged-entry-lost). Without that check, the follower is told by its leader to commit
    // beyond its log and the core's own assertion stops it ("was the log corrupted, truncated,
    // or lost?"), before any committed entry is overwritten.
    caughtBy: ['acknowledged-entry-lost'],
  },
];

export interface MutantHunt {
  readonly mutant: SimMutant;
  /** Seeds run with the mutant, the catching one included. */
  readonly seedsRun: number;
  readonly elapsedMs: number;
  /** The first seed whose run broke an invariant, and the first violation; or none. */
  readonly caught?: { readonly seed: number; readonly violation: Violation };
  /** The violations of the same seed without the mutant (must be none). */
  readonly controlViolations: readonly Violation[];
}

/**
 * Runs `spec` on seeds from `mutantFirstSeed` until one breaks an invariant (at most
 * `seedsMax`), then runs that seed again without the mutant.
 */
export function huntMutant(
  spec: MutantSpec,
  checkHistory: HistoryChecker,
  seedsMax: number = mutantSeedsMax,
): MutantHunt {
  const startMs = performance.now();
  for (let offset = 0; offset < seedsMax; offset += 1) {
    const seed = mutantFirstSeed + offset;
    const run = runSimulation({ ...spec.simulation, seed, checkHistory, mutant: spec.mutant });
    const violation = run.violations[0];
    if (violation === undefined) continue;
    const elapsedMs = performance.now() - startMs;
    const control = runSimulation({ ...spec.simulation, seed, checkHistory });
    return {
      mutant: spec.mutant,
      seedsRun: offset + 1,
      elapsedMs,
      caught: { seed, violation },
      controlViolations: control.violations,
    };
  }
  return {
    mutant: spec.mutant,
    seedsRun: seedsMax,
    elapsedMs: performance.now() - startMs,
    controlViolations: [],
  };
}

/** Why a hunt does not count as a catch, or undefined when it does. */
export function huntFailure(spec: MutantSpec, hunt: MutantHunt): string | undefined {
  if (hunt.caught === undefined) return `not caught within ${hunt.seedsRun} seeds`;
  if (!spec.caughtBy.includes(hunt.caught.violation.invariant)) {
    return `caught by ${hunt.caught.violation.invariant}, expected one of ${spec.caughtBy.join(', ')}`;
  }
  if (hunt.controlViolations.length > 0) {
    const first = hunt.controlViolations[0]!;
    return `seed ${hunt.caught.seed} fails without the mutant too (${first.invariant}: ${first.detail.split('\n')[0]})`;
  }
  return undefined;
}
