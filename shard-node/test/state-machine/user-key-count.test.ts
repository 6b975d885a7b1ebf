import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@impulse/common';
import type { ConfState, Entry } from '../../src/raft/index.js';
import {
  ReplicaStateMachine,
  encodeCommand,
  type StateMachineOptions,
} from '../../src/state-machine/index.js';
import type { Engine } from '../../src/storage/index.js';
import { FaultyEngine } from './faulty-engine.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const noConfStates = new Map<number, ConfState>();

function put(index: number, key: string, requestId = ''): Entry {
  return {
    index,
    term: 1,
    type: 'normal',
    data: encodeCommand({
      operation: 'put',
      requestId: Buffer.from(requestId),
      key,
      value: Buffer.from(key),
    }),
  };
}

function del(index: number, key: string, requestId = ''): Entry {
  return {
    index,
    term: 1,
    type: 'normal',
    data: encodeCommand({ operation: 'delete', requestId: Buffer.from(requestId), key }),
  };
}

/** Counts what would make reading the count O(n): iterations and counts of the engine. */
class CountingEngine extends FaultyEngine {
  scans = 0;
  override iterate(...args: Parameters<Engine['iterate']>): ReturnType<Engine['iterate']> {
    this.scans++;
    return super.iterate(...args);
  }
  override countKeys(...args: Parameters<Engine['countKeys']>): ReturnType<Engine['countKeys']> {
    this.scans++;
    return super.countKeys(...args);
  }
}

/**
 * Issue 11, item 5: the state machine keeps a count of its user keys as it applies batches, set
 * from the state when it opens and when it installs a snapshot: reading it scans nothing.
 */
describe.each(['memory', 'leveldb'] as const)('the count of user keys on %s', (engineName) => {
  let root: string;
  const opened: ReplicaStateMachine[] = [];
  const open = async (
    name: string,
    overrides: Partial<StateMachineOptions> = {},
  ): Promise<ReplicaStateMachine> => {
    const stateMachine = await ReplicaStateMachine.open({
      directory: join(root, name),
      engine: engineName,
      logger,
      ...overrides,
    });
    opened.push(stateMachine);
    return stateMachine;
  };
  const reopen = async (stateMachine: ReplicaStateMachine, name: string): Promise<ReplicaStateMachine> => {
    // The memory engine keeps its state across a restart in its image only.
    if (engineName === 'memory') await stateMachine.sync();
    await stateMachine.close();
    opened.splice(opened.indexOf(stateMachine), 1);
    return open(name);
  };
  const scanned = async (stateMachine: ReplicaStateMachine): Promise<number> => {
    let count = 0;
    for await (const _entry of stateMachine.scan(
      { start: undefined, end: undefined },
      Number.MAX_SAFE_INTEGER,
    ))
      count++;
    return count;
  };

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-user-key-count-'));
  });
  afterEach(async () => {
    for (const stateMachine of opened.splice(0)) await stateMachine.close();
    await rm(root, { recursive: true, force: true });
  });

  it('counts a put of a new key, a delete of a present one, and nothing else', async () => {
    let engine: CountingEngine | undefined;
    const stateMachine = await open('a', { wrapEngine: (inner) => (engine = new CountingEngine(inner)) });
    expect(stateMachine.userKeyCount).toBe(0);
    const scansAtOpen = engine!.scans;
    await stateMachine.apply(
      [
        put(1, 'a', 'r1'),
        put(2, 'b', 'r2'),
        put(3, 'a', 'r3'), // overwrites
        del(4, 'absent', 'r4'), // deletes nothing
        put(5, 'c', 'r2'), // a request id applied before: a no-op
        put(6, 'd'),
        del(7, 'd'), // created and deleted in one batch
      ],
      noConfStates,
    );
    // a and b: request ids and the replica's own records are not user keys.
    expect(stateMachine.userKeyCount).toBe(2);
    await stateMachine.apply([del(8, 'a'), del(9, 'a'), put(10, 'e'), put(11, 'e')], noConfStates);
    expect(stateMachine.userKeyCount).toBe(2);
    expect(await scanned(stateMachine)).toBe(2);
    // Neither applying nor reading the count scanned anything (the check above is the test's own).
    expect(engine!.scans - scansAtOpen).toBe(1);
  });

  it('is counted again at open, and taken from an installed snapshot', async () => {
    let leader = await open('leader');
    const entries: Entry[] = [];
    for (let index = 1; index <= 300; index++) entries.push(put(index, `key-${index % 120}`, `r-${index}`));
    entries.push(del(301, 'key-7'));
    await leader.apply(entries, noConfStates);
    expect(leader.userKeyCount).toBe(119);
    leader = await reopen(leader, 'leader');
    expect(leader.userKeyCount).toBe(119);

    const follower = await open('follower');
    await follower.apply([put(1, 'only-on-the-follower'), put(2, 'also')], noConfStates);
    expect(follower.userKeyCount).toBe(2);
    const snapshot = await leader.openSnapshot();
    const install = await follower.beginInstall();
    try {
      for await (const chunk of snapshot.chunks()) await install.write(chunk);
    } finally {
      await snapshot.close();
    }
    await follower.install(install);
    expect(follower.userKeyCount).toBe(119);
    await follower.apply([put(302, 'new-after-install')], noConfStates);
    expect(follower.userKeyCount).toBe(120);
  });

  it('is undefined once the state machine is faulted', async () => {
    let engine: FaultyEngine | undefined;
    const stateMachine = await open('faulted', { wrapEngine: (inner) => (engine = new FaultyEngine(inner)) });
    await stateMachine.apply([put(1, 'a')], noConfStates);
    engine!.readError = new Error('IO error: a damaged block (planted)');
    await expect(stateMachine.apply([put(2, 'b')], noConfStates)).rejects.toMatchObject({
      kind: 'read-failed',
    });
    expect(stateMachine.userKeyCount).toBeUndefined();
  });

  it('agrees with a scan after any sequence of batches of puts and deletes', async () => {
    const operation = fc.record({ put: fc.boolean(), key: fc.constantFrom('a', 'b', 'c', 'd', 'e') });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(operation, { minLength: 1, maxLength: 6 }), { maxLength: 8 }),
        async (batches) => {
          const name = `property-${Math.random().toString(36).slice(2)}`;
          const stateMachine = await open(name);
          let index = 0;
          for (const batch of batches) {
            await stateMachine.apply(
              batch.map(({ put: isPut, key }) => (isPut ? put(++index, key) : del(++index, key))),
              noConfStates,
            );
            expect(stateMachine.userKeyCount).toBe(await scanned(stateMachine));
          }
        },
      ),
      { numRuns: engineName === 'memory' ? 100 : 25 },
    );
  });
});
