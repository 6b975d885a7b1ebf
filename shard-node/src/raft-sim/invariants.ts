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
 * - Durability: a committed entry is never overwritten in a durable log that holds it.
 */
import type { Entry, NodeId } from '../raft/index.js';

export interface Violation {
  readonly invariant:
    | 'election-safety'
    | 'log-matching'
    | 'leader-completeness'
    | 'state-machine-safety'
    | 'committed-entry-lost'
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

export class InvariantMonitor {
  readonly violations: Violation[] = [];
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Every entry known committed (some replica applied it), by index. */
  private readonly committed: (Entry | undefined)[] = [];
  /** The highest index known committed. */
  committedIndexMax = 0;

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
