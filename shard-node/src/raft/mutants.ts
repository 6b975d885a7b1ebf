/**
 * Planted bugs for mutation testing of the simulator (docs/raft.md, "The simulator's mutants"):
 * each one breaks exactly one rule of the core, so that `npm run sim:mutants` can show that the
 * simulator's checks fail when the rule is broken.
 *
 * They are test-only. A mutant is planted through `Config.mutants`, which only the simulator
 * (`shard-node/src/raft-sim/`) and tests set: the shard node's host builds its core configuration
 * without the field, and its command line and environment have no way to set it (a test,
 * `shard-node/test/raft-sim/mutants-production.test.ts`, checks both). With no mutant planted the
 * core behaves exactly as without this file: every mutant is one `if` on a flag that is false.
 */

export const raftMutants = [
  /**
   * Commits the highest index a quorum holds even if it is of an earlier term, by counting
   * replicas (the Raft paper, §5.4.2 and Figure 8). A correct leader commits only an entry of its
   * own term that way, and earlier entries with it.
   */
  'commit-earlier-term',
  /**
   * A leader that sees a higher term adopts it (term and vote, §5.1) but stays leader, now of a
   * term nobody elected it in.
   */
  'leader-keeps-leading-on-higher-term',
  /** A leader whose CheckQuorum round finds no quorum active stays leader (thesis §6.2). */
  'no-check-quorum-step-down',
  /**
   * A voter grants its vote to any candidate of its term while it knows no leader, even after it
   * voted for another one (or for itself) in that term (§5.2: at most one vote per term).
   */
  'two-votes-per-term',
  /**
   * A lease-based read is answered from the lease whenever a quorum acknowledged heartbeats of
   * this term, however long ago (the correct rule: sent less than an election timeout ago; see
   * `hasReadLease`).
   */
  'lease-without-fresh-quorum',
] as const;

/** One planted bug of the core; see `raftMutants`. */
export type RaftMutant = (typeof raftMutants)[number];

export function isRaftMutant(name: string): name is RaftMutant {
  return (raftMutants as readonly string[]).includes(name);
}
