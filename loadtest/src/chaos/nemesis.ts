/**
 * The nemeses of a chaos run on the local process cluster: kill -9 and restart, SIGSTOP and
 * SIGCONT, network partitions on the peer links (through the fault-injecting proxy every process's
 * advertised peer address points at), power cuts (kill -9 and the loss of every write not yet
 * fsynced, through the processes' power-loss file systems), and replacing a replica by a
 * membership change while the other faults go on.
 *
 * Faults act on processes (`chaos-cluster.ts`): in the node shape a process is a node, and a fault
 * aimed at a group's leader or members takes down, stops, cuts off or powers off the nodes that
 * host them, with every replica of every other group on them.
 *
 * The nemesis plays a schedule drawn from the seed beforehand (fault-schedule.ts) on the
 * workload's clock. A fault is recorded when it took effect (the processes killed, the process
 * stopped, the link faults set, the unsynced data dropped) and ends when it is healed (the
 * processes restarted and ready, the process continued, the links cleared). A nemesis action that fails is an error of the run
 * (`errors`), never only a log line: a run whose faults did not happen as planned proves nothing.
 */
import { PowerCutError, type PowerCut } from '@impulse/local-cluster';
import { SeededRandom } from '../random.js';
import type { ChaosCluster, GroupReplica, Membership } from './chaos-cluster.js';
import type { FaultNetwork, LinkFault } from './fault-network.js';
import {
  describeLinkFault,
  shuffle,
  type FaultSchedule,
  type NemesisName,
  type PlannedFault,
  type PlannedReplacement,
} from './fault-schedule.js';

export { nemesisNames, type NemesisName } from './fault-schedule.js';

export interface FaultRecord {
  readonly nemesis: NemesisName;
  readonly description: string;
  /** When the schedule had it due (seconds since the workload started). */
  readonly plannedSeconds: number;
  /** When it took effect. */
  readonly startSeconds: number;
  /** When it was healed; undefined while it lasts. */
  endSeconds: number | undefined;
  /** A power cut's losses, by process (replica or node): what each one's file system dropped. */
  readonly powerCuts?: Readonly<Record<string, PowerCut>>;
}

export interface NemesisOptions {
  readonly schedule: FaultSchedule;
  /** Seconds since the run started, on the workload's clock. */
  readonly nowSeconds: () => number;
  readonly log: (line: string) => void;
}

const membershipStepTimeoutMs = 30_000;
/**
 * How long a whole-group power cut waits for a replacement in its group to finish (a replacement's
 * steps are retried for up to `membershipStepTimeoutMs` each, but usually take a few seconds).
 */
const replacementWaitSecondsMax = 30;

/**
 * Plays the schedule until `stop()`, then heals everything: partitions cleared, paused processes
 * continued, killed ones restarted.
 */
export class Nemesis {
  /** Every fault that took effect, with its real start and end. */
  readonly faults: FaultRecord[] = [];
  /** Nemesis actions that failed (a kill, a restart, a membership step that gave up...). */
  readonly errors: string[] = [];
  private running = true;
  private readonly tracks: Array<Promise<void>> = [];
  /** Processes a membership change is working with: the other track leaves them alone. */
  private readonly busy = new Set<string>();
  private readonly killed = new Set<string>();
  private readonly paused = new Set<string>();
  /** The replicas the gateway was started with: it finds the others only from leader hints. */
  private readonly founders: ReadonlySet<string>;
  /** Wakes every `idle` in progress when the run stops. */
  private readonly sleepers = new Set<() => void>();
  /**
   * The choices made against the cluster's state of the moment, from the selection seed of the
   * fault (or replacement) in progress on each track.
   */
  private random: () => number = () => 0;
  private memberRandom: () => number = () => 0;

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly network: FaultNetwork,
    private readonly options: NemesisOptions,
  ) {
    this.founders = new Set(
      cluster.groupIds.flatMap((groupId) =>
        cluster.membership.replicasOf(groupId).map((replica) => replica.replicaId),
      ),
    );
  }

  start(): void {
    if (this.options.schedule.faults.length > 0) this.tracks.push(this.faultTrack());
    if (this.options.schedule.replacements.length > 0) {
      this.tracks.push(this.memberTrack(this.cluster.membership));
    }
  }

  /** Ends both tracks (a fault in progress is healed at once) and heals the cluster. */
  async stop(): Promise<void> {
    this.running = false;
    for (const wake of this.sleepers) wake();
    await Promise.all(this.tracks);
    await this.healAll().catch((error: unknown) => this.fail('final heal', error));
  }

  get faultCount(): number {
    return this.faults.length;
  }

  private async faultTrack(): Promise<void> {
    for (const planned of this.options.schedule.faults) {
      await this.idleUntil(planned.atSeconds);
      if (!this.running) return;
      const selection = new SeededRandom(planned.selectionSeed);
      this.random = () => selection.nextDouble();
      try {
        if (planned.nemesis === 'kill') await this.killFault(planned);
        else if (planned.nemesis === 'pause') await this.pauseFault(planned);
        else if (planned.nemesis === 'power') await this.powerFault(planned);
        else await this.partitionFault(planned);
      } catch (error) {
        this.fail(`${planned.nemesis} ${planned.mode} of ${planned.group}`, error);
        await this.healAll().catch((healError: unknown) => this.fail('heal', healError));
      }
    }
  }

  private async memberTrack(membership: Membership): Promise<void> {
    for (const planned of this.options.schedule.replacements) {
      await this.idleUntil(planned.atSeconds);
      if (!this.running) return;
      const selection = new SeededRandom(planned.selectionSeed);
      this.memberRandom = () => selection.nextDouble();
      try {
        await this.replaceReplica(membership, planned);
      } catch (error) {
        this.fail(`member replacement in ${planned.group}`, error);
      }
    }
  }

  private fail(action: string, error: unknown): void {
    const message = `nemesis: ${action} failed at ${this.options.nowSeconds().toFixed(1)} s: ${(error as Error).message}`;
    this.errors.push(message);
    this.options.log(message);
  }

  private async killFault(planned: PlannedFault & { nemesis: 'kill' }): Promise<void> {
    const { group, mode } = planned;
    const candidates = this.available(group);
    if (candidates.length === 0) return this.skip(planned, 'no process available');
    let victims: string[];
    if (mode === 'majority') {
      const size = Math.floor(this.cluster.hostsOf(group).length / 2) + 1;
      victims = shuffle(candidates, this.random).slice(0, size);
    } else if (mode === 'leader') {
      victims = [await this.leaderOr(group, candidates)];
    } else {
      victims = [this.pick(candidates)];
    }
    // A replacement may have started while the leader was looked up: leave its processes alone.
    const names = victims.filter((name) => !this.busy.has(name));
    if (names.length === 0) return this.skip(planned, 'its processes are being replaced');
    // `kill` refuses a process that is not running, and only a process this fault killed is
    // restarted: one that died on its own stays down (and fails the run as an unexpected exit).
    await Promise.all(
      names.map(async (name) => {
        await this.cluster.kill(name);
        this.killed.add(name);
      }),
    );
    const fault = this.begin(planned, `kill -9 ${this.describeProcesses(names)} (${mode} of ${group})`);
    await this.idle(planned.holdSeconds);
    await this.restartKilled();
    this.end(fault);
  }

  /**
   * Cuts the power of processes hosting a group: they are killed and lose whatever they had not
   * made durable, then held down and restarted on what their disks kept. The victims stay in
   * `killed` until restarted, so that `stop()` brings them back whatever happens.
   */
  private async powerFault(planned: PlannedFault & { nemesis: 'power' }): Promise<void> {
    const { group, mode } = planned;
    // A whole-group cut must take every member: it lets a replacement in the group finish first.
    if (mode === 'whole group') {
      await this.waitForReplacementIn(group);
      if (!this.running) return;
    }
    const candidates = this.available(group);
    if (candidates.length === 0) return this.skip(planned, 'no process available');
    const members = this.cluster.hostsOf(group);
    let victims: string[];
    if (mode === 'whole group') {
      // Every member, unless a replacement outlasted the wait: its processes are spared, and named.
      victims = candidates;
    } else if (mode === 'minority') {
      const size = Math.max(1, Math.floor((members.length - 1) / 2));
      victims = shuffle(candidates, this.random).slice(0, size);
    } else if (mode === 'leader') {
      victims = [await this.leaderOr(group, candidates)];
    } else {
      victims = [this.pick(candidates)];
    }
    // A replacement may have started while the leader was looked up: leave its processes alone.
    const names = victims.filter((name) => !this.busy.has(name));
    if (names.length === 0) return this.skip(planned, 'its processes are being replaced');
    const startSeconds = this.options.nowSeconds();
    let cuts: PowerCut[];
    try {
      cuts = await this.cluster.powerCut(names);
    } catch (error) {
      // Refused before any kill (a process not running), nothing is down; after the kill, all are.
      if (error instanceof PowerCutError) for (const name of error.killedReplicaIds) this.killed.add(name);
      throw error;
    }
    for (const name of names) this.killed.add(name);
    const spared = members.filter((name) => !names.includes(name));
    const total = cuts.reduce(
      (sum, cut) => ({
        filesReverted: sum.filesReverted + cut.filesReverted,
        operationsUndone: sum.operationsUndone + cut.operationsUndone,
        bytesDropped: sum.bytesDropped + cut.bytesDropped,
      }),
      { filesReverted: 0, operationsUndone: 0, bytesDropped: 0 },
    );
    const fault = this.begin(
      planned,
      `power cut ${this.describeProcesses(names)} (${mode} of ${group}${mode === 'whole group' && spared.length > 0 ? `, ${spared.join(', ')} spared` : ''}): ` +
        `${count(total.filesReverted, 'file')} reverted, ${count(total.operationsUndone, 'operation')} undone, ` +
        `${count(total.bytesDropped, 'byte')} dropped`,
      {
        startSeconds,
        powerCuts: Object.fromEntries(names.map((name, index) => [name, cuts[index] as PowerCut])),
      },
    );
    await this.idle(planned.holdSeconds);
    await this.restartKilled();
    this.end(fault);
  }

  private async pauseFault(planned: PlannedFault & { nemesis: 'pause' }): Promise<void> {
    const { group, mode } = planned;
    const candidates = this.available(group);
    if (candidates.length === 0) return this.skip(planned, 'no process available');
    const victim = mode === 'leader' ? await this.leaderOr(group, candidates) : this.pick(candidates);
    if (this.busy.has(victim)) return this.skip(planned, `${victim} is being replaced`);
    this.cluster.signal(victim, 'SIGSTOP');
    this.paused.add(victim);
    const fault = this.begin(
      planned,
      `SIGSTOP ${this.describeProcesses([victim])} for ${planned.holdSeconds.toFixed(1)} s (${mode} of ${group})`,
    );
    await this.idle(planned.holdSeconds);
    this.continuePaused();
    this.end(fault);
  }

  /**
   * Link faults between the processes hosting a group. In the node shape the links are between
   * nodes, so every group whose replicas those nodes host is cut the same way.
   */
  private async partitionFault(planned: PlannedFault & { nemesis: 'partition' }): Promise<void> {
    const { group, mode, linkFault } = planned;
    const members = this.cluster.hostsOf(group);
    if (members.length < 2) return this.skip(planned, 'fewer than two processes');
    let description: string;
    if (mode === 'isolated leader') {
      const leader = await this.leaderOr(group, members);
      this.network.isolate(leader, linkFault);
      description = `isolate leader ${this.describeProcesses([leader])} (${describeLinkFault(linkFault)})`;
    } else if (mode === 'halves') {
      const shuffled = shuffle(members, this.random);
      const minority = shuffled.slice(0, Math.floor(members.length / 2));
      const majority = shuffled.slice(minority.length);
      this.network.partition([minority, majority], linkFault);
      description = `partition ${group}: ${minority.join(',')} | ${majority.join(',')} (${describeLinkFault(linkFault)})`;
    } else if (mode === 'one-way') {
      const [from, to] = shuffle(members, this.random) as [string, string];
      this.network.setLinkFault(from, to, linkFault);
      description = `one-way ${from} -> ${to} (${describeLinkFault(linkFault)})`;
    } else {
      const slow: LinkFault = linkFault;
      for (const from of members) {
        for (const to of members) if (from !== to) this.network.setLinkFault(from, to, slow);
      }
      description = `slow links in ${group}: ${describeLinkFault(linkFault)}`;
    }
    const fault = this.begin(planned, description);
    await this.idle(planned.holdSeconds);
    this.network.heal();
    this.end(fault);
  }

  /** A planned fault that the cluster's state of the moment leaves no target for: logged, not counted. */
  private skip(planned: PlannedFault, reason: string): void {
    this.options.log(
      `nemesis: ${this.options.nowSeconds().toFixed(1)} s: skipped ${planned.nemesis} ${planned.mode} of ${planned.group}: ${reason}`,
    );
  }

  /**
   * Adds a new replica as a learner, promotes it once it caught up, removes an old voter and stops
   * it: the operator's way of replacing a machine, done while the other track's faults go on. Each
   * step goes to the group's current leader and is retried until it succeeds.
   */
  private async replaceReplica(membership: Membership, planned: PlannedReplacement): Promise<void> {
    const group = planned.group;
    const leaving = this.pickLeaving(membership, group);
    if (leaving === undefined) {
      this.options.log(
        `nemesis: ${this.options.nowSeconds().toFixed(1)} s: skipped a replacement in ${group}: no replica may leave`,
      );
      return;
    }
    this.busy.add(leaving.host);
    let added: Awaited<ReturnType<Membership['addReplica']>>;
    let chosen: string | undefined;
    try {
      added = await membership.addReplica(group, (candidates) => {
        // A node the other track holds down cannot start a replica; the one chosen is busy at once.
        const hosts = candidates.filter(
          (name) =>
            !this.busy.has(name) &&
            !this.killed.has(name) &&
            !this.paused.has(name) &&
            this.cluster.isReady(name),
        );
        chosen = hosts.length === 0 ? undefined : pick(hosts, this.memberRandom);
        if (chosen !== undefined) this.busy.add(chosen);
        return chosen;
      });
    } catch (error) {
      this.busy.delete(leaving.host);
      if (chosen !== undefined) this.busy.delete(chosen);
      throw error;
    }
    if (added === undefined) {
      this.busy.delete(leaving.host);
      this.options.log(
        `nemesis: ${this.options.nowSeconds().toFixed(1)} s: skipped a replacement in ${group}: no node free to host ${group}`,
      );
      return;
    }
    const { replica: newcomer, member } = added;
    this.busy.add(newcomer.host);
    // In the node shape a replacement moves the group's replica from one node to another.
    const where = (replica: GroupReplica): string =>
      this.cluster.shape === 'nodes' ? `${replica.replicaId} on ${replica.host}` : replica.replicaId;
    const fault = this.begin(planned, `replace ${where(leaving)} by ${where(newcomer)}`, {
      nemesis: 'member',
    });
    try {
      const added = await this.membershipStep(
        group,
        'add learner',
        'POST',
        '/admin/members',
        member,
        (status) => [...status.learners, ...status.voters].includes(newcomer.raftId),
      );
      if (!added) {
        await this.abandonNewcomer(membership, group, newcomer);
        return;
      }
      const promoted = await this.membershipStep(
        group,
        'promote',
        'POST',
        `/admin/members/${newcomer.replicaId}/promote`,
        undefined,
        (status) => status.voters.includes(newcomer.raftId),
      );
      if (!promoted) {
        await this.abandonNewcomer(membership, group, newcomer);
        return;
      }
      const removed = await this.membershipStep(
        group,
        `remove ${leaving.replicaId}`,
        'DELETE',
        `/admin/members/${leaving.replicaId}`,
        undefined,
        (status) => !status.voters.includes(leaving.raftId) && !status.learners.includes(leaving.raftId),
      );
      if (removed) {
        await membership.retire(leaving);
        this.options.log(`nemesis: ${newcomer.replicaId} replaced ${leaving.replicaId}`);
      }
    } finally {
      this.busy.delete(leaving.host);
      this.busy.delete(newcomer.host);
      this.end(fault);
    }
  }

  /** Takes a newcomer that never became a voter out of the group again and stops it. */
  private async abandonNewcomer(
    membership: Membership,
    group: string,
    newcomer: GroupReplica,
  ): Promise<void> {
    const removed = await this.membershipStep(
      group,
      `remove ${newcomer.replicaId}`,
      'DELETE',
      `/admin/members/${newcomer.replicaId}`,
      undefined,
      (status) => !status.voters.includes(newcomer.raftId) && !status.learners.includes(newcomer.raftId),
    );
    if (removed) await membership.retire(newcomer);
  }

  /**
   * One membership change, sent to the leader until `isDone` holds for the leader's status (an
   * answer lost to a fault can hide a change that was applied), or until the step times out.
   */
  private async membershipStep(
    group: string,
    label: string,
    method: string,
    path: string,
    body: unknown,
    isDone: (status: MembershipStatus) => boolean,
  ): Promise<boolean> {
    const deadlineMs = Date.now() + membershipStepTimeoutMs;
    let lastProblem = 'no leader';
    while (Date.now() < deadlineMs) {
      const leader = await this.cluster.leaderOf(group, 2_000).catch(() => undefined);
      if (leader !== undefined) {
        try {
          const target = this.cluster.requestTarget(leader, group);
          const status = await fetchStatus(target);
          if (isDone(status)) return true;
          const response = await fetch(`${target.url}${path}`, {
            method,
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            headers: { 'content-type': 'application/json', ...target.headers },
            signal: AbortSignal.timeout(5_000),
          });
          const text = await response.text();
          if (response.status === 200) return true;
          lastProblem = `${response.status} ${text.slice(0, 200)}`;
        } catch (error) {
          lastProblem = (error as Error).message;
        }
      }
      await sleep(500);
    }
    this.fail(
      `${label} in ${group}`,
      new Error(`gave up after ${membershipStepTimeoutMs} ms: ${lastProblem}`),
    );
    return false;
  }

  /**
   * A voter to replace: never a newcomer being added, never one on a process the other track holds
   * down, and never one of the last two replicas the gateway was started with (its cluster map is
   * static, so it must always know some live member of each group).
   */
  private pickLeaving(membership: Membership, group: string): GroupReplica | undefined {
    const replicas = membership.replicasOf(group);
    const foundersLeft = replicas.filter((replica) => this.founders.has(replica.replicaId));
    const candidates = replicas.filter(
      (replica) =>
        !this.busy.has(replica.host) &&
        !this.killed.has(replica.host) &&
        !this.paused.has(replica.host) &&
        (!this.founders.has(replica.replicaId) || foundersLeft.length > 2),
    );
    return candidates.length === 0 ? undefined : pick(candidates, this.memberRandom);
  }

  private async leaderOr(group: string, fallback: readonly string[]): Promise<string> {
    const leader = await this.cluster.leaderOf(group, 2_000).catch(() => undefined);
    if (leader !== undefined && !this.busy.has(leader)) return leader;
    return this.pick(fallback);
  }

  /** Running processes hosting a group that no membership change is using. */
  private available(group: string): string[] {
    return this.cluster.hostsOf(group).filter(
      (name) =>
        !this.busy.has(name) &&
        !this.killed.has(name) &&
        !this.paused.has(name) &&
        // Not one still starting: a newcomer the member track is starting is in the group
        // before the track can mark it busy (chaos seed 11006 killed one mid-start).
        this.cluster.isReady(name),
    );
  }

  /** `n2 (g1-r2, g2-r1, g3-r3)` for nodes, so that a fault's line names every replica it hit. */
  private describeProcesses(names: readonly string[]): string {
    if (this.cluster.shape !== 'nodes') return names.join(', ');
    return names.map((name) => `${name} (${this.cluster.replicasOn(name).join(', ')})`).join(', ');
  }

  private async restartKilled(): Promise<void> {
    const names = [...this.killed];
    await Promise.all(
      names.map(async (name) => {
        if (!this.cluster.has(name)) {
          // Retired by a membership change while it was down: there is nothing to restart.
          this.killed.delete(name);
          return;
        }
        // A start can fail while the machine is overloaded; try again rather than leave it down.
        for (let attempt = 1; ; attempt++) {
          try {
            await this.cluster.restart(name);
            break;
          } catch (error) {
            if (attempt >= 3) throw error;
            this.options.log(`nemesis: restart of ${name} failed (${(error as Error).message}); retrying`);
            await sleep(1_000);
          }
        }
        this.killed.delete(name);
      }),
    );
  }

  /** Waits, up to `replacementWaitSecondsMax`, until no process of the group is in a replacement. */
  private async waitForReplacementIn(group: string): Promise<void> {
    const deadlineSeconds = this.options.nowSeconds() + replacementWaitSecondsMax;
    const inReplacement = (): boolean => this.cluster.hostsOf(group).some((name) => this.busy.has(name));
    while (this.running && inReplacement() && this.options.nowSeconds() < deadlineSeconds) {
      await this.idle(0.1);
    }
  }

  private continuePaused(): void {
    for (const name of this.paused) {
      try {
        this.cluster.signal(name, 'SIGCONT');
      } catch {
        // The process is gone (it cannot be, as kills and pauses never overlap); nothing to continue.
      }
    }
    this.paused.clear();
  }

  private async healAll(): Promise<void> {
    this.network.heal();
    this.continuePaused();
    await this.restartKilled();
    const now = this.options.nowSeconds();
    for (const fault of this.faults)
      if (fault.endSeconds === undefined && fault.nemesis !== 'member') fault.endSeconds = now;
  }

  /**
   * Records a fault that took effect. It starts now, or at `details.startSeconds` for a fault whose
   * effect began before it could be recorded (a power cut stops the replicas before it drops their
   * data).
   */
  private begin(
    planned: { readonly atSeconds: number },
    description: string,
    details: {
      readonly nemesis?: NemesisName;
      readonly startSeconds?: number;
      readonly powerCuts?: Readonly<Record<string, PowerCut>>;
    } = {},
  ): FaultRecord {
    const fault: FaultRecord = {
      nemesis: details.nemesis ?? (planned as PlannedFault).nemesis,
      description,
      plannedSeconds: planned.atSeconds,
      startSeconds: details.startSeconds ?? this.options.nowSeconds(),
      endSeconds: undefined,
      ...(details.powerCuts === undefined ? {} : { powerCuts: details.powerCuts }),
    };
    this.faults.push(fault);
    this.options.log(`nemesis: ${fault.startSeconds.toFixed(1)} s: ${description}`);
    return fault;
  }

  private end(fault: FaultRecord): void {
    fault.endSeconds = this.options.nowSeconds();
    this.options.log(`nemesis: ${fault.endSeconds.toFixed(1)} s: healed ${fault.description}`);
  }

  /** Waits `seconds`, or less when the run stops. */
  private idle(seconds: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, seconds * 1000);
      this.sleepers.add(done);
    });
  }

  /** Waits until the workload's clock reads `atSeconds` (at once when late), or less when the run stops. */
  private idleUntil(atSeconds: number): Promise<void> {
    return this.idle(Math.max(0, atSeconds - this.options.nowSeconds()));
  }

  private pick<T>(items: readonly T[]): T {
    return pick(items, this.random);
  }
}

/** `1 file`, `2 files`. */
const count = (value: number, noun: string): string => `${value} ${noun}${value === 1 ? '' : 's'}`;

function pick<T>(items: readonly T[], random: () => number): T {
  if (items.length === 0) throw new Error('nothing to pick from');
  return items[Math.floor(random() * items.length)] as T;
}

interface MembershipStatus {
  readonly voters: readonly number[];
  readonly learners: readonly number[];
}

async function fetchStatus(target: {
  readonly url: string;
  readonly headers: Record<string, string>;
}): Promise<MembershipStatus> {
  const response = await fetch(`${target.url}/admin/status`, {
    headers: target.headers,
    signal: AbortSignal.timeout(2_000),
  });
  const status = (await response.json()) as Partial<MembershipStatus>;
  return { voters: status.voters ?? [], learners: status.learners ?? [] };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
