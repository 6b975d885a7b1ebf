/**
 * The random writes of the model tests (`model.test.ts` for a replica log, `node-log-model.test.ts`
 * for the node log's groups): each step is applied to the core's MemoryStorage and to the log
 * under test as the same write.
 */
import fc from 'fast-check';

import type { Entry, MemoryStorage } from '../../src/raft/index.js';
import type { ReplicaLog } from '../../src/raft-log/index.js';
import { confState, entries } from './helpers.js';

export type WriteKind = 'append' | 'overwrite' | 'hardState' | 'snapshot' | 'compact' | 'install';

export interface WriteStep {
  readonly kind: WriteKind;
  readonly a: number;
  readonly b: number;
  readonly sync: boolean;
}

/** The write kinds, appends twice as likely as the others. */
export const WRITE_KINDS: readonly WriteKind[] = [
  'append',
  'append',
  'overwrite',
  'hardState',
  'snapshot',
  'compact',
  'install',
];

export const stepFields = {
  a: fc.nat({ max: 1000 }),
  b: fc.nat({ max: 1000 }),
  sync: fc.boolean(),
};

/** Terms only grow, like a real log's; every write uses the newest term. */
export interface TermCounter {
  value: number;
}

/**
 * Applies `step` to `model` and starts the same write on `log`, without waiting for it. Returns the
 * log's promise, or undefined when the step does nothing in the current state.
 */
export function startWrite(
  log: ReplicaLog,
  model: MemoryStorage,
  step: WriteStep,
  term: TermCounter,
): Promise<unknown> | undefined {
  const first = model.firstIndex();
  const last = model.lastIndex();
  const snapshotIndex = model.snapshot().metadata.index;
  switch (step.kind) {
    case 'append':
    case 'overwrite': {
      // An overwrite replaces a suffix from an index at or after the first entry.
      const from = step.kind === 'append' || last < first ? last + 1 : first + (step.a % (last - first + 1));
      if (step.kind === 'overwrite') term.value++;
      const batch: Entry[] = entries(from, from + (step.b % 12), term.value, step.a % 200);
      model.append(batch);
      return log.append(batch, { sync: step.sync });
    }
    case 'hardState': {
      const hardState = {
        term: term.value,
        vote: step.a % 4,
        commit: first - 1 + (step.b % (last - first + 2)),
      };
      model.setHardState(hardState);
      return log.setHardState(hardState, { sync: step.sync });
    }
    case 'snapshot': {
      const lowest = Math.max(snapshotIndex + 1, first - 1);
      if (lowest > last) return undefined;
      const index = lowest + (step.a % (last - lowest + 1));
      model.createSnapshot(index, confState(step.b), new Uint8Array(0));
      return log.createSnapshot(index, confState(step.b));
    }
    case 'compact': {
      const highest = Math.min(snapshotIndex, last);
      if (highest < first) return undefined;
      const index = first + (step.a % (highest - first + 1));
      model.compact(index);
      return log.compact(index);
    }
    case 'install': {
      // Half of the time a snapshot the log matches, otherwise one past its end or at a newer
      // term: the log is then dropped.
      const matching = step.b % 2 === 0 && last > snapshotIndex;
      let index: number;
      let snapshotTerm: number;
      if (matching) {
        index = snapshotIndex + 1 + (step.a % (last - snapshotIndex));
        snapshotTerm = model.term(index);
      } else {
        term.value++;
        index = Math.max(snapshotIndex + 1, last - 3) + (step.a % 8);
        snapshotTerm = term.value;
      }
      const metadata = { index, term: snapshotTerm, confState: confState(step.a) };
      if (matching && index >= first) {
        model.createSnapshot(index, metadata.confState, new Uint8Array(0));
        model.compact(index);
      } else {
        model.applySnapshot({ metadata, data: new Uint8Array(0) });
      }
      return log.applySnapshotMetadata(metadata, { sync: step.sync });
    }
  }
}

/**
 * What a reopen restores of a log's hard state: recovery raises a commit below the compacted index
 * (it is committed by definition). Sets it in the model too.
 */
export function expectedHardStateAfterReopen(
  log: ReplicaLog,
  model: MemoryStorage,
): ReturnType<ReplicaLog['hardState']> {
  const hardState = log.hardState();
  const expected = { ...hardState, commit: Math.max(hardState.commit, model.firstIndex() - 1) };
  model.setHardState(expected);
  return expected;
}
