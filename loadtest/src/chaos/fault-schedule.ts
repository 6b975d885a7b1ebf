/**
 * The fault schedule of a chaos run, drawn from the seed alone before the run starts: which fault
 * comes when, in which group, held how long. The nemesis then plays it on the workload's clock.
 * Whatever can only be chosen against the cluster as it is at that moment (which replica leads,
 * which are running) is chosen with the fault's own `selectionSeed`, so that the same seed gives
 * the same faults at the same offsets, and the same choices wherever the cluster is in the same
 * state.
 *
 * The schedule has its own generator, separate from the clients' (`streamSeed`): how many
 * operations the clients happen to complete never shifts the faults.
 */
import { SeededRandom } from '../random.js';
import type { LinkFault } from './fault-network.js';

export const nemesisNames = ['kill', 'pause', 'partition', 'power', 'member'] as const;
export type NemesisName = (typeof nemesisNames)[number];
/** The nemeses of the fault track, one fault at a time (`member` has a track of its own). */
export const processFaultNames = ['kill', 'pause', 'partition', 'power'] as const;
export type ProcessFaultName = (typeof processFaultNames)[number];

export type KillMode = 'random replica' | 'leader' | 'majority';
export type PauseMode = 'random replica' | 'leader';
export type PartitionMode = 'isolated leader' | 'halves' | 'one-way' | 'slow links';
/**
 * Whose power is cut: one replica, a minority (floor((n - 1) / 2) of n, at least one), the leader,
 * or every replica of the group at once (acknowledged writes must survive even that).
 */
export type PowerMode = 'one replica' | 'minority' | 'leader' | 'whole group';

export type PlannedFault =
  | (PlannedCommon & { readonly nemesis: 'kill'; readonly mode: KillMode })
  | (PlannedCommon & { readonly nemesis: 'pause'; readonly mode: PauseMode })
  | (PlannedCommon & { readonly nemesis: 'power'; readonly mode: PowerMode })
  | (PlannedCommon & {
      readonly nemesis: 'partition';
      readonly mode: PartitionMode;
      /** The link fault, for every mode but `slow links` (which delays). */
      readonly linkFault: LinkFault;
    });

interface PlannedCommon {
  /** When the fault is due, in seconds since the workload started. */
  readonly atSeconds: number;
  /** How long it is held once it took effect, in seconds. */
  readonly holdSeconds: number;
  readonly group: string;
  /** Seeds the choices made against the cluster's state at that moment (victims, sides). */
  readonly selectionSeed: number;
}

export interface PlannedReplacement {
  readonly atSeconds: number;
  readonly group: string;
  readonly selectionSeed: number;
}

export interface FaultSchedule {
  /** Kills, pauses, partitions and power cuts, one at a time, in order. */
  readonly faults: readonly PlannedFault[];
  /** Replica replacements (the `member` nemesis), on a track of their own. */
  readonly replacements: readonly PlannedReplacement[];
}

export interface FaultScheduleOptions {
  readonly seed: number;
  /** Seconds of workload: nothing is scheduled at or after this. */
  readonly timeSeconds: number;
  readonly enabled: ReadonlySet<NemesisName>;
  /** Group ids (`g1`, `g2`, ...). */
  readonly groups: readonly string[];
  /** How long a kill, a partition or a power cut is held, in seconds (uniform between the two). */
  readonly faultSecondsMin: number;
  readonly faultSecondsMax: number;
  /**
   * Pauses are held either short, under the gateway's per-attempt timeout (the gateway waits on the
   * paused leader and the lease is still valid when it resumes), or long, several election
   * timeouts (the group elects a new leader while the old one is stopped, and the old one resumes
   * believing it leads): half of each, uniform within each range.
   */
  readonly pauseShortSecondsMin: number;
  readonly pauseShortSecondsMax: number;
  readonly pauseLongSecondsMin: number;
  readonly pauseLongSecondsMax: number;
  /** Quiet time between two faults, in seconds. */
  readonly quietSecondsMin: number;
  readonly quietSecondsMax: number;
  /** Time between two replica replacements, in seconds. */
  readonly memberIntervalSecondsMin: number;
  readonly memberIntervalSecondsMax: number;
}

/** Random streams derived from one run seed: the schedule's and each client's. */
export const scheduleStream = 0;
export const clientStream = (client: number): number => 1 + client;

/** The seed of one random stream of a run: distinct streams of one seed never coincide. */
export function streamSeed(seed: number, stream: number): number {
  // SeededRandom spreads its seed with splitmix32; a distinct odd multiple per stream keeps streams apart.
  return (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
}

/** The schedule of a run: a pure function of its options, the seed above all. */
export function planFaultSchedule(options: FaultScheduleOptions): FaultSchedule {
  const random = new SeededRandom(streamSeed(options.seed, scheduleStream));
  const draw = (): number => random.nextDouble();
  const between = (min: number, max: number): number => min + draw() * (max - min);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(draw() * items.length)] as T;

  const faults: PlannedFault[] = [];
  const names = processFaultNames.filter((name) => options.enabled.has(name));
  let atSeconds = 0;
  // Rounds of every enabled kind in a random order: a short run still sees each kind of fault.
  let round: ProcessFaultName[] = [];
  while (names.length > 0) {
    atSeconds += between(options.quietSecondsMin, options.quietSecondsMax);
    if (atSeconds >= options.timeSeconds) break;
    if (round.length === 0) round = shuffle(names, draw);
    const nemesis = round.pop() as ProcessFaultName;
    const group = pick(options.groups);
    const selectionSeed = random.nextUint32();
    let fault: PlannedFault;
    if (nemesis === 'kill') {
      const mode = pick<KillMode>(['random replica', 'leader', 'majority']);
      const holdSeconds = between(options.faultSecondsMin, options.faultSecondsMax);
      fault = { nemesis, mode, atSeconds, holdSeconds, group, selectionSeed };
    } else if (nemesis === 'pause') {
      const mode = pick<PauseMode>(['random replica', 'leader']);
      const holdSeconds =
        draw() < 0.5
          ? between(options.pauseShortSecondsMin, options.pauseShortSecondsMax)
          : between(options.pauseLongSecondsMin, options.pauseLongSecondsMax);
      fault = { nemesis, mode, atSeconds, holdSeconds, group, selectionSeed };
    } else if (nemesis === 'power') {
      const mode = pick<PowerMode>(['one replica', 'minority', 'leader', 'whole group']);
      const holdSeconds = between(options.faultSecondsMin, options.faultSecondsMax);
      fault = { nemesis, mode, atSeconds, holdSeconds, group, selectionSeed };
    } else {
      const linkFault = pick<LinkFault>([{ kind: 'blackhole' }, { kind: 'stall' }, { kind: 'reset' }]);
      const mode = pick<PartitionMode>(['isolated leader', 'halves', 'one-way', 'slow links']);
      const holdSeconds = between(options.faultSecondsMin, options.faultSecondsMax);
      const delayMs = 20 + Math.floor(draw() * 180);
      fault = {
        nemesis,
        mode,
        atSeconds,
        holdSeconds,
        group,
        selectionSeed,
        linkFault:
          mode === 'slow links' ? { kind: 'delay', delayMs, jitterMs: Math.floor(delayMs / 2) } : linkFault,
      };
    }
    faults.push(fault);
    atSeconds += fault.holdSeconds;
  }

  const replacements: PlannedReplacement[] = [];
  if (options.enabled.has('member')) {
    let memberAtSeconds = 0;
    for (;;) {
      memberAtSeconds += between(options.memberIntervalSecondsMin, options.memberIntervalSecondsMax);
      if (memberAtSeconds >= options.timeSeconds) break;
      replacements.push({
        atSeconds: memberAtSeconds,
        group: pick(options.groups),
        selectionSeed: random.nextUint32(),
      });
    }
  }
  return { faults, replacements };
}

/** One line per planned fault, for logs and dry runs. */
export function describePlannedFault(fault: PlannedFault): string {
  const head = `${fault.atSeconds.toFixed(1)} s: ${fault.nemesis} ${fault.mode} of ${fault.group} for ${fault.holdSeconds.toFixed(1)} s`;
  return fault.nemesis === 'partition' ? `${head} (${describeLinkFault(fault.linkFault)})` : head;
}

export function describeLinkFault(fault: LinkFault): string {
  return fault.kind === 'delay' ? `delay ${fault.delayMs} ms ± ${fault.jitterMs ?? 0} ms` : fault.kind;
}

export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    [copy[index], copy[other]] = [copy[other] as T, copy[index] as T];
  }
  return copy;
}
