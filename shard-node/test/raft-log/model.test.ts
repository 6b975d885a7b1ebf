/**
 * A model test: random sequences of writes (appends with conflicting suffixes, hard states, local
 * and installed snapshots, compactions, reopens) run against the store and against the core's
 * MemoryStorage; after every step both must answer every Storage read the same way.
 */
import path from 'node:path';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MemoryStorage, type ConfState, type Entry, type Storage } from '../../src/raft/index.js';
import type { RaftLogStore } from '../../src/raft-log/index.js';
import { entries, liveEntries, openStore, Recorder, removeDirectory, temporaryDirectory } from './helpers.js';

type Kind = 'append' | 'overwrite' | 'hardState' | 'snapshot' | 'compact' | 'install' | 'reopen';

interface Step {
  readonly kind: Kind;
  readonly a: number;
  readonly b: number;
  readonly sync: boolean;
}

const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom<Kind>(
    'append',
    'append',
    'overwrite',
    'hardState',
    'snapshot',
    'compact',
    'install',
    'reopen',
  ),
  a: fc.nat({ max: 1000 }),
  b: fc.nat({ max: 1000 }),
  sync: fc.boolean(),
});

function confState(n: number): ConfState {
  return {
    voters: [1, 2, 3].slice(0, 1 + (n % 3)),
    learners: n % 2 === 0 ? [] : [7],
    votersOutgoing: [],
    learnersNext: [],
    autoLeave: false,
  };
}

/** Every read of the Storage contract, including the errors, as one comparable value. */
function reads(storage: Storage): unknown {
  const outcome = (read: () => unknown): unknown => {
    try {
      return read();
    } catch (error) {
      return (error as Error).name;
    }
  };
  // Entries are compared as compact strings: deep equality over byte arrays is slow.
  const describe = (list: readonly Entry[]): string =>
    list.map((e) => `${e.index}/${e.term}/${e.type}/${Buffer.from(e.data).toString('hex')}`).join(' ');
  const lo = storage.firstIndex();
  const hi = storage.lastIndex() + 1;
  const terms = [];
  for (let index = lo - 2; index <= hi; index++) {
    terms.push(outcome(() => storage.term(index)));
  }
  return {
    firstIndex: lo,
    lastIndex: hi - 1,
    snapshot: storage.snapshot().metadata,
    initialState: storage.initialState(),
    terms,
    entries: outcome(() => describe(liveEntries(storage))),
    limited: [0, 100, 1000].map((maxBytes) => outcome(() => storage.entries(lo, hi, maxBytes).length)),
    compacted: outcome(() => storage.entries(lo - 1, hi, Infinity).length),
  };
}

function expectSameReads(store: Storage, model: Storage): void {
  expect(reads(store)).toEqual(reads(model));
}

describe('raft log store against MemoryStorage', () => {
  let root: string;
  let run = 0;

  beforeAll(async () => {
    root = await temporaryDirectory();
  });

  afterAll(async () => {
    await removeDirectory(root);
  });

  it('answers every Storage read like MemoryStorage after any sequence of writes and reopens', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArbitrary, { minLength: 1, maxLength: 30, size: 'medium' }),
        async (steps) => {
          const directory = path.join(root, `run-${run++}`);
          const options = { segmentBytesMax: 4096, confState: confState(0) };
          let store: RaftLogStore = await openStore(directory, new Recorder(), options);
          const model = new MemoryStorage({ confState: confState(0) });
          const reopen = async (): Promise<void> => {
            const hardState = store.hardState();
            await store.close();
            store = await openStore(directory, new Recorder(), options);
            // Recovery raises a commit below the compacted index (it is committed by definition).
            const commit = Math.max(hardState.commit, model.firstIndex() - 1);
            expect(store.hardState()).toEqual({ ...hardState, commit });
            model.setHardState({ ...hardState, commit });
          };
          // Terms only grow, like a real log's; every write uses the newest term.
          let term = 1;
          try {
            for (const step of steps) {
              const first = model.firstIndex();
              const last = model.lastIndex();
              const snapshotIndex = model.snapshot().metadata.index;
              switch (step.kind) {
                case 'append':
                case 'overwrite': {
                  // An overwrite replaces a suffix from an index at or after the first entry.
                  const from =
                    step.kind === 'append' || last < first ? last + 1 : first + (step.a % (last - first + 1));
                  if (step.kind === 'overwrite') term++;
                  const batch: Entry[] = entries(from, from + (step.b % 12), term, step.a % 200);
                  model.append(batch);
                  await store.append(batch, { sync: step.sync });
                  break;
                }
                case 'hardState': {
                  const hardState = {
                    term,
                    vote: step.a % 4,
                    commit: first - 1 + (step.b % (last - first + 2)),
                  };
                  model.setHardState(hardState);
                  await store.setHardState(hardState, { sync: step.sync });
                  break;
                }
                case 'snapshot': {
                  const lowest = Math.max(snapshotIndex + 1, first - 1);
                  if (lowest > last) break;
                  const index = lowest + (step.a % (last - lowest + 1));
                  model.createSnapshot(index, confState(step.b), new Uint8Array(0));
                  await store.createSnapshot(index, confState(step.b));
                  break;
                }
                case 'compact': {
                  const highest = Math.min(snapshotIndex, last);
                  if (highest < first) break;
                  const index = first + (step.a % (highest - first + 1));
                  model.compact(index);
                  await store.compact(index);
                  break;
                }
                case 'install': {
                  // Half of the time a snapshot the log matches, otherwise one past its end or at a
                  // newer term: the log is then dropped.
                  const matching = step.b % 2 === 0 && last > snapshotIndex;
                  let index: number;
                  let snapshotTerm: number;
                  if (matching) {
                    index = snapshotIndex + 1 + (step.a % (last - snapshotIndex));
                    snapshotTerm = model.term(index);
                  } else {
                    term++;
                    index = Math.max(snapshotIndex + 1, last - 3) + (step.a % 8);
                    snapshotTerm = term;
                  }
                  const metadata = { index, term: snapshotTerm, confState: confState(step.a) };
                  if (matching && index >= first) {
                    model.createSnapshot(index, metadata.confState, new Uint8Array(0));
                    model.compact(index);
                  } else {
                    model.applySnapshot({ metadata, data: new Uint8Array(0) });
                  }
                  await store.applySnapshotMetadata(metadata, { sync: step.sync });
                  break;
                }
                case 'reopen':
                  await reopen();
                  break;
              }
              expectSameReads(store, model);
            }
            await reopen();
            expectSameReads(store, model);
          } finally {
            await store.close();
            await removeDirectory(directory);
          }
        },
      ),
      {
        // A fixed seed keeps the suite deterministic; RAFT_LOG_MODEL_SEED and RAFT_LOG_MODEL_RUNS
        // explore further.
        numRuns: Number(process.env['RAFT_LOG_MODEL_RUNS'] ?? 40),
        seed: Number(process.env['RAFT_LOG_MODEL_SEED'] ?? 20261125),
      },
    );
  });
});
