/**
 * Targeted schedules of the node simulator: fault sequences that random faults seldom line up,
 * each aimed at one rule whose planted bug (`mutants.ts`) the checks must catch. They act on whole
 * nodes (every replica of a node is partitioned, paused or crashed together) and read only what
 * an operator could see (`Replica.status()`); where the moment matters, they strike from a 1 ms
 * watch, synchronously, before the next message is delivered.
 *
 * - `isolated-leaders`: a group's leader node is cut off from every other node for 300 to 800 ms,
 *   longer than CheckQuorum lets a leader lead without a quorum (two election timeouts), then the
 *   network heals. The CheckQuorum watch (`check-quorum-watch.ts`) fails a leader that stays.
 * - `figure8`: the Raft paper's Figure 8, at node level, after the core simulator's rounds
 *   (`../nemesis.ts`): leader after leader, across terms, is cut off with a minority (at once, when
 *   its commit index first moves, or after a few ticks; mostly in the paper's sequence,
 *   `figure8Sequence`), takes writes it cannot commit, and is killed with them durable; the previous
 *   leader of the round restarts only once the next one was killed, so that leaders of earlier and
 *   later terms take turns. A leader's empty entry is enough: one cut at once leaves its entry of
 *   a later term on it alone, and the next, holding an earlier term's entry at the same index,
 *   replicates it to a bare majority. The runs send one entry per MsgApp
 *   (`SimTiming.messageBytesMax` 0), so that the earlier term's entry travels ahead of the leader's
 *   own, as a tail of more than 1 MiB would in production.
 * - `deposed-leader-reads`: a group's leader node stops hearing from every other node and pauses
 *   (a stopped process: it neither ticks nor steps down); the others elect a new leader, and a
 *   probe client writes a key through it. Then the old leader resumes, and the probe reads the key
 *   there; a few milliseconds later the old leader hears again from the new leader's followers,
 *   but not from the new leader. Its heartbeats, carrying the read's context, reach followers of
 *   a newer term: their replicas answer with that term and the old leader steps down, failing the
 *   read; a coalescer that answers for its replicas confirms the read whenever its answer arrives
 *   first, and the read returns the value from before the write (not linearizable).
 */
import type { Prng } from '../prng.js';
import type { Replica, ReplicaStatus } from '../../replica/index.js';
import type { NodeClock } from './sim-clock.js';
import { probeClientFirst, type SimClients } from './sim-clients.js';
import type { SimNetwork } from './sim-network.js';
import type { SimNode } from './sim-node.js';

export const targetedSchedules = ['isolated-leaders', 'figure8', 'deposed-leader-reads'] as const;
export type TargetedSchedule = (typeof targetedSchedules)[number];

export function isTargetedSchedule(name: string): name is TargetedSchedule {
  return (targetedSchedules as readonly string[]).includes(name);
}

/** What a schedule acts on: the run's nodes, network, clients and clock. */
export interface ScheduleContext {
  readonly nodes: readonly SimNode[];
  readonly groups: readonly string[];
  readonly network: SimNetwork;
  readonly clients: SimClients;
  /** The nemesis's clock: never paused, never crashed. */
  readonly clock: NodeClock;
  readonly prng: Prng;
  /** Starts a node that is down (on its disk, as a restart). */
  readonly start: (node: SimNode) => void;
  readonly trace: (line: string) => void;
  readonly count: (kind: string) => void;
  /** Whether the fault phase is over: from then on a schedule changes nothing. */
  readonly ended: () => boolean;
}

/** A group's leader as the running replicas see it. */
interface Leader {
  readonly node: SimNode;
  readonly replica: Replica;
  readonly status: ReplicaStatus;
}

/** Time a round waits for a group's (next) leader before it gives up. */
const leaderWaitMs = 1_500;
/** How long `isolated-leaders` cuts a leader off: beyond two election timeouts (200 ms). */
const isolationMsMin = 300;
const isolationMsMax = 800;
/** Leaders a Figure 8 round cuts off and kills, one after the other (as the core's rounds). */
const figure8LeadersMin = 4;
const figure8LeadersMax = 7;
/**
 * When a Figure 8 leader is cut off: the millisecond it is seen leading (before its first append
 * arrives anywhere), the millisecond its commit index first moves, or after a few ticks.
 */
type Figure8Cut = 'at-once' | 'at-first-commit' | 'after-a-few-ticks';
const figure8Cuts: readonly Figure8Cut[] = ['at-once', 'at-first-commit', 'after-a-few-ticks'];
/**
 * The share of turns after the first that follow the paper's sequence, rather than a cut drawn at
 * random. The sequence repeats three cuts: at once, which leaves the leader's empty entry of a
 * later term on it alone (Figure 8 (b)); at first commit, which stops the next leader right after
 * it replicated an earlier term's entry to a bare majority, before its own entry follows (c); and
 * at first commit again, by which the following leader has replicated its log over that entry (d).
 */
const figure8SequenceShare = 0.8;
const figure8Sequence: readonly Figure8Cut[] = ['at-once', 'at-first-commit', 'at-first-commit'];
/** How long the others lead before they are cut off (a few ticks). */
const figure8LeadMsMin = 10;
const figure8LeadMsMax = 80;
/** How long a leader waits for its first commit before it is cut off anyway. */
const figure8FirstCommitWaitMs = 400;
/** How long a leader cut off with a minority takes writes before it is killed. */
const figure8MinorityMsMax = 100;
/** When the previous leader of a round restarts, once the next one was killed. */
const figure8RestartMsMin = 10;
const figure8RestartMsMax = 50;
/** When the last leader of a round restarts, once the round is over. */
const figure8LastRestartMsMin = 50;
const figure8LastRestartMsMax = 400;
/** How long a probe operation may take. */
const probeDeadlineMs = 500;
/** Pause between two rounds. */
const roundGapMsMin = 100;
const roundGapMsMax = 400;

/** Runs `schedule` round after round until the fault phase ends. */
export async function runTargetedSchedule(
  schedule: TargetedSchedule,
  context: ScheduleContext,
): Promise<void> {
  const rounds = new TargetedRounds(context);
  while (!context.ended()) {
    const group = context.prng.pick(context.groups);
    switch (schedule) {
      case 'isolated-leaders':
        await rounds.isolateLeader(group);
        break;
      case 'figure8':
        await rounds.figure8(group);
        break;
      case 'deposed-leader-reads':
        await rounds.deposedLeaderRead(group);
        break;
    }
    await rounds.sleep(context.prng.between(roundGapMsMin, roundGapMsMax));
  }
}

class TargetedRounds {
  private probes = 0;

  constructor(private readonly context: ScheduleContext) {}

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.context.clock.setTimeout(resolve, ms));
  }

  /** The running leader of `group` of the highest term above `termAfter`, if any. */
  private leaderOf(group: string, termAfter = 0): Leader | undefined {
    let found: Leader | undefined;
    for (const node of this.context.nodes) {
      if (node.state !== 'up') continue;
      const replica = node.replicas.get(group);
      const status = replica?.status();
      if (replica === undefined || status === undefined || status.role !== 'leader') continue;
      if (status.term > termAfter && (found === undefined || status.term > found.status.term))
        found = { node, replica, status };
    }
    return found;
  }

  /**
   * Watches every simulated millisecond, in the timer phase (before that millisecond's messages
   * are delivered), until `strike` returns true (it acts synchronously), or `timeoutMs` passes.
   */
  private strikeWhen(strike: () => boolean, timeoutMs: number): Promise<boolean> {
    const { clock } = this.context;
    const deadlineMs = clock.nowMs() + timeoutMs;
    return new Promise((resolve) => {
      const watch = clock.setInterval(() => {
        const struck = !this.context.ended() && strike();
        if (struck || this.context.ended() || clock.nowMs() >= deadlineMs) {
          watch.cancel();
          resolve(struck);
        }
      }, 1);
    });
  }

  /** The leader of `group` above `termAfter`, waiting for one up to `leaderWaitMs`. */
  private async nextLeader(group: string, termAfter: number): Promise<Leader | undefined> {
    let leader: Leader | undefined;
    await this.strikeWhen(() => (leader = this.leaderOf(group, termAfter)) !== undefined, leaderWaitMs);
    return leader;
  }

  private names(nodes: readonly SimNode[]): string[] {
    return nodes.map((node) => node.name);
  }

  private restartAfter(node: SimNode, delayMs: number): void {
    this.context.clock.setTimeout(() => {
      if (this.context.ended() || node.state !== 'down') return;
      this.context.trace(`${this.context.clock.nowMs()} restart ${node.name}`);
      this.context.start(node);
    }, delayMs);
  }

  /** `isolated-leaders`: the leader's node alone, for longer than CheckQuorum allows. */
  async isolateLeader(group: string): Promise<void> {
    const { network, nodes, prng, trace, count, clock } = this.context;
    const leader = await this.nextLeader(group, 0);
    if (leader === undefined || this.context.ended()) return;
    const others = nodes.filter((node) => node !== leader.node);
    const isolationMs = prng.between(isolationMsMin, isolationMsMax);
    network.partition([leader.node.name], this.names(others));
    trace(
      `${clock.nowMs()} isolate ${leader.node.name} (${group} leader, term ${leader.status.term}) for ${isolationMs} ms`,
    );
    count('isolated-leader');
    await this.sleep(isolationMs);
    if (!this.context.ended()) network.heal();
  }

  /** Cuts `leader`'s node off together with the largest minority of the other nodes it can be in. */
  private cutOffWithMinority(leader: Leader, group: string): void {
    const { network, nodes, prng, trace, clock } = this.context;
    const voters = nodes.filter((node) => node.hosts(group));
    const others = voters.filter((node) => node !== leader.node);
    const companionsMax = Math.max(0, Math.ceil((others.length + 1) / 2) - 2);
    const side = [leader.node, ...prng.shuffle([...others]).slice(0, companionsMax)];
    const rest = nodes.filter((node) => !side.includes(node));
    network.partition(this.names(side), this.names(rest));
    trace(
      `${clock.nowMs()} figure 8: cut ${this.names(side).join(',')} off (${group} leader ${leader.node.name}, term ${leader.status.term}, commit ${leader.replica.status().commitIndex})`,
    );
  }

  /** `figure8`: one round of leaders cut off with a minority and killed, in turns across terms. */
  async figure8(group: string): Promise<void> {
    const { network, prng, trace, count, clock } = this.context;
    const leaders = prng.between(figure8LeadersMin, figure8LeadersMax);
    count('figure8-round');
    let termAfter = 0;
    /** The last leader killed, kept down until the next one is killed. */
    let held: SimNode | undefined;
    for (let turn = 0; turn < leaders && !this.context.ended(); turn++) {
      const cut: Figure8Cut =
        turn > 0 && prng.chance(figure8SequenceShare)
          ? (figure8Sequence[(turn - 1) % figure8Sequence.length] as Figure8Cut)
          : prng.pick(figure8Cuts);
      let leader: Leader | undefined;
      if (cut === 'at-once') {
        // Cut off the millisecond it is seen leading: before its first append arrives anywhere.
        await this.strikeWhen(() => {
          leader = this.leaderOf(group, termAfter);
          if (leader !== undefined) this.cutOffWithMinority(leader, group);
          return leader !== undefined;
        }, leaderWaitMs);
        if (leader === undefined) break;
      } else {
        leader = await this.nextLeader(group, termAfter);
        if (leader === undefined) break;
        const { replica, status } = leader;
        const stillLeading = (): boolean => {
          const now = replica.status();
          return now.role === 'leader' && now.term === status.term;
        };
        const chosen = leader;
        let isCut = false;
        if (cut === 'at-first-commit') {
          // Cut off the millisecond its commit index moves: what it committed may have reached a
          // bare majority, and what follows it nobody.
          const commitIndex = replica.status().commitIndex;
          await this.strikeWhen(() => {
            if (!stillLeading()) return true;
            if (replica.status().commitIndex <= commitIndex) return false;
            this.cutOffWithMinority(chosen, group);
            isCut = true;
            return true;
          }, figure8FirstCommitWaitMs);
        } else {
          await this.sleep(prng.between(figure8LeadMsMin, figure8LeadMsMax));
        }
        if (this.context.ended()) break;
        if (!stillLeading()) {
          // It lost its leadership on its own: the round waits for the next leader.
          if (isCut) network.heal();
          termAfter = status.term;
          continue;
        }
        if (!isCut) this.cutOffWithMinority(leader, group);
      }
      // Cut off with a minority, it takes writes it cannot commit; then it is killed with them.
      await this.sleep(prng.between(0, figure8MinorityMsMax));
      if (this.context.ended()) break;
      if (leader.node.state !== 'down') {
        const last = leader.replica.status();
        leader.node.crash('kill');
        trace(
          `${clock.nowMs()} figure 8: kill ${leader.node.name} (term ${leader.status.term}, commit ${last.commitIndex}, last index ${last.lastIndex})`,
        );
        count('figure8-kill');
        // The previous leader of the round comes back only now: earlier and later terms take turns.
        if (held !== undefined)
          this.restartAfter(held, prng.between(figure8RestartMsMin, figure8RestartMsMax));
        held = leader.node;
      }
      network.heal();
      termAfter = leader.status.term;
    }
    if (held !== undefined)
      this.restartAfter(held, prng.between(figure8LastRestartMsMin, figure8LastRestartMsMax));
    // The round ends once every node it killed is back (or the fault phase is over).
    while (!this.context.ended() && this.context.nodes.some((node) => node.state === 'down'))
      await this.sleep(10);
  }

  /** `deposed-leader-reads`: a read at a leader deposed while it was paused and cut off. */
  async deposedLeaderRead(group: string): Promise<void> {
    const { network, nodes, clients, prng, trace, count, clock } = this.context;
    const old = await this.nextLeader(group, 0);
    if (old === undefined || this.context.ended()) return;
    const others = nodes.filter((node) => node !== old.node);
    // Nothing reaches the old leader, and it stops: it neither ticks nor steps down.
    for (const node of others) network.cutLink(node.name, old.node.name);
    old.node.pause();
    count('deposed-leader');
    trace(
      `${clock.nowMs()} deposed leader: ${old.node.name} (${group} term ${old.status.term}) hears nothing, paused`,
    );
    const restore = (): void => {
      if (this.context.ended()) return;
      network.heal();
      old.node.resume();
    };
    const fresh = await this.nextLeader(group, old.status.term);
    if (fresh === undefined || this.context.ended()) return restore();
    const key = prng.pick(clients.keysOf(group));
    const client = probeClientFirst + this.probes++;
    const value = `probe${client}`;
    const written = await clients.probe(
      client,
      group,
      fresh.node.name,
      { f: 'put', key, value },
      probeDeadlineMs,
    );
    trace(
      `${clock.nowMs()} deposed leader: ${fresh.node.name} leads ${group} in term ${fresh.status.term}; wrote ${key}=${value}: ${written.ok ? 'ok' : 'failed'}`,
    );
    if (!written.ok || this.context.ended()) return restore();
    // The old leader resumes and takes the read; the answers to its first heartbeats are lost.
    // Then it hears again from the new leader's followers, never from the new leader: the next
    // heartbeat it sends (every tick, with the read's context) races the followers' answers.
    old.node.resume();
    const reading = clients.probe(client, group, old.node.name, { f: 'get', key }, probeDeadlineMs);
    await this.sleep(prng.between(1, 3));
    if (!this.context.ended()) {
      network.heal();
      network.cutLink(fresh.node.name, old.node.name);
    }
    const read = await reading;
    trace(
      `${clock.nowMs()} deposed leader: read ${key} at ${old.node.name}: ${read.ok ? `ok ${String(read.value)}` : 'failed'}`,
    );
    if (!this.context.ended()) network.heal();
  }
}
