import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StartupError, createLogger } from '@impulse/common';
import type { ConfState, Entry } from '../../src/raft/index.js';
import {
  ReplicaStateMachine,
  StorageFault,
  appliedKey,
  batchRange,
  dataKey,
  encodeCommand,
  encodeUint64,
  type StateMachineOptions,
} from '../../src/state-machine/index.js';
import { LevelDbEngine } from '../../src/storage/index.js';
import { FaultyEngine, flipLastBit } from './faulty-engine.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const noConfStates = new Map<number, ConfState>();

function put(index: number, key: string, value: string, requestId = ''): Entry {
  return {
    index,
    term: 1,
    type: 'normal',
    data: encodeCommand({
      operation: 'put',
      requestId: Buffer.from(requestId),
      key,
      value: Buffer.from(value),
    }),
  };
}

async function faultOf(promise: Promise<unknown>): Promise<StorageFault> {
  const error = await promise.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(StorageFault);
  return error as StorageFault;
}

/** The fields of a fault as a plain object: vitest compares errors by message only. */
function fieldsOf(fault: StorageFault | undefined): Record<string, unknown> {
  return {
    code: fault?.code,
    kind: fault?.kind,
    key: fault?.key,
    keyRange: fault?.keyRange,
    file: fault?.file,
  };
}

async function drain(iteration: AsyncIterable<unknown>): Promise<number> {
  let count = 0;
  for await (const _item of iteration) count++;
  return count;
}

describe.each(['memory', 'leveldb'] as const)('storage faults of the state machine on %s', (engine) => {
  let directory: string;
  const opened: ReplicaStateMachine[] = [];
  let faulty: FaultyEngine | undefined;
  const open = async (overrides: Partial<StateMachineOptions> = {}): Promise<ReplicaStateMachine> => {
    const stateMachine = await ReplicaStateMachine.open({
      directory,
      engine,
      logger,
      wrapEngine: (inner) => {
        faulty = new FaultyEngine(inner);
        return faulty;
      },
      ...overrides,
    });
    opened.push(stateMachine);
    return stateMachine;
  };
  const double = (): FaultyEngine => {
    expect(faulty).toBeDefined();
    return faulty as FaultyEngine;
  };

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-storage-faults-'));
    faulty = undefined;
  });
  afterEach(async () => {
    for (const stateMachine of opened.splice(0)) await stateMachine.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('answers an altered value on get as a storage fault naming the key, and then refuses every read', async () => {
    const stateMachine = await open();
    await stateMachine.apply([put(1, 'damaged', 'the value'), put(2, 'healthy', 'fine')], noConfStates);
    expect((await stateMachine.get('damaged'))?.toString()).toBe('the value');
    const damagedKey = dataKey('damaged');
    double().alterRead = (key, stored) => (key.equals(damagedKey) ? flipLastBit(stored) : stored);
    const fault = await faultOf(stateMachine.get('damaged'));
    expect(fieldsOf(fault)).toMatchObject({
      kind: 'checksum-mismatch',
      key: 'd:damaged',
      code: 'STORAGE_FAULT',
    });
    // Sticky: a replica whose engine lied once answers nothing more from it.
    double().alterRead = undefined;
    await faultOf(stateMachine.get('healthy'));
    await faultOf(stateMachine.apply([put(3, 'later', 'x')], noConfStates));
    expect(stateMachine.fault).toBe(fault);
  });

  it('answers a value found under another key as a storage fault', async () => {
    const stateMachine = await open();
    await stateMachine.apply([put(1, 'a', 'value of a'), put(2, 'b', 'value of b')], noConfStates);
    const storedA = await stateMachine.engine.get(dataKey('a'));
    // A misdirected block: b's read returns a's stored record, checksum and all.
    double().alterRead = (key, stored) =>
      key.equals(dataKey('b')) && storedA !== undefined ? storedA : stored;
    expect((await faultOf(stateMachine.get('b'))).kind).toBe('checksum-mismatch');
  });

  it('answers an altered value met by a scan as a storage fault, never as an item', async () => {
    const stateMachine = await open();
    const entries: Entry[] = [];
    for (let index = 1; index <= 200; index++)
      entries.push(put(index, `key-${String(index).padStart(3, '0')}`, `v${index}`));
    await stateMachine.apply(entries, noConfStates);
    expect(await drain(stateMachine.scan({ start: undefined, end: undefined }, 1000))).toBe(200);
    double().alterRead = (key, stored) => (key.equals(dataKey('key-150')) ? flipLastBit(stored) : stored);
    const seen: string[] = [];
    const fault = await faultOf(
      (async () => {
        for await (const entry of stateMachine.scan({ start: undefined, end: undefined }, 1000))
          seen.push(entry.key.toString());
      })(),
    );
    expect(fault.key).toBe('d:key-150');
    expect(seen).not.toContain('key-150');
  });

  it('answers an engine read error as a storage fault with the file the engine named', async () => {
    const stateMachine = await open();
    await stateMachine.apply([put(1, 'k', 'v')], noConfStates);
    double().readError = new Error('Corruption: bad entry in block: /data/state/sm-000001/000005.ldb');
    const fault = await faultOf(stateMachine.get('k'));
    expect(fieldsOf(fault)).toMatchObject({
      kind: 'read-failed',
      key: 'd:k',
      file: '/data/state/sm-000001/000005.ldb',
    });
  });

  it('never sends an altered record in a snapshot', async () => {
    const stateMachine = await open();
    await stateMachine.apply([put(1, 'a', '1'), put(2, 'b', '2')], noConfStates);
    const snapshot = await stateMachine.openSnapshot();
    double().alterRead = (key, stored) => (key.equals(dataKey('b')) ? flipLastBit(stored) : stored);
    try {
      expect((await faultOf(drain(snapshot.chunks()))).key).toBe('d:b');
    } finally {
      await snapshot.close();
    }
    expect(stateMachine.fault?.key).toBe('d:b');
  });

  it('refuses a received snapshot chunk with an altered record, and installs an intact one', async () => {
    const leader = await open({ directory: join(directory, 'leader') });
    await leader.apply([put(1, 'a', '1'), put(2, 'b', '2')], noConfStates);
    const follower = await open({ directory: join(directory, 'follower') });
    const snapshot = await leader.openSnapshot();
    const chunks: Buffer[] = [];
    for await (const chunk of snapshot.chunks()) chunks.push(chunk);
    await snapshot.close();
    const install = await follower.beginInstall();
    const whole = Buffer.concat(chunks);
    // The value of the last record is the chunk's last bytes.
    await expect(install.write(flipLastBit(whole))).rejects.toThrow(/does not match its checksum/);
    await install.abort();
    const intact = await follower.beginInstall();
    await intact.write(whole);
    expect((await follower.install(intact)).index).toBe(2);
    expect((await follower.get('b'))?.toString()).toBe('2');
  });

  it("is rebuilt by installing a snapshot: the fault is gone, every value is the snapshot's", async () => {
    const leader = await open({ directory: join(directory, 'leader') });
    await leader.apply([put(1, 'a', '1'), put(2, 'b', '2'), put(3, 'c', '3')], noConfStates);
    const follower = await open({ directory: join(directory, 'follower') });
    const followerEngine = double();
    await follower.apply([put(1, 'a', '1'), put(2, 'b', '2')], noConfStates);
    followerEngine.alterRead = (key, stored) => (key.equals(dataKey('a')) ? flipLastBit(stored) : stored);
    expect((await faultOf(follower.get('a'))).kind).toBe('checksum-mismatch');
    await expect(follower.get('b')).rejects.toBeInstanceOf(StorageFault);
    const snapshot = await leader.openSnapshot();
    const install = await follower.beginInstall();
    for await (const chunk of snapshot.chunks()) await install.write(chunk);
    await snapshot.close();
    expect(await follower.install(install)).toMatchObject({ index: 3 });
    expect(follower.fault).toBeUndefined();
    expect(follower.appliedIndex).toBe(3);
    for (const [key, value] of [
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ] as const)
      expect((await follower.get(key))?.toString()).toBe(value);
    await follower.apply([put(4, 'd', '4')], noConfStates);
    expect((await follower.get('d'))?.toString()).toBe('4');
  });

  it('hashes its state at a consistency check, and answers that hash for that index only', async () => {
    const stateMachine = await open();
    const check = (index: number): Entry => ({
      index,
      term: 1,
      type: 'normal',
      data: encodeCommand({ operation: 'consistency-check', requestId: Buffer.alloc(0) }),
    });
    await stateMachine.apply([put(1, 'a', '1'), check(2), put(3, 'b', '2')], noConfStates);
    const atCheck = await stateMachine.consistencyHashAt(2);
    expect(atCheck).toMatchObject({ index: 2, keys: 1 });
    expect(await stateMachine.consistencyHashAt(3)).toBeUndefined();
    await stateMachine.apply([check(4)], noConfStates);
    expect(await stateMachine.consistencyHashAt(2)).toBeUndefined();
    expect((await stateMachine.consistencyHashAt(4))?.hash).not.toBe(atCheck?.hash);
  });

  it('opens faulted, not serving, when a meta record fails its checksum', async () => {
    let stateMachine = await open();
    await stateMachine.apply([put(1, 'k', 'v')], noConfStates);
    await stateMachine.sync();
    if (engine === 'memory') await stateMachine.writeImage(await stateMachine.openSnapshot());
    await stateMachine.close();
    opened.splice(0);
    stateMachine = await open({
      wrapEngine: (inner) => {
        const altering = new FaultyEngine(inner);
        altering.alterRead = (key, stored) => (key.equals(appliedKey) ? flipLastBit(stored) : stored);
        return altering;
      },
    });
    expect(fieldsOf(stateMachine.fault)).toMatchObject({ kind: 'checksum-mismatch', key: 'm:applied' });
    await faultOf(stateMachine.get('k'));
  });
});

describe('the batch chain of the state machine (leveldb)', () => {
  let directory: string;
  const opened: ReplicaStateMachine[] = [];
  const open = async (wrap?: (engine: FaultyEngine) => void): Promise<ReplicaStateMachine> => {
    const stateMachine = await ReplicaStateMachine.open({
      directory,
      engine: 'leveldb',
      logger,
      wrapEngine: (inner) => {
        const faulty = new FaultyEngine(inner);
        wrap?.(faulty);
        return faulty;
      },
    });
    opened.push(stateMachine);
    return stateMachine;
  };
  const reopen = async (stateMachine: ReplicaStateMachine): Promise<ReplicaStateMachine> => {
    await stateMachine.close();
    opened.splice(opened.indexOf(stateMachine), 1);
    return open();
  };
  const batchRecords = async (stateMachine: ReplicaStateMachine): Promise<number> =>
    drain(stateMachine.engine.iterate(batchRange));

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-batch-chain-'));
  });
  afterEach(async () => {
    for (const stateMachine of opened.splice(0)) await stateMachine.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('finds on open a batch that the engine lost while a later one survived', async () => {
    // The third batch is acknowledged and never written, as when LevelDB drops a damaged block of
    // its write-ahead log on open: the applied index of the fifth batch survives all the same.
    const stateMachine = await open((faulty) => {
      faulty.dropBatchNumber = 3;
    });
    for (let index = 1; index <= 5; index++)
      await stateMachine.apply([put(index, `key-${index}`, 'v')], noConfStates);
    const reopened = await reopen(stateMachine);
    expect(fieldsOf(reopened.fault)).toMatchObject({
      kind: 'gap',
      keyRange: {
        start: `b:${encodeUint64(3).toString('hex')}`,
        end: `b:${encodeUint64(4).toString('hex')}`,
      },
    });
    expect(reopened.fault?.message).toMatch(/lacks the batches of indexes 3 to 3/);
    await faultOf(reopened.get('key-4'));
  });

  it('finds a lost batch that straddles several entries, and accepts an intact chain', async () => {
    const stateMachine = await open((faulty) => {
      faulty.dropBatchNumber = 2;
    });
    await stateMachine.apply([put(1, 'a', '1'), put(2, 'b', '2')], noConfStates);
    await stateMachine.apply([put(3, 'c', '3'), put(4, 'd', '4'), put(5, 'e', '5')], noConfStates);
    await stateMachine.apply([put(6, 'f', '6')], noConfStates);
    const faulted = await reopen(stateMachine);
    expect(faulted.fault?.message).toMatch(/indexes 3 to 5/);
    await faulted.close();
    opened.splice(0);
    await rm(directory, { recursive: true, force: true });
    const intact = await open();
    await intact.apply([put(1, 'a', '1'), put(2, 'b', '2')], noConfStates);
    await intact.apply([put(3, 'c', '3')], noConfStates);
    const reopened = await reopen(intact);
    expect(reopened.fault).toBeUndefined();
    expect(reopened.appliedIndex).toBe(3);
  });

  it('prunes the batch records at sync(), bounding them, and still finds a batch lost after it', async () => {
    let stateMachine = await open();
    for (let index = 1; index <= 50; index++)
      await stateMachine.apply([put(index, `key-${index}`, 'v')], noConfStates);
    expect(await batchRecords(stateMachine)).toBe(50);
    await stateMachine.sync();
    // Only the chain base is left: the flushed batches are in tables, out of the log's reach.
    expect(await batchRecords(stateMachine)).toBe(1);
    stateMachine = await reopen(stateMachine);
    expect(stateMachine.fault).toBeUndefined();
    await stateMachine.close();
    opened.splice(0);
    stateMachine = await open((faulty) => {
      faulty.dropBatchNumber = 2;
    });
    for (let index = 51; index <= 53; index++)
      await stateMachine.apply([put(index, `key-${index}`, 'v')], noConfStates);
    stateMachine = await reopen(stateMachine);
    expect(stateMachine.fault?.message).toMatch(/indexes 52 to 52/);
  });

  it('refuses at open a data directory written in the format without checksums', async () => {
    // What the previous version left: unsealed records, an applied index, no format record.
    const old = await LevelDbEngine.open({ directory: join(directory, 'sm-000001'), sync: true });
    await old.batch([
      { type: 'put', key: dataKey('k'), value: Buffer.from('v') },
      { type: 'put', key: appliedKey, value: Buffer.concat([encodeUint64(7), encodeUint64(2)]) },
    ]);
    await old.close();
    const refusal = await ReplicaStateMachine.open({ directory, engine: 'leveldb', logger }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(StartupError);
    expect(refusal).toMatchObject({ code: 'DATA_DIRECTORY_FORMAT_UNSUPPORTED', exitCode: 2 });
    expect((refusal as Error).message).toMatch(/format 1: values without checksums, applied index 7/);
    expect((refusal as Error).message).toMatch(/does not convert/);
  });
});
