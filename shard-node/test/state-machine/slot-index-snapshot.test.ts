import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, slotForKey } from '@impulse/common';
import type { ConfState, Entry as LogEntry } from '../../src/raft/index.js';
import {
  ReplicaStateMachine,
  appliedKey,
  dataKey,
  dataRange,
  decodeSnapshotChunk,
  encodeSnapshotChunks,
  encodeUint64,
  formatKey,
  formatVersion,
  formatVersionWithoutSlotIndex,
  hashRecords,
  openRecord,
  requestOrderRange,
  sealRecord,
  slotIndexKey,
  slotIndexMismatchHash,
  slotIndexRange,
  slotScanEntriesMax,
} from '../../src/state-machine/index.js';
import type { Engine, Entry } from '../../src/storage/index.js';
import { byUtf8, checkEntry, deleteEntry, keysSharingSlots, putEntry } from './slot-keys.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const noConfStates = new Map<number, ConfState>();

const keysBySlot = keysSharingSlots(3, 5);
const keyPool = [...keysBySlot.values()].flat();
const slots = [...keysBySlot.keys()];

/** Puts every key of the pool (with a request id each), then deletes every third one. */
function someWrites(): LogEntry[] {
  const entries: LogEntry[] = [];
  for (const key of keyPool)
    entries.push(putEntry(entries.length + 1, key, Buffer.from(`v-${key}`), `req-${entries.length + 1}`));
  for (const key of keyPool.filter((_, position) => position % 3 === 0))
    entries.push(deleteEntry(entries.length + 1, key));
  return entries;
}

/** A state machine's answer for every slot of the pool, and for the whole scan. */
async function slotView(stateMachine: ReplicaStateMachine): Promise<Record<string, unknown>> {
  const view: Record<string, unknown> = {};
  for (const slot of slots) {
    const entries = await stateMachine.scanSlot(slot, { limit: slotScanEntriesMax });
    view[`slot ${slot}`] = entries.map(({ key, value }) => `${key.toString()}=${value.toString()}`);
    view[`count ${slot}`] = await stateMachine.slotKeyCount(slot);
  }
  const scanned: string[] = [];
  for await (const { key } of stateMachine.scan({ start: undefined, end: undefined }, 1000))
    scanned.push(key.toString());
  view['scan'] = scanned;
  view['userKeyCount'] = stateMachine.userKeyCount;
  return view;
}

/** The consistency hash of format 2: over the data and the request ids of `engine`, as they are. */
async function hashWithoutIndex(engine: Engine): Promise<string> {
  async function* records(): AsyncGenerator<Entry> {
    for (const range of [dataRange, requestOrderRange]) {
      for await (const { key, value } of engine.iterate(range))
        yield { key, value: openRecord(key, value, undefined) };
    }
  }
  return (await hashRecords(records())).hash;
}

describe.each(['memory', 'leveldb'] as const)('the slot index and snapshots on %s', (engineName) => {
  let root: string;
  const opened: ReplicaStateMachine[] = [];
  const open = async (name: string): Promise<ReplicaStateMachine> => {
    const stateMachine = await ReplicaStateMachine.open({
      directory: join(root, name),
      engine: engineName,
      logger,
    });
    opened.push(stateMachine);
    return stateMachine;
  };
  const reopen = async (stateMachine: ReplicaStateMachine, name: string): Promise<ReplicaStateMachine> => {
    if (engineName === 'memory') await stateMachine.sync();
    await stateMachine.close();
    opened.splice(opened.indexOf(stateMachine), 1);
    return open(name);
  };
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-slot-snapshot-'));
  });
  afterEach(async () => {
    for (const stateMachine of opened.splice(0)) await stateMachine.close();
    await rm(root, { recursive: true, force: true });
  });

  /** Streams `from` into `to` and installs it; answers the records the stream carried. */
  async function transfer(from: ReplicaStateMachine, to: ReplicaStateMachine): Promise<Entry[]> {
    const snapshot = await from.openSnapshot();
    const install = await to.beginInstall();
    const carried: Entry[] = [];
    try {
      for await (const chunk of snapshot.chunks()) {
        carried.push(...decodeSnapshotChunk(chunk));
        await install.write(chunk);
      }
    } finally {
      await snapshot.close();
    }
    await to.install(install);
    return carried;
  }

  it('gives a replica installed from a snapshot the same slots as its leader, and the same hash', async () => {
    const leader = await open('leader');
    await leader.apply(someWrites(), noConfStates);
    let follower = await open('follower');
    // The follower's own state goes with the install, its index records too.
    await follower.apply([putEntry(1, 'stale', Buffer.from('stale'))], noConfStates);

    const carried = await transfer(leader, follower);
    // The stream carries no index record: the follower derived its own.
    expect(carried.filter(({ key }) => key[0] === slotIndexRange.start[0])).toEqual([]);
    expect(carried.filter(({ key }) => key[0] === dataRange.start[0]).length).toBe(leader.userKeyCount);
    const expected = await slotView(leader);
    expect(expected[`count ${slots[0] as number}`]).toBeGreaterThan(0);
    expect(await slotView(follower)).toEqual(expected);
    expect(await follower.scanSlot(slotForKey('stale'), { limit: 10 })).toEqual([]);
    follower = await reopen(follower, 'follower');
    expect(await slotView(follower)).toEqual(expected);

    // Both apply the same check: one hash, and it is the hash of format 2 (data and request ids).
    const index = leader.appliedIndex + 1;
    await leader.apply([checkEntry(index)], noConfStates);
    await follower.apply([checkEntry(index)], noConfStates);
    const leaderHash = await leader.consistencyHashAt(index);
    expect(leaderHash).toBeDefined();
    expect(await follower.consistencyHashAt(index)).toEqual(leaderHash);
    expect(leaderHash?.hash).toBe(await hashWithoutIndex(leader.engine));
  });

  it('installs a snapshot of format 2, deriving the index and ignoring index records it carries', async () => {
    const keys = keyPool.slice(0, 8);
    const stale = slotIndexKey(slotForKey('not-there'), Buffer.from('not-there'));
    const records: Entry[] = [
      ...keys.map((key) => ({ key: dataKey(key), value: sealRecord(dataKey(key), Buffer.from(key)) })),
      {
        key: appliedKey,
        value: sealRecord(appliedKey, Buffer.concat([encodeUint64(keys.length), encodeUint64(1)])),
      },
      { key: formatKey, value: sealRecord(formatKey, Buffer.from([0, 0, 0, formatVersionWithoutSlotIndex])) },
      { key: stale, value: sealRecord(stale, Buffer.alloc(0)) },
    ];
    async function* stream(): AsyncGenerator<Entry> {
      yield* records;
    }
    const follower = await open('follower');
    const install = await follower.beginInstall();
    for await (const chunk of encodeSnapshotChunks(stream())) await install.write(chunk);
    expect((await follower.install(install)).index).toBe(keys.length);
    const format = await follower.engine.get(formatKey);
    expect(format === undefined ? undefined : openRecord(formatKey, format, undefined).readUInt32BE(0)).toBe(
      formatVersion,
    );
    for (const key of keys) {
      const entries = await follower.scanSlot(slotForKey(key), { limit: slotScanEntriesMax });
      const expected = keys.filter((each) => slotForKey(each) === slotForKey(key)).sort(byUtf8);
      expect(entries.map((entry) => entry.key.toString())).toEqual(expected);
    }
    expect(await follower.engine.countKeys(slotIndexRange)).toBe(keys.length);
  });

  it('reports, at a consistency check, a hash no sound replica reports when its index misses a record', async () => {
    const sound = await open('sound');
    const damaged = await open('damaged');
    await sound.apply(someWrites(), noConfStates);
    await damaged.apply(someWrites(), noConfStates);
    const key = keyPool[1] as string;
    // The data is whole and every checksum holds; only the index lost a record.
    await damaged.engine.delete(slotIndexKey(slotForKey(key), Buffer.from(key)));
    const index = sound.appliedIndex + 1;
    await sound.apply([checkEntry(index)], noConfStates);
    await damaged.apply([checkEntry(index)], noConfStates);
    const soundHash = await sound.consistencyHashAt(index);
    const damagedHash = await damaged.consistencyHashAt(index);
    expect(soundHash).toBeDefined();
    expect(damagedHash).toEqual({ ...soundHash, hash: slotIndexMismatchHash(soundHash?.hash ?? '') });
    expect(damaged.fault).toBeUndefined();
  });

  it('calls an index record without its data a storage fault of kind index-mismatch', async () => {
    const stateMachine = await open('orphan');
    await stateMachine.apply(someWrites(), noConfStates);
    const key = keyPool[1] as string;
    await stateMachine.engine.delete(dataKey(key));
    await expect(stateMachine.scanSlot(slotForKey(key), { limit: 10 })).rejects.toMatchObject({
      code: 'STORAGE_FAULT',
      kind: 'index-mismatch',
      // The slot shows in decimal in the fault's key, before the user key.
      key: `s:${slotForKey(key)}:${key}`,
    });
    expect(stateMachine.fault?.kind).toBe('index-mismatch');
  });
});
