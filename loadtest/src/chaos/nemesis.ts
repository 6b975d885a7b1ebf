/**
 * The nemeses of a chaos run on the local process cluster: kill -9 and restart, SIGSTOP and
 * SIGCONT, network partitions on the peer links (through the fault-injecting proxy every replica's
 * advertised peer address points at), and replacing a replica by a membership change while the
 * other faults go on. Each fault is recorded with its start and end for the report.
 *
 * Two tracks run at once: one injects a kill, a pause or a partition, holds it, heals it, waits a
 * little and starts the next; the other replaces a replica now and then.
 */
import type { LocalCluster, ReplicaProcess } from '@impulse/local-cluster';
import type { FaultNetwork, LinkFault } from './fault-network.js';

export const nemesisNames = ['kill', 'pause', 'partition', 'member'] as const;
export type NemesisName = (typeof nemesisNames)[number];

export interface FaultRecord {
  readonly nemesis: NemesisName;
  readonly description: string;
  readonly startSeconds: number;
  endSeconds: number | undefined;
}

export interface NemesisOptions {
  readonly enabled: ReadonlySet<NemesisName>;
  /** Seconds since the run started, on the workload's clock. */
  readonly nowSeconds: () => number;
  readonly random: () => number;
  readonly log: (line: string) => void;
  /** How long each kill, pause or partition lasts, in seconds (uniform between the two). */
  readonly faultSecondsMin: number;
  readonly faultSecondsMax: number;
  /** Quiet time between two faults, in seconds. */
  readonly quietSecondsMin: number;
  readonly quietSecondsMax: number;
  /** Time between two replica replacements, in seconds. */
  readonly memberIntervalSecondsMin: number;
  readonly memberIntervalSecondsMax: number;
}

const membershipStepTimeoutMs = 30_000;

/**
 * Runs the nemeses until `stop()`, then heals everything: partitions cleared, paused processes
 * continued, killed ones restarted.
 */
export class Nemesis {
  readonly faults: FaultRecord[] = [];
  private running = true;
  private readonly tracks: Array<Promise<void>> = [];
  /** Replicas a membership change is working with: the other track leaves them alone. */
  private readonly busy = new Set<string>();
  private readonly killed = new Set<string>();
  private readonly paused = new Set<string>();
  /** The replicas the gateway was started with: it finds the others only from leader hints. */
  private readonly founders: ReadonlySet<string>;
  /** Wakes every `idle` in progress when the run stops. */
  private readonly sleepers = new Set<() => void>();

  constructor(
    private readonly cluster: LocalCluster,
    private readonly network: FaultNetwork,
    private readonly options: NemesisOptions,
  ) {
    this.founders = new Set(cluster.replicas.map((replica) => replica.replicaId));
  }

  start(): void {
    const processFaults = (['kill', 'pause', 'partition'] as const).filter((name) =>
      this.options.enabled.has(name),
    );
    if (processFaults.length > 0) this.tracks.push(this.faultTrack(processFaults));
    if (this.options.enabled.has('member')) this.tracks.push(this.memberTrack());
  }

  /** Ends both tracks (a fault in progress is healed at once) and heals the cluster. */
  async stop(): Promise<void> {
    this.running = false;
    for (const wake of this.sleepers) wake();
    await Promise.all(this.tracks);
    await this.healAll();
  }

  get faultCount(): number {
    return this.faults.length;
  }

  private async faultTrack(names: ReadonlyArray<'kill' | 'pause' | 'partition'>): Promise<void> {
    // Rounds of every enabled kind in a random order: a short run still sees each kind of fault.
    let round: Array<'kill' | 'pause' | 'partition'> = [];
    while (this.running) {
      await this.idle(this.between(this.options.quietSecondsMin, this.options.quietSecondsMax));
      if (!this.running) return;
      if (round.length === 0) round = this.shuffle(names);
      const name = round.pop() as 'kill' | 'pause' | 'partition';
      try {
        if (name === 'kill') await this.killFault();
        else if (name === 'pause') await this.pauseFault();
        else await this.partitionFault();
      } catch (error) {
        this.options.log(`nemesis: ${name} failed: ${(error as Error).message}`);
        await this.healAll();
      }
    }
  }

  private async memberTrack(): Promise<void> {
    while (this.running) {
      await this.idle(
        this.between(this.options.memberIntervalSecondsMin, this.options.memberIntervalSecondsMax),
      );
      if (!this.running) return;
      try {
        await this.replaceReplica();
      } catch (error) {
        this.options.log(`nemesis: member replacement failed: ${(error as Error).message}`);
      }
    }
  }

  private async killFault(): Promise<void> {
    const group = this.randomGroup();
    const mode = this.pick(['random replica', 'leader', 'majority'] as const);
    const candidates = this.available(group);
    let victims: ReplicaProcess[];
    if (mode === 'majority') {
      const size = Math.floor(this.cluster.group(group).length / 2) + 1;
      victims = this.shuffle(candidates).slice(0, size);
    } else if (mode === 'leader') {
      victims = [await this.leaderOr(group, candidates)];
    } else {
      victims = [this.pick(candidates)];
    }
    // A replacement may have started while the leader was looked up: leave its replicas alone.
    const names = victims.map((victim) => victim.replicaId).filter((name) => !this.busy.has(name));
    if (names.length === 0) return;
    const fault = this.begin('kill', `kill -9 ${names.join(', ')} (${mode} of ${group})`);
    for (const name of names) this.killed.add(name);
    await Promise.all(names.map((name) => this.cluster.kill(name)));
    await this.idle(this.faultSeconds());
    await this.restartKilled();
    this.end(fault);
  }

  private async pauseFault(): Promise<void> {
    const group = this.randomGroup();
    const mode = this.pick(['random replica', 'leader'] as const);
    const candidates = this.available(group);
    if (candidates.length === 0) return;
    const victim = mode === 'leader' ? await this.leaderOr(group, candidates) : this.pick(candidates);
    if (this.busy.has(victim.replicaId) || victim.child === undefined) return;
    const fault = this.begin('pause', `SIGSTOP ${victim.replicaId} (${mode} of ${group})`);
    this.paused.add(victim.replicaId);
    this.cluster.signal(victim.replicaId, 'SIGSTOP');
    await this.idle(this.faultSeconds());
    this.continuePaused();
    this.end(fault);
  }

  private async partitionFault(): Promise<void> {
    const group = this.randomGroup();
    const members = this.cluster.group(group).map((replica) => replica.replicaId);
    if (members.length < 2) return;
    const linkFault: LinkFault = this.pick<LinkFault>([
      { kind: 'blackhole' },
      { kind: 'stall' },
      { kind: 'reset' },
    ]);
    const mode = this.pick(['isolated leader', 'halves', 'one-way', 'slow links'] as const);
    let description: string;
    if (mode === 'isolated leader') {
      const leader = await this.leaderOr(group, this.cluster.group(group));
      this.network.isolate(leader.replicaId, linkFault);
      description = `isolate leader ${leader.replicaId} (${linkFault.kind})`;
    } else if (mode === 'halves') {
      const shuffled = this.shuffle(members);
      const minority = shuffled.slice(0, Math.floor(members.length / 2));
      const majority = shuffled.slice(minority.length);
      this.network.partition([minority, majority], linkFault);
      description = `partition ${group}: ${minority.join(',')} | ${majority.join(',')} (${linkFault.kind})`;
    } else if (mode === 'one-way') {
      const [from, to] = this.shuffle(members) as [string, string];
      this.network.setLinkFault(from, to, linkFault);
      description = `one-way ${from} -> ${to} (${linkFault.kind})`;
    } else {
      const delayMs = 20 + Math.floor(this.options.random() * 180);
      const slow: LinkFault = { kind: 'delay', delayMs, jitterMs: Math.floor(delayMs / 2) };
      for (const from of members) {
        for (const to of members) if (from !== to) this.network.setLinkFault(from, to, slow);
      }
      description = `slow links in ${group}: ${delayMs} ms ± ${Math.floor(delayMs / 2)} ms`;
    }
    const fault = this.begin('partition', description);
    await this.idle(this.faultSeconds());
    this.network.heal();
    this.end(fault);
  }

  /**
   * Adds a new replica as a learner, promotes it once it caught up, removes an old voter and stops
   * its process: the operator's way of replacing a machine, done while the other track's faults go
   * on. Each step goes to the group's current leader and is retried until it succeeds.
   */
  private async replaceReplica(): Promise<void> {
    const group = this.randomGroup();
    const leaving = this.pickLeaving(group);
    if (leaving === undefined) return;
    this.busy.add(leaving.replicaId);
    const newcomer = await this.cluster.addReplica(group);
    this.busy.add(newcomer.replicaId);
    const fault = this.begin('member', `replace ${leaving.replicaId} by ${newcomer.replicaId}`);
    try {
      const member = {
        replicaId: newcomer.replicaId,
        raftId: newcomer.raftId,
        url: newcomer.url,
        peerAddress: `${this.cluster.host}:${newcomer.peerPort}`,
      };
      const added = await this.membershipStep(
        group,
        'add learner',
        'POST',
        '/admin/members',
        member,
        (status) => [...status.learners, ...status.voters].includes(newcomer.raftId),
      );
      if (!added) {
        await this.abandonNewcomer(group, newcomer);
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
        await this.abandonNewcomer(group, newcomer);
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
        await this.cluster.retire(leaving.replicaId);
        await this.network.removeNode(leaving.replicaId);
        this.options.log(`nemesis: ${newcomer.replicaId} replaced ${leaving.replicaId}`);
      }
    } finally {
      this.busy.delete(leaving.replicaId);
      this.busy.delete(newcomer.replicaId);
      this.end(fault);
    }
  }

  /** Takes a newcomer that never became a voter out of the group again and stops it. */
  private async abandonNewcomer(group: string, newcomer: ReplicaProcess): Promise<void> {
    const removed = await this.membershipStep(
      group,
      `remove ${newcomer.replicaId}`,
      'DELETE',
      `/admin/members/${newcomer.replicaId}`,
      undefined,
      (status) => !status.voters.includes(newcomer.raftId) && !status.learners.includes(newcomer.raftId),
    );
    if (removed) {
      await this.cluster.retire(newcomer.replicaId);
      await this.network.removeNode(newcomer.replicaId);
    }
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
          const status = await fetchStatus(leader.url);
          if (isDone(status)) return true;
          const response = await fetch(`${leader.url}${path}`, {
            method,
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            headers: { 'content-type': 'application/json' },
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
    this.options.log(
      `nemesis: ${label} in ${group} gave up after ${membershipStepTimeoutMs} ms: ${lastProblem}`,
    );
    return false;
  }

  /**
   * A voter to replace: never a newcomer being added, never one the other track holds down, and
   * never one of the last two replicas the gateway was started with (its cluster map is static, so
   * it must always know some live member of each group).
   */
  private pickLeaving(group: string): ReplicaProcess | undefined {
    const members = this.cluster.group(group).filter((replica) => !this.busy.has(replica.replicaId));
    const foundersLeft = this.cluster.group(group).filter((replica) => this.founders.has(replica.replicaId));
    const candidates = members.filter(
      (replica) =>
        !this.killed.has(replica.replicaId) &&
        !this.paused.has(replica.replicaId) &&
        (!this.founders.has(replica.replicaId) || foundersLeft.length > 2),
    );
    return candidates.length === 0 ? undefined : this.pick(candidates);
  }

  private async leaderOr(group: string, fallback: readonly ReplicaProcess[]): Promise<ReplicaProcess> {
    const leader = await this.cluster.leaderOf(group, 2_000).catch(() => undefined);
    if (leader !== undefined && !this.busy.has(leader.replicaId)) return leader;
    return this.pick(fallback);
  }

  /** Running replicas of a group that no membership change is using. */
  private available(group: string): ReplicaProcess[] {
    return this.cluster
      .group(group)
      .filter(
        (replica) =>
          !this.busy.has(replica.replicaId) &&
          !this.killed.has(replica.replicaId) &&
          !this.paused.has(replica.replicaId) &&
          replica.child !== undefined,
      );
  }

  private async restartKilled(): Promise<void> {
    const names = [...this.killed];
    await Promise.all(
      names.map(async (name) => {
        if (!this.cluster.replicas.some((replica) => replica.replicaId === name)) {
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

  private begin(nemesis: NemesisName, description: string): FaultRecord {
    const fault: FaultRecord = {
      nemesis,
      description,
      startSeconds: this.options.nowSeconds(),
      endSeconds: undefined,
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

  private faultSeconds(): number {
    return this.between(this.options.faultSecondsMin, this.options.faultSecondsMax);
  }

  private between(min: number, max: number): number {
    return min + this.options.random() * (max - min);
  }

  private randomGroup(): string {
    const groups = [...new Set(this.cluster.replicas.map((replica) => replica.groupId))];
    return this.pick(groups);
  }

  private pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('nothing to pick from');
    return items[Math.floor(this.options.random() * items.length)] as T;
  }

  private shuffle<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let index = copy.length - 1; index > 0; index--) {
      const other = Math.floor(this.options.random() * (index + 1));
      [copy[index], copy[other]] = [copy[other] as T, copy[index] as T];
    }
    return copy;
  }
}

interface MembershipStatus {
  readonly voters: readonly number[];
  readonly learners: readonly number[];
}

async function fetchStatus(url: string): Promise<MembershipStatus> {
  const response = await fetch(`${url}/admin/status`, { signal: AbortSignal.timeout(2_000) });
  const status = (await response.json()) as Partial<MembershipStatus>;
  return { voters: status.voters ?? [], learners: status.learners ?? [] };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
