import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, slotForKey } from '@impulse/common';
import type { ConfState, Entry as LogEntry } from '../../src/raft/index.js';
import {
  ReplicaStateMachine,
  slotDeleteBatchKeysMax,
  slotScanEntriesMax,
} from '../../src/state-machine/index.js';
import type { Entry } from '../../src/storage/index.js';
import { byUtf8, deleteEntry, keysSharingSlots, putEntry } from './slot-keys.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const noConfStates = new Map<number, ConfState>();

/** Four slots of six keys each, and four keys alone in their slots. */
const keysBySlot = keysSharingSlots(4, 6);
const keyPool = [...[...keysBySlot.values()].flat(), 'a', 'b/ü', 'z'.repeat(300), '😀'];

/** A state as key → value, in the form the state machine answers it: [key, value as hex]. */
type Pairs = [string, string][];

function pairsOf(entries: readonly Entry[]): Pairs {
  return entries.map(({ key, value }) => [key.toString('utf8'), value.toString('hex')]);
}

function modelPairs(model: ReadonlyMap<string, Buffer>, slot?: number): Pairs {
  return [...model.keys()]
    .filter((key) => slot === undefined || slotForKey(key) === slot)
    .sort(byUtf8)
    .map((key) => [key, (model.get(key) as Buffer).toString('hex')]);
}

/** Every entry of a slot, page by page, each page of at most `pageLimit`. */
async function scanSlotByPages(
  stateMachine: ReplicaStateMachine,
  slot: number,
  pageLimit: number,
): Promise<Entry[]> {
  const entries: Entry[] = [];
  for (;;) {
    const afterKey = entries.at(-1)?.key;
    const page = await stateMachine.scanSlot(slot, {
      limit: pageLimit,
      ...(afterKey === undefined ? {} : { afterKey }),
    });
    expect(page.length).toBeLessThanOrEqual(pageLimit);
    if (page.length === 0) return entries;
    entries.push(...page);
  }
}

async function scanAll(stateMachine: ReplicaStateMachine): Promise<Entry[]> {
  const entries: Entry[] = [];
  for await (const entry of stateMachine.scan({ start: undefined, end: undefined }, 100_000))
    entries.push(entry);
  return entries;
}

/** Checks every slot in `slots`, the whole scan and the key count against the model. */
async function expectState(
  stateMachine: ReplicaStateMachine,
  model: ReadonlyMap<string, Buffer>,
  slots: ReadonlySet<number>,
  pageLimit: number,
): Promise<void> {
  for (const slot of slots) {
    const expected = modelPairs(model, slot);
    expect(pairsOf(await stateMachine.scanSlot(slot, { limit: slotScanEntriesMax })), `slot ${slot}`).toEqual(
      expected,
    );
    expect(pairsOf(await scanSlotByPages(stateMachine, slot, pageLimit)), `slot ${slot} by pages`).toEqual(
      expected,
    );
    expect(await stateMachine.slotKeyCount(slot)).toBe(expected.length);
  }
  // The scan holds user keys only, in byte order across slots: no index record shows through.
  expect(pairsOf(await scanAll(stateMachine))).toEqual(modelPairs(model));
  expect(stateMachine.userKeyCount).toBe(model.size);
}

const commandArbitrary = fc.record({
  put: fc.boolean(),
  key: fc.constantFrom(...keyPool),
  value: fc.uint8Array({ maxLength: 6 }),
});

/**
 * Issue 12, item 6: the slot index is kept exactly by every applied put and delete, on every
 * engine. Random puts and deletes (several to one key within one batch too) against a model;
 * then every touched slot must read back as exactly the model's keys of that slot, in byte order;
 * the scan as all the keys; `deleteSlot` must remove exactly one slot's keys; and all of it must
 * hold after a restart (the memory engine through its image, which derives the index on load).
 */
describe.each(['memory', 'leveldb'] as const)('the slot layout on %s', (engineName) => {
  let root: string;
  let runs = 0;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-slot-layout-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const open = (directory: string): Promise<ReplicaStateMachine> =>
    ReplicaStateMachine.open({ directory, engine: engineName, logger });

  it('reads each slot as exactly its keys in byte order, scans every key, and deletes one slot exactly', async () => {
    // At least one slot shares keys with others in the pool, and the pool crosses the UTF-16 order.
    expect([...keysBySlot.values()].every((keys) => keys.length === 6)).toBe(true);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(commandArbitrary, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 3 }),
        fc.nat(),
        async (batches, pageLimit, slotChoice) => {
          const directory = join(root, `run-${runs++}`);
          let stateMachine = await open(directory);
          try {
            const model = new Map<string, Buffer>();
            const touched = new Set<number>();
            let index = 0;
            for (const batch of batches) {
              const entries: LogEntry[] = [];
              for (const { put, key, value } of batch) {
                index++;
                entries.push(put ? putEntry(index, key, value) : deleteEntry(index, key));
                if (put) model.set(key, Buffer.from(value));
                else model.delete(key);
                touched.add(slotForKey(key));
              }
              await stateMachine.apply(entries, noConfStates);
            }
            await expectState(stateMachine, model, touched, pageLimit);

            const slots = [...touched];
            const deletedSlot = slots[slotChoice % slots.length] as number;
            const inSlot = modelPairs(model, deletedSlot).length;
            expect(await stateMachine.deleteSlot(deletedSlot, { batchKeysMax: pageLimit })).toBe(inSlot);
            for (const key of [...model.keys()]) if (slotForKey(key) === deletedSlot) model.delete(key);
            await expectState(stateMachine, model, touched, pageLimit);
            expect(await stateMachine.deleteSlot(deletedSlot, { batchKeysMax: pageLimit })).toBe(0);

            // The memory engine keeps its state across a restart in its image only.
            if (engineName === 'memory') await stateMachine.sync();
            await stateMachine.close();
            stateMachine = await open(directory);
            expect(stateMachine.fault).toBeUndefined();
            await expectState(stateMachine, model, touched, pageLimit);
          } finally {
            await stateMachine.close();
            await rm(directory, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: engineName === 'memory' ? 100 : 30 },
    );
  });

  it('refuses a slot or a bound out of range, as programmer errors', async () => {
    const stateMachine = await open(join(root, 'bounds'));
    try {
      await expect(stateMachine.scanSlot(16384, { limit: 1 })).rejects.toThrow(/slot out of range/);
      await expect(stateMachine.scanSlot(0, { limit: 0 })).rejects.toThrow(/limit/);
      await expect(stateMachine.scanSlot(0, { limit: slotScanEntriesMax + 1 })).rejects.toThrow(/limit/);
      await expect(stateMachine.slotKeyCount(-1)).rejects.toThrow(/slot out of range/);
      await expect(stateMachine.deleteSlot(0, { batchKeysMax: slotDeleteBatchKeysMax + 1 })).rejects.toThrow(
        /batchKeysMax/,
      );
    } finally {
      await stateMachine.close();
    }
  });
});
