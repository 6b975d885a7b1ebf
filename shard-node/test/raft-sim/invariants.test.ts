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
