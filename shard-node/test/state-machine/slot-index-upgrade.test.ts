import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, slotForKey } from '@impulse/common';
import type { ConfState } from '../../src/raft/index.js';
import {
  ReplicaStateMachine,
  appliedKey,
  chainBaseKey,
  dataKey,
  encodeSnapshotChunks,
  encodeUint64,
  formatKey,
  formatVersion,
  formatVersionWithoutSlotIndex,
  openRecord,
  sealRecord,
  slotIndexKey,
  slotIndexRange,
  slotIndexRebuildBatchKeysMax,
  type StateMachineOptions,
} from '../../src/state-machine/index.js';
import { writeMemoryImage } from '../../src/state-machine/memory-image.js';
import { openEngine, type Engine, type EngineName, type Entry } from '../../src/storage/index.js';
import { FaultyEngine } from './faulty-engine.js';
import { deleteEntry, putEntry } from './slot-keys.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const noConfStates = new Map<number, ConfState>();

/** Enough keys for three rebuild batches, the last one partial. */
const keyCount = slotIndexRebuildBatchKeysMax * 2 + slotIndexRebuildBatchKeysMax / 2;
const keys = Array.from({ length: keyCount }, (_, position) => `key-${position}`);
/** A key whose index record is stale: left by an interrupted upgrade, then deleted by format 2. */
const staleKey = 'deleted-by-format-2';

function sealed(key: Buffer, payload: Uint8Array): Entry {
  return { key, value: sealRecord(key, payload) };
}

function u32(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(value);
  return bytes;
}

/**
 * The records of a state in `format`, by hand, as the previous version wrote them: every key of
 * `keys` with value `v-<key>`, applied index and term, the chain base (LevelDB), and one stale
 * index record of a key that is not there.
 */
function stateRecords(engineName: EngineName, format: number): Entry[] {
  const records = [
    sealed(formatKey, u32(format)),
    sealed(appliedKey, Buffer.concat([encodeUint64(keyCount), encodeUint64(1)])),
    ...keys.map((key) => sealed(dataKey(key), Buffer.from(`v-${key}`))),
    sealed(slotIndexKey(slotForKey(staleKey), Buffer.from(staleKey)), Buffer.alloc(0)),
  ];
  if (engineName === 'leveldb') records.push(sealed(chainBaseKey, encodeUint64(keyCount)));
  return records;
}

/** Writes a state of `format` where `ReplicaStateMachine.open(directory)` finds it. */
async function writeState(directory: string, engineName: EngineName, format: number): Promise<void> {
  const records = stateRecords(engineName, format);
  if (engineName === 'memory') {
    async function* entries(): AsyncGenerator<Entry> {
      yield* records;
    }
    await writeMemoryImage(directory, encodeSnapshotChunks(entries()));
    return;
  }
  const engine = await openEngine({ name: 'leveldb', directory: join(directory, 'sm-000001'), sync: true });
  try {
    await engine.batch(records.map(({ key, value }) => ({ type: 'put', key, value })));
  } finally {
    await engine.close();
  }
}

async function formatOf(engine: Engine): Promise<number | undefined> {
  const stored = await engine.get(formatKey);
  return stored === undefined ? undefined : openRecord(formatKey, stored, undefined).readUInt32BE(0);
}

/** Every key of `keys` reads back through its slot, with its value, and no other key does. */
async function expectEveryKeyInItsSlot(stateMachine: ReplicaStateMachine): Promise<void> {
  const bySlot = new Map<number, string[]>();
  for (const key of [...keys, staleKey]) {
    const slot = slotForKey(key);
    bySlot.set(slot, [...(bySlot.get(slot) ?? []), ...(key === staleKey ? [] : [key])]);
  }
  for (const [slot, slotKeys] of bySlot) {
    const entries = await stateMachine.scanSlot(slot, { limit: 100 });
    expect(
      entries.map(({ key, value }) => `${key.toString()}=${value.toString()}`),
      `slot ${slot}`,
    ).toEqual(slotKeys.sort().map((key) => `${key}=v-${key}`));
  }
  expect(await stateMachine.engine.countKeys(slotIndexRange)).toBe(keyCount);
}

describe.each(['memory', 'leveldb'] as const)('the conversion from format 2 on %s', (engineName) => {
  let directory: string;
  const opened: ReplicaStateMachine[] = [];
  const open = async (overrides: Partial<StateMachineOptions> = {}): Promise<ReplicaStateMachine> => {
    const stateMachine = await ReplicaStateMachine.open({
      directory,
      engine: engineName,
      logger,
      ...overrides,
    });
    opened.push(stateMachine);
    return stateMachine;
  };
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-slot-upgrade-'));
  });
  afterEach(async () => {
    for (const stateMachine of opened.splice(0)) await stateMachine.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('builds the slot index from the data on open, drops stale index records, then writes format 3', async () => {
    expect(formatVersion).toBe(3);
    await writeState(directory, engineName, formatVersionWithoutSlotIndex);
    const stateMachine = await open();
    expect(stateMachine.fault).toBeUndefined();
    expect(await formatOf(stateMachine.engine)).toBe(formatVersion);
    expect(stateMachine.appliedIndex).toBe(keyCount);
    expect(stateMachine.userKeyCount).toBe(keyCount);
    await expectEveryKeyInItsSlot(stateMachine);
    // From now on every applied write keeps the index.
    await stateMachine.apply(
      [putEntry(keyCount + 1, 'new', Buffer.from('n')), deleteEntry(keyCount + 2, 'key-7')],
      noConfStates,
    );
    expect(
      (await stateMachine.scanSlot(slotForKey('new'), { limit: 10 })).map(({ key }) => key.toString()),
    ).toContain('new');
    expect(
      (await stateMachine.scanSlot(slotForKey('key-7'), { limit: 10 })).map(({ key }) => key.toString()),
    ).not.toContain('key-7');
    expect(stateMachine.userKeyCount).toBe(keyCount);
  });

  it('refuses a format newer than it knows, as before', async () => {
    await writeState(directory, engineName, formatVersion + 1);
    await expect(open()).rejects.toMatchObject({
      code: 'DATA_DIRECTORY_FORMAT_UNSUPPORTED',
      message: expect.stringMatching(/is in format 4; .* does not convert this one/) as unknown,
    });
  });
});

describe('an interrupted conversion from format 2 (leveldb)', () => {
  let directory: string;
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-slot-upgrade-'));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  /** The format and the number of index records the engine holds now. */
  async function inspect(): Promise<{ format: number | undefined; indexRecords: number }> {
    const engine = await openEngine({ name: 'leveldb', directory: join(directory, 'sm-000001'), sync: true });
    try {
      return { format: await formatOf(engine), indexRecords: await engine.countKeys(slotIndexRange) };
    } finally {
      await engine.close();
    }
  }

  // Batch 1 deletes the stale index record; batches 2 to 4 write the index, 1000, 1000 and 500.
  it.each([1, 2, 3, 4])(
    'leaves format 2 when the process dies at batch %i, and the next open builds the index whole',
    async (crashBatchNumber) => {
      await writeState(directory, 'leveldb', formatVersionWithoutSlotIndex);
      let faulty: FaultyEngine | undefined;
      const options = { directory, engine: 'leveldb', logger } as const;
      await expect(
        ReplicaStateMachine.open({
          ...options,
          wrapEngine: (inner) => {
            faulty = new FaultyEngine(inner);
            faulty.crashBatchNumber = crashBatchNumber;
            return faulty;
          },
        }),
      ).rejects.toThrow(/simulated crash/);
      expect(faulty).toBeDefined();
      const left = await inspect();
      expect(left.format).toBe(formatVersionWithoutSlotIndex);
      // Part of an index: the stale record until batch 1 passed, then the batches written.
      const written = Math.max(0, crashBatchNumber - 2) * slotIndexRebuildBatchKeysMax;
      expect(left.indexRecords).toBe(crashBatchNumber === 1 ? 1 : written);

      const stateMachine = await ReplicaStateMachine.open(options);
      try {
        expect(stateMachine.fault).toBeUndefined();
        expect(await formatOf(stateMachine.engine)).toBe(formatVersion);
        await expectEveryKeyInItsSlot(stateMachine);
      } finally {
        await stateMachine.close();
      }
      expect(await inspect()).toEqual({ format: formatVersion, indexRecords: keyCount });
    },
  );

  it('finds a batch the engine lost while building the index: a fault, and format 2 stays', async () => {
    await writeState(directory, 'leveldb', formatVersionWithoutSlotIndex);
    const options = { directory, engine: 'leveldb', logger } as const;
    const faulted = await ReplicaStateMachine.open({
      ...options,
      wrapEngine: (inner) => {
        const faulty = new FaultyEngine(inner);
        faulty.dropBatchNumber = 3;
        return faulty;
      },
    });
    try {
      expect(faulted.fault).toMatchObject({ kind: 'index-mismatch' });
      expect(faulted.userKeyCount).toBeUndefined();
    } finally {
      await faulted.close();
    }
    expect((await inspect()).format).toBe(formatVersionWithoutSlotIndex);
    // The engine lost nothing for good here: the next open builds the index again, whole.
    const stateMachine = await ReplicaStateMachine.open(options);
    try {
      expect(stateMachine.fault).toBeUndefined();
      await expectEveryKeyInItsSlot(stateMachine);
    } finally {
      await stateMachine.close();
    }
  });
});
