import { describe, expect, it } from 'vitest';

import { MemoryStorage, type Entry } from '../../src/raft/index.js';
import { findLogMismatch, InvariantMonitor } from '../../src/raft-sim/invariants.js';

const encoder = new TextEncoder();

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, type: 'normal', data: encoder.encode(text) };
}

function log(...entries: Entry[]): MemoryStorage {
  const storage = new MemoryStorage();
  storage.append(entries);
  return storage;
}

describe('InvariantMonitor', () => {
  it('flags two leaders in one term (election safety)', () => {
    const monitor = new InvariantMonitor();
    monitor.observeLeader(1, 5, 10);
    monitor.observeLeader(1, 5, 11);
    monitor.observeLeader(2, 6, 12);
    expect(monitor.violations).toEqual([]);
    monitor.observeLeader(3, 6, 13);
    expect(monitor.violations.map((v) => v.invariant)).toEqual(['election-safety']);
  });

  it('flags two replicas applying different entries at one index (state machine safety)', () => {
    const monitor = new InvariantMonitor();
    monitor.observeApplied(1, entry(1, 1), 1);
    monitor.observeApplied(2, entry(1, 1), 2);
    expect(monitor.violations).toEqual([]);
    monitor.observeApplied(3, entry(1, 1, 'other'), 3);
    monitor.observeApplied(3, entry(2, 2), 3);
    monitor.observeApplied(1, entry(2, 3), 4);
    expect(monitor.violations.map((v) => v.invariant)).toEqual([
      'state-machine-safety',
      'state-machine-safety',
    ]);
  });

  it('flags a snapshot that disagrees with a committed entry', () => {
    const monitor = new InvariantMonitor();
    monitor.observeApplied(1, entry(4, 2), 1);
    monitor.observeSnapshotApplied(2, 4, 2, 2);
    expect(monitor.violations).toEqual([]);
    monitor.observeSnapshotApplied(3, 4, 3, 3);
    expect(monitor.violations.map((v) => v.invariant)).toEqual(['state-machine-safety']);
  });

  it('flags a leader whose log lacks a committed entry (leader completeness)', () => {
    const monitor = new InvariantMonitor();
    monitor.observeApplied(1, entry(1, 1), 1);
    monitor.observeApplied(1, entry(2, 1), 1);
    monitor.checkLeaderCompleteness(2, 2, log(entry(1, 1), entry(2, 1), entry(3, 2)), 2);
    expect(monitor.violations).toEqual([]);
    monitor.checkLeaderCompleteness(3, 3, log(entry(1, 1)), 3);
    monitor.checkLeaderCompleteness(4, 4, log(entry(1, 1), entry(2, 3)), 4);
    expect(monitor.violations.map((v) => v.invariant)).toEqual([
      'leader-completeness',
      'leader-completeness',
    ]);
  });

  it('flags overwriting a committed entry, but not a stale leader writing where it never held it', () => {
    const monitor = new InvariantMonitor();
    monitor.observeApplied(1, entry(1, 1), 1);
    monitor.observeApplied(1, entry(2, 2), 1);
    // A stale leader of term 1 held only index 1; writing its own entry at 2 loses nothing.
    monitor.observeOverwrite(3, log(entry(1, 1)), [entry(2, 1, 'stale')], 2);
    // Re-appending the same committed entry is harmless.
    monitor.observeOverwrite(2, log(entry(1, 1), entry(2, 2)), [entry(2, 2)], 2);
    expect(monitor.violations).toEqual([]);
    monitor.observeOverwrite(2, log(entry(1, 1), entry(2, 2)), [entry(2, 3, 'new')], 3);
    expect(monitor.violations.map((v) => v.invariant)).toEqual(['committed-entry-lost']);
  });

  it('flags logs that share an entry but differ before it (log matching)', () => {
    const a = log(entry(1, 1), entry(2, 1), entry(3, 2));
    const same = log(entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2));
    const divergedTail = log(entry(1, 1), entry(2, 1), entry(3, 3));
    const broken = log(entry(1, 1), entry(2, 1, 'different'), entry(3, 2));
    expect(findLogMismatch(a, same)).toBeUndefined();
    expect(findLogMismatch(a, divergedTail)).toBeUndefined();
    expect(findLogMismatch(a, broken)).toMatch(/differ at 2/);

    const monitor = new InvariantMonitor();
    monitor.checkLogMatching(
      new Map([
        [1, a],
        [2, same],
        [3, divergedTail],
      ]),
      1,
    );
    expect(monitor.violations).toEqual([]);
    monitor.checkLogMatching(
      new Map([
        [1, a],
        [2, broken],
      ]),
      2,
    );
    expect(monitor.violations.map((v) => v.invariant)).toEqual(['log-matching']);
  });

  it('flags a replica that crashes without what it acknowledged, unless a leader replaced it since', () => {
    const monitor = new InvariantMonitor();
    monitor.observeAcknowledged(2, 7);
    monitor.checkAcknowledgedDurable(2, 7, 1);
    // A later leader replaced the entries after 5 (not committed): the claim shrinks with them.
    monitor.observeAcknowledged(3, 9);
    monitor.observeTruncation(3, 5);
    monitor.checkAcknowledgedDurable(3, 6, 2);
    expect(monitor.violations).toEqual([]);
    monitor.observeAcknowledged(2, 12);
    monitor.checkAcknowledgedDurable(2, 10, 3);
    expect(monitor.violations.map((v) => v.invariant)).toEqual(['acknowledged-entry-lost']);
    // A crash ends the claims of that incarnation.
    monitor.checkAcknowledgedDurable(2, 0, 4);
    expect(monitor.violations).toHaveLength(1);
  });

  it('flags a leader that stays leader two election timeouts after it last heard from a quorum (CheckQuorum)', () => {
    const monitor = new InvariantMonitor();
    const incarnation = {};
    const voters = { incoming: new Set([1, 2, 3]), outgoing: new Set<number>() };
    const check = (tick: number, transferee = 0, sets = voters): void =>
      monitor.checkLeaderContact(1, incarnation, 5, sets, transferee, tick, 20);
    check(100);
    monitor.observeLeaderHeardFrom(1, 5, 2, 105);
    // Heard from 2 at 105: with itself a quorum of 3, so leading until 125 is allowed.
    check(125);
    expect(monitor.violations).toEqual([]);
    // A response of another term, or to another leader, does not count.
    monitor.observeLeaderHeardFrom(1, 4, 3, 120);
    monitor.observeLeaderHeardFrom(2, 5, 3, 120);
    check(126);
    expect(monitor.violations.map((v) => v.invariant)).toEqual(['check-quorum']);
  });

  it('restarts the CheckQuorum watch on a new term, a restart, a transfer and a configuration change', () => {
    const monitor = new InvariantMonitor();
    const voters = { incoming: new Set([1, 2, 3]), outgoing: new Set<number>() };
    const first = {};
    monitor.checkLeaderContact(1, first, 5, voters, 0, 100, 20);
    // A restarted leader (a new incarnation), a new term, a transfer started, a new configuration:
    // each starts a new clock, so none of these is 21 ticks without a quorum.
    monitor.checkLeaderContact(1, {}, 5, voters, 0, 115, 20);
    monitor.checkLeaderContact(1, first, 6, voters, 0, 130, 20);
    monitor.checkLeaderContact(1, first, 6, voters, 3, 145, 20);
    monitor.checkLeaderContact(
      1,
      first,
      6,
      { incoming: new Set([1, 2]), outgoing: new Set([1, 2, 3]) },
      3,
      160,
      20,
    );
    monitor.checkLeaderContact(
      1,
      first,
      6,
      { incoming: new Set([1, 2]), outgoing: new Set([1, 2, 3]) },
      3,
      180,
      20,
    );
    expect(monitor.violations).toEqual([]);
    // In a joint configuration both majorities must have been heard from: 2 answers (a majority
    // of the incoming voters with 1), 3 does not (the outgoing voters need two of 1, 2, 3: fine).
    monitor.observeLeaderHeardFrom(1, 6, 2, 190);
    monitor.checkLeaderContact(
      1,
      first,
      6,
      { incoming: new Set([1, 2]), outgoing: new Set([1, 2, 3]) },
      3,
      210,
      20,
    );
    expect(monitor.violations).toEqual([]);
    monitor.forgetLeader(1);
    monitor.checkLeaderContact(
      1,
      first,
      6,
      { incoming: new Set([1, 4, 5]), outgoing: new Set() },
      0,
      300,
      20,
    );
    monitor.checkLeaderContact(
      1,
      first,
      6,
      { incoming: new Set([1, 4, 5]), outgoing: new Set() },
      0,
      321,
      20,
    );
    expect(monitor.violations.map((v) => v.invariant)).toEqual(['check-quorum']);
  });

  it('compares logs only where both still hold entries (after compaction)', () => {
    const compacted = log(entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2));
    compacted.createSnapshot(3, undefined, new Uint8Array(0));
    compacted.compact(3);
    expect(
      findLogMismatch(compacted, log(entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2))),
    ).toBeUndefined();
    expect(findLogMismatch(compacted, log(entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2, 'x')))).toMatch(
      /differ at 4/,
    );
  });
});
