import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@impulse/common';
import type { ConfState, Entry } from '../../src/raft/index.js';
import {
  ReplicaStateMachine,
  dataKey,
  decodeCommand,
  encodeCommand,
  hashRecords,
  type ConsistencyHash,
} from '../../src/state-machine/index.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const noConfStates = new Map<number, ConfState>();

function put(index: number, key: string, value: string, requestId = ''): Entry {
  const data = encodeCommand({
    operation: 'put',
    requestId: Buffer.from(requestId),
    key,
    value: Buffer.from(value),
  });
  return { index, term: 1, type: 'normal', data };
}

function check(index: number, requestId = `check-${index}`): Entry {
  const data = encodeCommand({ operation: 'consistency-check', requestId: Buffer.from(requestId) });
  return { index, term: 1, type: 'normal', data };
}

async function* recordsOf(
  pairs: readonly [string, string][],
): AsyncGenerator<{ key: Buffer; value: Buffer }> {
  for (const [key, value] of pairs) {
    const engineKey = dataKey(key);
    yield { key: engineKey, value: Buffer.from(value) };
  }
}

describe('the consistency hash of a state', () => {
  const state: [string, string][] = [
    ['a', '1'],
    ['b', '2'],
    ['c', '3'],
  ];

  it('is the same for the same state, and differs for one altered value, a missing key, or moved bytes', async () => {
    const reference = await hashRecords(recordsOf(state));
    expect(reference.keys).toBe(3);
    expect(await hashRecords(recordsOf(state))).toEqual(reference);
    const altered = await hashRecords(
      recordsOf([
        ['a', '1'],
        ['b', '9'],
        ['c', '3'],
      ]),
    );
    expect(altered.hash).not.toBe(reference.hash);
    const missing = await hashRecords(
      recordsOf([
        ['a', '1'],
        ['c', '3'],
      ]),
    );
    expect(missing.hash).not.toBe(reference.hash);
    expect(missing.keys).toBe(2);
    // The same bytes split differently between key and value are another state.
    const moved = await hashRecords(
      recordsOf([
        ['a', '1'],
        ['b', '2'],
        ['c3', ''],
      ]),
    );
    expect(moved.hash).not.toBe(reference.hash);
  });
});

describe.each(['memory', 'leveldb'] as const)('a consistency-check entry on %s', (engine) => {
  let directory: string;
  const opened: ReplicaStateMachine[] = [];
  const open = async (name: string): Promise<ReplicaStateMachine> => {
    const stateMachine = await ReplicaStateMachine.open({ directory: join(directory, name), engine, logger });
    opened.push(stateMachine);
    return stateMachine;
  };
  const hashOf = async (stateMachine: ReplicaStateMachine, index: number): Promise<ConsistencyHash> => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const result = stateMachine.consistencyHash;
      if (result !== undefined && result.index >= index) return result;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`no consistency hash at ${index}`);
  };

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'i20d-consistency-'));
  });
  afterEach(async () => {
    for (const stateMachine of opened.splice(0)) await stateMachine.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('round-trips through the command codec', () => {
    const decoded = decodeCommand(check(1, 'r').data);
    expect(decoded?.operation).toBe('consistency-check');
    expect(Buffer.from(decoded?.requestId ?? []).toString()).toBe('r');
  });

  it('hashes the state exactly at its index, though later entries apply in the same batch', async () => {
    const first = await open('first');
    const results = await first.apply(
      [put(1, 'a', '1', 'w1'), put(2, 'b', '2', 'w2'), check(3), put(4, 'c', '3', 'w4'), put(5, 'a', 'x')],
      noConfStates,
    );
    expect(results.map((result) => result.outcome)).toEqual([
      'applied',
      'applied',
      'consistency-check',
      'applied',
      'applied',
    ]);
    expect(first.appliedIndex).toBe(5);
    expect(await first.get('a')).toEqual(Buffer.from('x'));
    const atCheck = await hashOf(first, 3);
    expect(atCheck).toMatchObject({ index: 3, keys: 2 });

    // A replica that stopped at the check holds the same state, whatever came after it.
    const second = await open('second');
    await second.apply([put(1, 'a', '1', 'w1'), put(2, 'b', '2', 'w2'), check(3)], noConfStates);
    expect(await hashOf(second, 3)).toEqual(atCheck);

    // One value different at the check: another hash.
    const third = await open('third');
    await third.apply([put(1, 'a', '1', 'w1'), put(2, 'b', '3', 'w2'), check(3)], noConfStates);
    expect((await hashOf(third, 3)).hash).not.toBe(atCheck.hash);

    // A later check covers the later entries.
    await first.apply([check(6)], noConfStates);
    expect(await hashOf(first, 6)).toMatchObject({ index: 6, keys: 3 });
  });
});
