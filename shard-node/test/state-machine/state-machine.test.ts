import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@impulse/common';
import type { ConfState, Entry } from '../../src/raft/index.js';
import {
  ReplicaStateMachine,
  consistencyVerdictOf,
  decodeCommand,
  encodeCommand,
  type StateMachineOptions,
} from '../../src/state-machine/index.js';
import { transferSnapshot } from './snapshot-transfer.js';
import { NodeEngine } from '../../src/storage/index.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const noConfStates = new Map<number, ConfState>();

function put(index: number, key: string, value: string, requestId = '', term = 1): Entry {
  return {
    index,
    term,
    type: 'normal',
    data: encodeCommand({
      operation: 'put',
      requestId: Buffer.from(requestId),
      key,
      value: Buffer.from(value),
    }),
  };
}

function del(index: number, key: string, requestId = '', term = 1): Entry {
  return {
    index,
    term,
    type: 'normal',
    data: encodeCommand({ operation: 'delete', requestId: Buffer.from(requestId), key }),
  };
}

describe('command codec', () => {
  it('round-trips puts and deletes, binary values and unicode keys', () => {
    const value = Buffer.from([0, 255, 1, 2]);
    const decoded = decodeCommand(
      encodeCommand({ operation: 'put', requestId: Buffer.from('r1'), key: 'k€y', value }),
    );
    expect(decoded).toMatchObject({ operation: 'put', key: 'k€y' });
    expect(Buffer.from(decoded?.operation === 'put' ? decoded.value : []).equals(value)).toBe(true);
    expect(
      decodeCommand(encodeCommand({ operation: 'delete', requestId: Buffer.alloc(0), key: 'x' })),
    ).toMatchObject({
      operation: 'delete',
      key: 'x',
    });
  });

  it('answers undefined for bytes that are not a command, whatever they are', () => {
    const valid = encodeCommand({
      operation: 'put',
      requestId: Buffer.from('id'),
      key: 'k',
      value: Buffer.from('v'),
    });
    expect(decodeCommand(new Uint8Array(0))).toBeUndefined();
    expect(decodeCommand(Buffer.from('hello world'))).toBeUndefined();
    for (let length = 0; length < valid.length; length++)
      expect(decodeCommand(valid.subarray(0, length))).toBeUndefined();
    expect(decodeCommand(Buffer.concat([valid, Buffer.from([0])]))).toBeUndefined();
  });

  it('round-trips a consistency verdict, and refuses a truncated, padded or implausible one', () => {
    const hash = Buffer.alloc(32, 0xab);
    const valid = encodeCommand({
      operation: 'consistency-verdict',
      requestId: Buffer.from('v1'),
      checkIndex: 4321,
      hash,
    });
    const decoded = consistencyVerdictOf(valid);
    expect(decoded).toMatchObject({ operation: 'consistency-verdict', checkIndex: 4321 });
    expect(Buffer.from(decoded?.hash ?? []).equals(hash)).toBe(true);
    expect(Buffer.from(decoded?.requestId ?? []).toString()).toBe('v1');
    expect(
      consistencyVerdictOf(encodeCommand({ operation: 'delete', requestId: Buffer.alloc(0), key: 'x' })),
    ).toBeUndefined();
    for (let length = 0; length < valid.length; length++)
      expect(decodeCommand(valid.subarray(0, length))).toBeUndefined();
    expect(decodeCommand(Buffer.concat([valid, Buffer.from([0])]))).toBeUndefined();
    const indexZero = Buffer.from(valid);
    indexZero.writeBigUInt64BE(0n, 3 + 2);
    expect(decodeCommand(indexZero)).toBeUndefined();
    const indexHuge = Buffer.from(valid);
    indexHuge.writeBigUInt64BE(2n ** 63n, 3 + 2);
    expect(decodeCommand(indexHuge)).toBeUndefined();
    expect(() =>
      encodeCommand({
        operation: 'consistency-verdict',
        requestId: Buffer.alloc(0),
        checkIndex: 1,
        hash: Buffer.alloc(0),
      }),
    ).toThrow(/hash length/);
  });
});

describe.each(['memory', 'leveldb', 'leveldb in a node engine'] as const)(
  'the replica state machine on %s',
  (mode) => {
    const engine = mode === 'memory' ? 'memory' : 'leveldb';
    let root: string;
    let directory: string;
    let nodeEngine: NodeEngine | undefined;
    const opened: ReplicaStateMachine[] = [];
    const open = async (overrides: Partial<StateMachineOptions> = {}): Promise<ReplicaStateMachine> => {
      const stateMachine = await ReplicaStateMachine.open({
        directory,
        engine,
        logger,
        ...(nodeEngine === undefined ? {} : { generationSpace: nodeEngine.space('g1') }),
        ...overrides,
      });
      opened.push(stateMachine);
      return stateMachine;
    };

    beforeEach(async () => {
      root = await mkdtemp(join(tmpdir(), 'impulse-state-machine-'));
      directory = join(root, 'state');
      nodeEngine =
        mode === 'leveldb in a node engine'
          ? await NodeEngine.open({ directory: join(root, 'engine') })
          : undefined;
    });
    afterEach(async () => {
      for (const stateMachine of opened.splice(0)) await stateMachine.close();
      await nodeEngine?.close();
      await rm(root, { recursive: true, force: true });
    });

    it('applies puts and deletes in one batch and records the applied index and term', async () => {
      const stateMachine = await open();
      expect(stateMachine.appliedIndex).toBe(0);
      const results = await stateMachine.apply(
        [
          put(1, 'a', '1'),
          put(2, 'b', '2'),
          del(3, 'a'),
          { index: 4, term: 2, type: 'normal', data: new Uint8Array(0) },
        ],
        noConfStates,
      );
      expect(results.map((result) => result.outcome)).toEqual(['applied', 'applied', 'applied', 'noop']);
      expect(stateMachine.appliedIndex).toBe(4);
      expect(stateMachine.appliedTerm).toBe(2);
      expect(await stateMachine.get('a')).toBeUndefined();
      expect((await stateMachine.get('b'))?.toString()).toBe('2');
    });

    it('refuses a gap or a repeat: an entry is never skipped nor applied twice', async () => {
      const stateMachine = await open();
      await stateMachine.apply([put(1, 'a', '1')], noConfStates);
      await expect(stateMachine.apply([put(1, 'a', 'again')], noConfStates)).rejects.toThrow(
        /gap or a repeat/,
      );
      await expect(stateMachine.apply([put(3, 'a', 'skip')], noConfStates)).rejects.toThrow(
        /gap or a repeat/,
      );
      await expect(stateMachine.apply([put(2, 'a', 'x'), put(4, 'a', 'y')], noConfStates)).rejects.toThrow(
        /contiguous/,
      );
      expect((await stateMachine.get('a'))?.toString()).toBe('1');
      expect(stateMachine.appliedIndex).toBe(1);
    });

    it('applies a request id once, within a batch, across batches and across restarts', async () => {
      let stateMachine = await open();
      const first = await stateMachine.apply(
        [put(1, 'k', 'v1', 'req-1'), put(2, 'k', 'v1', 'req-1')],
        noConfStates,
      );
      expect(first.map((result) => result.outcome)).toEqual(['applied', 'duplicate']);
      await stateMachine.apply([put(3, 'k', 'v2', 'req-2')], noConfStates);
      // The retry of req-1 arrives after another write: applying it again would resurrect v1.
      const retried = await stateMachine.apply([put(4, 'k', 'v1', 'req-1')], noConfStates);
      expect(retried[0]?.outcome).toBe('duplicate');
      expect((await stateMachine.get('k'))?.toString()).toBe('v2');
      if (engine === 'memory') return; // Nothing survives a restart of the memory engine.
      await stateMachine.close();
      stateMachine = await open();
      expect(stateMachine.appliedIndex).toBe(4);
      const afterRestart = await stateMachine.apply(
        [del(5, 'k', 'req-1'), del(6, 'k', 'req-3')],
        noConfStates,
      );
      expect(afterRestart.map((result) => result.outcome)).toEqual(['duplicate', 'applied']);
    });

    it('forgets the oldest request ids beyond the retention, in index order', async () => {
      const stateMachine = await open({ requestIdRetention: 3 });
      await stateMachine.apply(
        [put(1, 'k', '1', 'r1'), put(2, 'k', '2', 'r2'), put(3, 'k', '3', 'r3'), put(4, 'k', '4', 'r4')],
        noConfStates,
      );
      const results = await stateMachine.apply(
        [put(5, 'k', 'again', 'r1'), put(6, 'k', 'again', 'r4')],
        noConfStates,
      );
      // r1 was forgotten (the oldest), so it applies again; r4 is remembered.
      expect(results.map((result) => result.outcome)).toEqual(['applied', 'duplicate']);
    });

    it('skips bytes that are not a command, alike on every replica', async () => {
      const stateMachine = await open();
      const results = await stateMachine.apply(
        [{ index: 1, term: 1, type: 'normal', data: Buffer.from('junk') }],
        noConfStates,
      );
      expect(results[0]?.outcome).toBe('invalid');
      expect(stateMachine.appliedIndex).toBe(1);
    });

    it('stores the configuration of membership changes with the applied index', async () => {
      const initial: ConfState = {
        voters: [1, 2, 3],
        learners: [],
        votersOutgoing: [],
        learnersNext: [],
        autoLeave: false,
      };
      const stateMachine = await open({ initialConfState: initial });
      expect(stateMachine.confState).toEqual(initial);
      const next: ConfState = { ...initial, learners: [4] };
      const results = await stateMachine.apply(
        [put(1, 'a', '1'), { index: 2, term: 1, type: 'confChange', data: Buffer.from('cc') }],
        new Map([[2, next]]),
      );
      expect(results[1]?.outcome).toBe('noop');
      expect(stateMachine.confState).toEqual(next);
    });

    it('stores the member records of a membership change, both, and reads them at start', async () => {
      const stateMachine = await open();
      expect(stateMachine.membersRecord).toBeUndefined();
      expect(stateMachine.removedMembersRecord).toBeUndefined();
      const records = { members: Buffer.from('[{"raftId":2}]'), removed: Buffer.from('[1,3]') };
      await stateMachine.apply(
        [{ index: 1, term: 1, type: 'confChange', data: Buffer.from('cc') }],
        noConfStates,
        records,
      );
      await stateMachine.apply([put(2, 'a', '1')], noConfStates);
      expect(stateMachine.removedMembersRecord?.toString()).toBe('[1,3]');
      if (engine === 'memory') return; // Nothing survives a restart of the memory engine.
      await stateMachine.close();
      const reopened = await open();
      expect(reopened.membersRecord?.toString()).toBe('[{"raftId":2}]');
      expect(reopened.removedMembersRecord?.toString()).toBe('[1,3]');
    });
  },
);

describe('state machine snapshots (leveldb generations)', () => {
  let root: string;
  const opened: ReplicaStateMachine[] = [];
  const open = async (name: string): Promise<ReplicaStateMachine> => {
    const stateMachine = await ReplicaStateMachine.open({
      directory: join(root, name),
      engine: 'leveldb',
      logger,
    });
    opened.push(stateMachine);
    return stateMachine;
  };
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-snapshot-'));
  });
  afterEach(async () => {
    for (const stateMachine of opened.splice(0)) await stateMachine.close();
    await rm(root, { recursive: true, force: true });
  });

  it('streams the whole state, with its exact metadata, and installs it atomically', async () => {
    const leader = await open('leader');
    const entries: Entry[] = [];
    for (let index = 1; index <= 3000; index++)
      entries.push(put(index, `key-${index}`, 'x'.repeat(index % 500), `req-${index}`, 3));
    await leader.apply(entries, noConfStates);
    const snapshot = await leader.openSnapshot();
    // Writes after the snapshot do not belong in it.
    await leader.apply([put(3001, 'late', 'late', '', 3)], noConfStates);
    expect(snapshot.metadata).toMatchObject({ index: 3000, term: 3 });
    await snapshot.close();

    const follower = await open('follower');
    await follower.apply([put(1, 'stale', 'stale')], noConfStates);
    await transferSnapshot(leader, follower);
    expect(follower.appliedIndex).toBe(3001);
    expect(await follower.get('stale')).toBeUndefined();
    expect((await follower.get('key-2999'))?.toString()).toBe('x'.repeat(2999 % 500));
    // The request ids came along: a retry of req-10 is still a duplicate on the follower.
    const results = await follower.apply([put(3002, 'key-10', 'retry', 'req-10', 3)], noConfStates);
    expect(results[0]?.outcome).toBe('duplicate');
    expect((await readdir(join(root, 'follower'))).filter((name) => name.startsWith('sm-'))).toEqual([
      'sm-000002',
    ]);

    await follower.close();
    const reopened = await open('follower');
    expect(reopened.appliedIndex).toBe(3002);
    expect((await reopened.get('late'))?.toString()).toBe('late');
  });

  it("carries the member directory's records, the removed ids too", async () => {
    const leader = await open('leader');
    const records = { members: Buffer.from('[{"raftId":4}]'), removed: Buffer.from('[1,3]') };
    await leader.apply(
      [{ index: 1, term: 2, type: 'confChange', data: Buffer.from('cc') }],
      noConfStates,
      records,
    );
    const follower = await open('follower');
    await transferSnapshot(leader, follower);
    expect(follower.membersRecord?.toString()).toBe('[{"raftId":4}]');
    expect(follower.removedMembersRecord?.toString()).toBe('[1,3]');
  });

  it('keeps two installs apart when a newer snapshot arrives before the older one is installed', async () => {
    const leader = await open('leader');
    await leader.apply([put(1, 'first', 'first', '', 2)], noConfStates);
    const older = await leader.openSnapshot();
    const follower = await open('follower');
    const olderInstall = await follower.beginInstall();
    for await (const chunk of older.chunks()) await olderInstall.write(chunk);
    await older.close();
    // The leader moves on and streams a newer snapshot while the older one waits for its install.
    await leader.apply([put(2, 'second', 'second', '', 2)], noConfStates);
    const newer = await leader.openSnapshot();
    const newerInstall = await follower.beginInstall();
    for await (const chunk of newer.chunks()) await newerInstall.write(chunk);
    await newer.close();
    // Sharing one directory, the second install deleted the first one's files under it.
    expect(newerInstall.generation).not.toBe(olderInstall.generation);
    expect((await follower.install(olderInstall)).index).toBe(1);
    expect((await follower.get('first'))?.toString()).toBe('first');
    expect((await follower.install(newerInstall)).index).toBe(2);
    expect((await follower.get('second'))?.toString()).toBe('second');
    await follower.close();
    const reopened = await open('follower');
    expect(reopened.appliedIndex).toBe(2);
    expect((await reopened.get('first'))?.toString()).toBe('first');
  });

  it('keeps the old state when a crash interrupts an install, and removes the half-built one', async () => {
    const leader = await open('leader');
    await leader.apply([put(1, 'new', 'new')], noConfStates);
    const follower = await open('follower');
    await follower.apply([put(1, 'old', 'old')], noConfStates);
    const snapshot = await leader.openSnapshot();
    const install = await follower.beginInstall();
    for await (const chunk of snapshot.chunks()) await install.write(chunk);
    await snapshot.close();
    // The process dies before install(): nothing switched.
    await install.abort();
    await follower.close();
    const reopened = await open('follower');
    expect((await reopened.get('old'))?.toString()).toBe('old');
    expect(await reopened.get('new')).toBeUndefined();
    expect((await readdir(join(root, 'follower'))).filter((name) => name.startsWith('sm-'))).toEqual([
      'sm-000001',
    ]);
  });
});
