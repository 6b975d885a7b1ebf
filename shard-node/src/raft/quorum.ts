/**
 * Quorum rules: when a majority configuration, or a joint configuration of two majorities, has
 * committed an index or won a vote. A joint configuration (thesis §4.3) needs both majorities.
 */
import type { NodeId } from './types.js';

export type VoteResult = 'pending' | 'lost' | 'won';

/** Returns the acknowledged index of a voter, or undefined if it has acknowledged nothing. */
export type AckedIndexer = (id: NodeId) => number | undefined;

/** A set of voters deciding by simple majority. */
export class MajorityConfig {
  readonly ids: Set<NodeId>;
  /** Scratch space for `committedIndex`, reused to avoid an allocation per commit check. */
  private scratch: number[] = [];

  constructor(ids: Iterable<NodeId> = []) {
    this.ids = new Set(ids);
  }

  get size(): number {
    return this.ids.size;
  }

  has(id: NodeId): boolean {
    return this.ids.has(id);
  }

  /** The ids in increasing order. */
  sortedIds(): NodeId[] {
    return [...this.ids].sort((a, b) => a - b);
  }

  /**
   * The largest index acknowledged by a majority. An empty configuration returns Infinity so that
   * it never limits a joint configuration (where one side may be empty).
   */
  committedIndex(acked: AckedIndexer): number {
    const n = this.ids.size;
    if (n === 0) {
      return Infinity;
    }
    const indexes = this.scratch;
    indexes.length = 0;
    for (const id of this.ids) {
      indexes.push(acked(id) ?? 0);
    }
    // Insertion sort: configurations are small, and this avoids the comparator-call overhead.
    for (let i = 1; i < n; i++) {
      const value = indexes[i]!;
      let j = i - 1;
      while (j >= 0 && indexes[j]! > value) {
        indexes[j + 1] = indexes[j]!;
        j--;
      }
      indexes[j + 1] = value;
    }
    // In ascending order, the element at n - (n/2 + 1) is held by a majority (itself and all above).
    return indexes[n - (Math.floor(n / 2) + 1)]!;
  }

  /**
   * The outcome of an election given the votes so far: won with a majority of yes, lost when a
   * majority can no longer be reached, pending otherwise. An empty configuration wins (so that a
   * joint configuration with an empty side is decided by the other side alone).
   */
  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const n = this.ids.size;
    if (n === 0) {
      return 'won';
    }
    let yes = 0;
    let missing = 0;
    for (const id of this.ids) {
      const vote = votes.get(id);
      if (vote === undefined) {
        missing++;
      } else if (vote) {
        yes++;
      }
    }
    const quorum = Math.floor(n / 2) + 1;
    if (yes >= quorum) {
      return 'won';
    }
    if (yes + missing >= quorum) {
      return 'pending';
    }
    return 'lost';
  }

  toString(): string {
    return `(${this.sortedIds().join(' ')})`;
  }
}

/**
 * Two majority configurations, incoming and outgoing; a decision needs both. Outside a joint
 * change the outgoing side is empty and the incoming one decides alone.
 */
export class JointConfig {
  readonly incoming: MajorityConfig;
  readonly outgoing: MajorityConfig;

  constructor(
    incoming: MajorityConfig = new MajorityConfig(),
    outgoing: MajorityConfig = new MajorityConfig(),
  ) {
    this.incoming = incoming;
    this.outgoing = outgoing;
  }

  isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  has(id: NodeId): boolean {
    return this.incoming.has(id) || this.outgoing.has(id);
  }

  /** All voters of both sides, in increasing order. */
  sortedIds(): NodeId[] {
    const all = new Set<NodeId>(this.incoming.ids);
    for (const id of this.outgoing.ids) all.add(id);
    return [...all].sort((a, b) => a - b);
  }

  committedIndex(acked: AckedIndexer): number {
    return Math.min(this.incoming.committedIndex(acked), this.outgoing.committedIndex(acked));
  }

  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const first = this.incoming.voteResult(votes);
    const second = this.outgoing.voteResult(votes);
    if (first === second) {
      return first;
    }
    if (first === 'lost' || second === 'lost') {
      // Losing either side loses the joint election.
      return 'lost';
    }
    // One side won, the other is still pending.
    return 'pending';
  }

  toString(): string {
    return this.isJoint()
      ? `${this.incoming.toString()}&&${this.outgoing.toString()}`
      : this.incoming.toString();
  }
}
