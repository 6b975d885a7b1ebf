/**
 * Mutation testing of the node simulator (docs/raft.md, "The node simulator's mutants"): each
 * mutant plants one known bug in the production host's stack, in the core (`Config.mutants`,
 * through the host's test hook) or in the coalescer (`coalescerMutants`, in the simulated node
 * transport), and runs under the targeted schedule that exposes it (`targeted-schedules.ts`). The
 * simulator must catch it, by the check expected, within `nodeMutantSeedsMax` seeds; a catch
 * counts only if the same seed without the bug runs clean (the control run), so that it is the
 * bug that was caught and not a flaw of the simulator or of the schedule.
 *
 * `npm run sim:mutants -- --node` runs them; so does
 * `shard-node/test/raft-sim/node/mutants.test.ts` in `npm test`.
 */
import { performance } from 'node:perf_hooks';

import type { RaftMutant } from '../../raft/index.js';
import type { CoalescerMutant } from '../../transport/index.js';
import { runNodeSimulation, type NodeSimulationOptions } from './node-simulation.js';
import type { SimPlant } from './sim-node.js';

/** The first seed every node mutant is run from. */
export const nodeMutantFirstSeed = 1;
/**
 * The bound: every node mutant must be caught within this many seeds. Each catches on at least
 * one seed in two (measured over 100 seeds; docs/raft.md), so that a change that merely reshuffles
 * the seeds keeps every one of them inside the bound with near certainty.
 */
export const nodeMutantSeedsMax = 10;

export type NodeMutant = RaftMutant | CoalescerMutant;

/** The check that reported a problem of a node simulation (the prefix of its line). */
export type ProblemKind =
  | 'election-safety'
  | 'check-quorum'
  | 'replica-failed'
  | 'linearizability'
  | 'convergence'
  | 'liveness'
  | 'callback-threw'
  | 'other';

export function problemKind(problem: string): ProblemKind {
  if (problem.startsWith('election safety:')) return 'election-safety';
  if (problem.startsWith('check-quorum:')) return 'check-quorum';
  if (/^replica \S+ failed:/.test(problem)) return 'replica-failed';
  if (problem.startsWith('not linearizable:')) return 'linearizability';
  if (problem.startsWith('convergence:')) return 'convergence';
  if (problem.startsWith('liveness:')) return 'liveness';
  if (problem.startsWith('a simulated callback threw:')) return 'callback-threw';
  return 'other';
}

export interface NodeMutantSpec {
  readonly mutant: NodeMutant;
  readonly plant: SimPlant;
  /** The rule of Raft, or of the coalescer's safety argument, that the mutant breaks. */
  readonly breaks: string;
  /** The simulation each seed runs (the plant is added to it). */
  readonly simulation: Omit<NodeSimulationOptions, 'seed' | 'plant' | 'trace'>;
  /** The checks expected to catch it: the first problem of the catching seed must be one of them. */
  readonly caughtBy: readonly ProblemKind[];
}

/** No random faults and no moves: only the targeted schedule acts. */
const noRandomFaults: NodeSimulationOptions['faults'] = {
  partitions: false,
  linkFaults: false,
  pauses: false,
  crashes: false,
  powerCuts: false,
  moves: false,
};

export const nodeMutantSpecs: readonly NodeMutantSpec[] = [
  {
    mutant: 'commit-earlier-term',
    plant: { core: 'commit-earlier-term' },
    breaks:
      'a leader commits an entry of an earlier term only through an entry of its own term (Raft §5.4.2, Figure 8)',
    simulation: {
      nodes: 3,
      groups: 1,
      durationMs: 3_000,
      faults: noRandomFaults,
      schedule: 'figure8',
      // Clients stuck on a killed leader give up soon, so that the next leaders take writes too.
      clients: { clientsPerGroup: 6, operationDeadlineMs: 500 },
    },
    // The entry the mutant committed is overwritten by a leader of a later term. A replica that
    // had learned it committed then refuses that leader's log for good (it rejects every append
    // below its commit index): the group's replicas never converge, or the group stops serving.
    // Or the core's own assertion stops it ("conflicts with committed entry"), or a read saw the
    // entry and a later one does not.
    caughtBy: ['convergence', 'liveness', 'replica-failed', 'callback-threw', 'linearizability'],
  },
  {
    mutant: 'no-check-quorum-step-down',
    plant: { core: 'no-check-quorum-step-down' },
    breaks: 'a leader that heard from no quorum for an election timeout steps down (thesis §6.2)',
    simulation: {
      nodes: 3,
      groups: 1,
      durationMs: 2_000,
      faults: noRandomFaults,
      schedule: 'isolated-leaders',
    },
    caughtBy: ['check-quorum'],
  },
  {
    mutant: 'node-acknowledges-heartbeats',
    plant: { coalescer: 'node-acknowledges-heartbeats' },
    breaks:
      "the transport never makes a heartbeat response: the addressed replica's core does, in its own term (decision 0013, rule 2)",
    simulation: {
      nodes: 3,
      groups: 1,
      durationMs: 3_000,
      faults: noRandomFaults,
      schedule: 'deposed-leader-reads',
      coalesceHeartbeats: true,
    },
    caughtBy: ['linearizability'],
  },
];

export interface NodeMutantHunt {
  readonly mutant: NodeMutant;
  /** Seeds run with the mutant, the catching one included. */
  readonly seedsRun: number;
  readonly elapsedMs: number;
  /** The first seed whose run reported a problem, and its first problem; or none. */
  readonly caught?: { readonly seed: number; readonly problem: string; readonly kind: ProblemKind };
  /** The problems of the same seed without the mutant (must be none). */
  readonly controlProblems: readonly string[];
}

/** One seed of `spec`, with its bug planted or (the control) without it. */
export function runNodeMutantSeed(
  spec: NodeMutantSpec,
  seed: number,
  planted: boolean,
  trace?: (line: string) => void,
): ReturnType<typeof runNodeSimulation> {
  return runNodeSimulation({
    ...spec.simulation,
    seed,
    ...(planted ? { plant: spec.plant } : {}),
    ...(trace === undefined ? {} : { trace }),
  });
}

/**
 * Runs `spec` on seeds from `firstSeed` until one reports a problem (at most `seedsMax`), then runs
 * that seed again without the mutant.
 */
export async function huntNodeMutant(
  spec: NodeMutantSpec,
  seedsMax: number = nodeMutantSeedsMax,
  firstSeed: number = nodeMutantFirstSeed,
): Promise<NodeMutantHunt> {
  const startMs = performance.now();
  for (let offset = 0; offset < seedsMax; offset += 1) {
    const seed = firstSeed + offset;
    const run = await runNodeMutantSeed(spec, seed, true);
    const problem = run.problems[0];
    if (problem === undefined) continue;
    const elapsedMs = performance.now() - startMs;
    const control = await runNodeMutantSeed(spec, seed, false);
    return {
      mutant: spec.mutant,
      seedsRun: offset + 1,
      elapsedMs,
      caught: { seed, problem, kind: problemKind(problem) },
      controlProblems: control.problems,
    };
  }
  return {
    mutant: spec.mutant,
    seedsRun: seedsMax,
    elapsedMs: performance.now() - startMs,
    controlProblems: [],
  };
}

/** Why a hunt does not count as a catch, or undefined when it does. */
export function nodeHuntFailure(spec: NodeMutantSpec, hunt: NodeMutantHunt): string | undefined {
  if (hunt.caught === undefined) return `not caught within ${hunt.seedsRun} seeds`;
  if (!spec.caughtBy.includes(hunt.caught.kind)) {
    return `caught by ${hunt.caught.kind} (${hunt.caught.problem.split('\n')[0]}), expected one of ${spec.caughtBy.join(', ')}`;
  }
  if (hunt.controlProblems.length > 0) {
    return `seed ${hunt.caught.seed} fails without the mutant too (${hunt.controlProblems[0]!.split('\n')[0]})`;
  }
  return undefined;
}
