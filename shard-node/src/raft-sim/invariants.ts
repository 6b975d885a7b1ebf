/**
 * The safety properties of Raft (Ongaro's thesis, Figure 3.2), checked continuously while a
 * simulation runs. Each check records a violation instead of throwing, so a run reports every
 * broken property with the tick it broke at.
 *
 * - Election safety: at most one leader per term.
 * - Log matching: if two logs hold an entry with the same index and term, they are identical up
 *   to that index.
 * - Leader completeness: a leader's log holds every entry committed before its term.
 * - State machine safety: no two replicas apply different entries at the same index.
 * - Durability: a committed entry is never overwritten in a durable log that holds it, and what
 *   a replica acknowledged (MsgAppResp) is in its durable log when it crashes.
 * - CheckQuorum (thesis §6.2), when on: a leader that has heard from no quorum of voters for two
 *   election timeouts is no longer leader.
 */
import type { Entry, NodeId } from '../raft/index.js';

export interface Violation {
  readonly invariant:
    | 'election-safety'
    | 'log-matching'
    | 'leader-completeness'
    | 'state-machine-safety'
    | 'committed-entry-lost'
    | 'acknowledged-entry-lost'
    | 'check-quorum'
    | 'linearizability'
    | 'liveness'
    | 'exception';
  readonly tick: number;
  readonly detail: string;
}

/** The part of a durable log the checks read; `MemoryStorage` provides it. */
export interface LogView {
  firstIndex(): number;
  lastIndex(): number;
  term(index: number): number;
  entries(lo: number, hi: number, maxBytes: number): readonly Entry[];
}

export function sameEntry(a: Entry, b: Entry): boolean {
  if (a.term !== b.term || a.index !== b.index || a.type !== b.type) return false;
  if (a.data.byteLength !== b.data.byteLength) return false;
  for (let i = 0; i < a.data.byteLength; i += 1) if (a.data[i] !== b.data[i]) return false;
  return true;
}

/** The bound on violations kept per run: one broken property tends to repeat every tick. */
const violationsMax = 50;

/** The voters of a configuration: the incoming majority, and the outgoing one while joint. */
export interface VoterSets {
  readonly incoming: ReadonlySet<NodeId>;
  readonly outgoing: ReadonlySet<NodeId>;
}

/** What the CheckQuorum check knows of one leader's term: when it last heard from each voter. */
interface LeaderContact {
  readonly term: number;
  /** The leader's incarnation (its core object): a restart starts a new watch. */
  readonly incarnation: object;
  /**
   * Since when every voter counts as heard from: the tick the leader was first seen, moved on
   * whenever it starts a leadership transfer (which restarts its CheckQuorum clock) and whenever
   * its configuration changes (its next check counts the new voters, heard from or not).
   */
  sinceTick: number;
  transferee: NodeId;
  votersKey: string;
  readonly heardTicks: Map<NodeId, number>;
}

export class InvariantMonitor {
  readonly violations: Violation[] = [];
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Every entry known committed (some replica applied it), by index. */
  private readonly committed: (Entry | undefined)[] = [];
  /** The highest index known committed. */
  committedIndexMax = 0;
  /** Per leader, for the CheckQuorum check. */
  private readonly leaderContacts = new Map<NodeId, LeaderContact>();
  /** Per replica, the highest index it acknowledged and still claims to hold. */
  private readonly acknowledgedIndex = new Map<NodeId, number>();

  private report(violation: Violation): void {
    if (this.violations.length < violationsMax) this.violations.push(violation);
  }

  /** Records a violation found by a check outside this monitor (linearizability, liveness). */
  record(violation: Violation): void {
    this.report(violation);
  }

  /** Election safety: `nodeId` is leader in `term`. */
  observeLeader(nodeId: NodeId, term: number, tick: number): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) {
      this.leaderOfTerm.set(term, nodeId);
    } else if (known !== nodeId) {
      this.report({
        invariant: 'election-safety',
        tick,
        detail: `two leaders in term ${term}: ${known} and ${nodeId}`,
      });
    }
  }

  /** State machine safety: `nodeId` applies `entry`, which is therefore committed. */
  observeApplied(nodeId: NodeId, entry: Entry, tick: number): void {
    const known = this.committed[entry.index];
    if (known === undefined) {
      this.committed[entry.index] = entry;
      this.committedIndexMax = Math.max(this.committedIndexMax, entry.index);
    } else if (!sameEntry(known, entry)) {
      this.report({
        invariant: 'state-machine-safety',
        tick,
        detail: `node ${nodeId} applied ${describe(entry)} where another applied ${describe(known)}`,
      });
    }
  }

  /** A snapshot at (index, term) replaces a node's state: its last entry must be the committed one. */
  observeSnapshotApplied(nodeId: NodeId, index: number, term: number, tick: number): void {
    const known = this.committed[index];
    if (known !== undefined && known.term !== term) {
      this.report({
        invariant: 'state-machine-safety',
        tick,
        detail: `node ${nodeId} installed a snapshot at ${index}/${term}; committed entry there has term ${known.term}`,
      });
    }
  }

  /**
   * Durability: `nodeId` is about to append `entries` to `log`, replacing what `log` holds from the
   * first of them on. A committed entry may be replaced by nothing but itself. (A stale leader may
   * well write other entries at committed indexes it never had: that is not a loss.)
   */
  observeOverwrite(nodeId: NodeId, log: LogView, entries: readonly Entry[], tick: number): void {
    const last = log.lastIndex();
    const first = log.firstIndex();
    for (const entry of entries) {
      if (entry.index > last) return;
      if (entry.index < first) continue;
      const known = this.committed[entry.index];
      if (known !== undefined && log.term(entry.index) === known.term && !sameEntry(known, entry)) {
        this.report({
          invariant: 'committed-entry-lost',
          tick,
          detail: `node ${nodeId} overwrote committed ${describe(known)} with ${describe(entry)}`,
        });
        return;
      }
    }
  }

  /** Durability of acknowledgements: `nodeId` sent an acknowledgement that it holds up to `index`. */
  observeAcknowledged(nodeId: NodeId, index: number): void {
    this.acknowledgedIndex.set(nodeId, Math.max(index, this.acknowledgedIndex.get(nodeId) ?? 0));
  }

  /**
   * `nodeId` is about to replace its durable log after `lastKeptIndex` (a leader's entries of a
   * later term, or a snapshot): what it acknowledged beyond was not committed and may go.
   */
  observeTruncation(nodeId: NodeId, lastKeptIndex: number): void {
    const acknowledged = this.acknowledgedIndex.get(nodeId);
    if (acknowledged !== undefined && acknowledged > lastKeptIndex) {
      this.acknowledgedIndex.set(nodeId, lastKeptIndex);
    }
  }

  /**
   * Durability of acknowledgements, when `nodeId` crashes: its durable log must reach every index
   * it acknowledged, or its leader may have counted it towards a commit that no longer holds.
   */
  checkAcknowledgedDurable(nodeId: NodeId, durableLastIndex: number, tick: number): void {
    const acknowledged = this.acknowledgedIndex.get(nodeId) ?? 0;
    this.acknowledgedIndex.delete(nodeId);
    if (durableLastIndex < acknowledged) {
      this.report({
        invariant: 'acknowledged-entry-lost',
        tick,
        detail: `node ${nodeId} crashed with its durable log at ${durableLastIndex}, having acknowledged up to ${acknowledged}`,
      });
    }
  }

  /** Leader completeness: the log of a new leader of `term` holds every committed entry. */
  checkLeaderCompleteness(nodeId: NodeId, term: number, log: LogView, tick: number): void {
    const first = log.firstIndex();
    const last = log.lastIndex();
    if (last < this.committedIndexMax) {
      this.report({
        invariant: 'leader-completeness',
        tick,
        detail: `leader ${nodeId} of term ${term} has log up to ${last}, committed up to ${this.committedIndexMax}`,
      });
      return;
    }
    for (let index = Math.max(1, first - 1); index <= this.committedIndexMax; index += 1) {
      const known = this.committed[index];
      if (known === undefined) continue;
      const logTerm = log.term(index);
      if (logTerm !== known.term) {
        this.report({
          invariant: 'leader-completeness',
          tick,
          detail: `leader ${nodeId} of term ${term} has term ${logTerm} at ${index}; committed ${describe(known)}`,
        });
        return;
      }
    }
  }

  /**
   * CheckQuorum: leader `nodeId` (of `term`) received a response (MsgAppResp, MsgHeartbeatResp) of
   * its term from `from`, which the core counts as contact.
   */
  observeLeaderHeardFrom(nodeId: NodeId, term: number, from: NodeId, tick: number): void {
    const contact = this.leaderContacts.get(nodeId);
    if (contact !== undefined && contact.term === term) contact.heardTicks.set(from, tick);
  }

  /** CheckQuorum: `nodeId` is not (or no longer) leader. */
  forgetLeader(nodeId: NodeId): void {
    this.leaderContacts.delete(nodeId);
  }

  /**
   * CheckQuorum, called at the end of every tick for every live leader that runs it: a leader
   * must step down once it has heard from no quorum of `voters` for more than `boundTicks`. The
   * core checks once per election timeout that a quorum was heard from since its last check, so
   * a correct leader steps down at most two election timeouts after it last heard from a quorum;
   * starting a leadership transfer restarts that clock, and a configuration change changes the
   * quorum, so both restart this watch. A paused leader (`paused`) cannot act: its watch follows
   * it (a transfer started just before the pause counts), but it is judged only once it resumed
   * and caught up with its clock.
   */
  checkLeaderContact(
    nodeId: NodeId,
    incarnation: object,
    term: number,
    voters: VoterSets,
    transferee: NodeId,
    tick: number,
    boundTicks: number,
    paused = false,
  ): void {
    let contact = this.leaderContacts.get(nodeId);
    const votersKey = `${[...voters.incoming].sort().join(',')}/${[...voters.outgoing].sort().join(',')}`;
    if (contact === undefined || contact.term !== term || contact.incarnation !== incarnation) {
      contact = { term, incarnation, sinceTick: tick, transferee, votersKey, heardTicks: new Map() };
      this.leaderContacts.set(nodeId, contact);
    }
    if (transferee !== contact.transferee) {
      contact.transferee = transferee;
      if (transferee !== 0) contact.sinceTick = tick;
    }
    if (votersKey !== contact.votersKey) {
      contact.votersKey = votersKey;
      contact.sinceTick = tick;
    }
    if (paused) return;
    const heardAt = (id: NodeId): number =>
      id === nodeId ? tick : Math.max(contact.sinceTick, contact.heardTicks.get(id) ?? -Infinity);
    const quorumHeardTick = Math.min(
      quorumHeardTickOf(voters.incoming, heardAt),
      voters.outgoing.size === 0 ? Infinity : quorumHeardTickOf(voters.outgoing, heardAt),
    );
    if (tick - quorumHeardTick > boundTicks) {
      this.report({
        invariant: 'check-quorum',
        tick,
        detail: `leader ${nodeId} of term ${term} has heard from no quorum since tick ${quorumHeardTick} (${tick - quorumHeardTick} ticks, bound ${boundTicks})`,
      });
      // Report the same leader again only after another bound.
      contact.sinceTick = tick;
      contact.heardTicks.clear();
    }
  }

  /** Log matching over every pair of durable logs. */
  checkLogMatching(logs: ReadonlyMap<NodeId, LogView>, tick: number): void {
    const nodes = [...logs.keys()];
    for (let i = 0; i < nodes.length; i += 1) {
      for (let j = i + 1; j < nodes.length; j += 1) {
        const detail = findLogMismatch(logs.get(nodes[i]!)!, logs.get(nodes[j]!)!);
        if (detail !== undefined) {
          this.report({
            invariant: 'log-matching',
            tick,
            detail: `nodes ${nodes[i]} and ${nodes[j]}: ${detail}`,
          });
        }
      }
    }
  }
}

/**
 * The latest tick by which a majority of `voters` had been heard from: the majority-th highest of
 * their last-heard ticks (an empty configuration never holds a leader back).
 */
function quorumHeardTickOf(voters: ReadonlySet<NodeId>, heardAt: (id: NodeId) => number): number {
  if (voters.size === 0) return Infinity;
  const ticks = [...voters].map(heardAt).sort((a, b) => b - a);
  return ticks[Math.floor(voters.size / 2)]!;
}

/**
 * Returns why two logs break log matching, or undefined: finds the highest index where both hold
 * an entry of the same term, and compares every entry both hold up to it.
 */
export function findLogMismatch(a: LogView, b: LogView): string | undefined {
  const low = Math.max(a.firstIndex(), b.firstIndex());
  let high = Math.min(a.lastIndex(), b.lastIndex());
  while (high >= low && a.term(high) !== b.term(high)) high -= 1;
  if (high < low) return undefined;
  const entriesA = a.entries(low, high + 1, Infinity);
  const entriesB = b.entries(low, high + 1, Infinity);
  for (let k = 0; k < entriesA.length; k += 1) {
    const entryA = entriesA[k]!;
    const entryB = entriesB[k];
    if (entryB === undefined || !sameEntry(entryA, entryB)) {
      return `both have term ${a.term(high)} at ${high} but differ at ${entryA.index}: ${describe(entryA)} vs ${entryB === undefined ? 'nothing' : describe(entryB)}`;
    }
  }
  return undefined;
}

function describe(entry: Entry): string {
  return `${entry.index}/${entry.term} ${entry.type} (${entry.data.byteLength} bytes)`;
}
