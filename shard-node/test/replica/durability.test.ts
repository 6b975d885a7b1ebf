import type * as FileSystem from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Replica } from '../../src/replica/index.js';
import { ReplicaStateMachine } from '../../src/state-machine/index.js';
import { LevelDbEngine } from '../../src/storage/index.js';
import { PowerLossEngine } from '../state-machine/power-loss-engine.js';
import { memberSpec, silentLogger, startReplica, untilLeading } from './harness.js';

/** Every path fsynced through `node:fs/promises`, in order (see the mock below). */
const fsynced = vi.hoisted(() => [] as string[]);

// Records each fsync with the path its handle was opened on: which directories were made durable
// shows nowhere else short of cutting the power.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FileSystem>();
  const open: typeof actual.open = async (...args) => {
    const handle = await actual.open(...args);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      fsynced.push(String(args[0]));
      await sync();
    };
    return handle;
  };
  return { ...actual, default: { ...actual, open }, open };
});

/**
 * Issue 11, item 1: what a replica has made durable before its Raft log is compacted behind the
 * state machine. Batches are applied to the engine without fsync (the log can replay them); once
 * the log is compacted it no longer can, so the engine must have been made durable first.
 */
describe('durability before compaction', () => {
  let directory: string;
  const running: Replica[] = [];

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-durability-'));
    fsynced.length = 0;
  });
  afterEach(async () => {
    for (const replica of running.splice(0)) await replica.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('loses no applied write in a power cut after the log was compacted (the engine synced first)', async () => {
    const self = memberSpec(1);
    let engine: PowerLossEngine | undefined;
    const replica = await startReplica(self, [self], directory, {
      wrapEngine: (inner) => (engine = new PowerLossEngine(inner)),
    });
    running.push(replica);
    await untilLeading(replica);
    const written = 100;
    for (let index = 0; index < written; index++) {
      await replica.write({
        operation: 'put',
        requestId: Buffer.from(`request-${index}`),
        key: `key-${index}`,
        value: Buffer.from(`value-${index}`),
      });
    }
    // The premise: the log was compacted, so it cannot replay the early writes any more.
    expect(replica.status().firstIndex).toBeGreaterThan(50);
    await replica.stop();
    running.splice(0);

    // The power cut: the engine keeps what it made durable, nothing else. (The Raft log fsyncs
    // every write before acknowledging it: it keeps everything.)
    const survivor = engine as PowerLossEngine;
    const generation = join(directory, 'state', 'sm-000001');
    await rm(generation, { recursive: true, force: true });
    const rebuilt = await LevelDbEngine.open({ directory: generation, sync: true });
    await rebuilt.batch(
      [...survivor.durable].map(([key, value]) => ({ type: 'put', key: Buffer.from(key, 'latin1'), value })),
    );
    await rebuilt.close();

    const restarted = await startReplica(self, [self], directory);
    running.push(restarted);
    expect(restarted.fault).toBeUndefined();
    await untilLeading(restarted);
    for (let index = 0; index < written; index++) {
      const value = await restarted.read(`key-${index}`, 'linearizable');
      expect(value?.toString(), `key-${index}`).toBe(`value-${index}`);
    }
  });

  it('fsyncs the folders that hold the state directory and each engine generation it creates', async () => {
    const state = join(directory, 'replica', 'state');
    const stateMachine = await ReplicaStateMachine.open({
      directory: state,
      engine: 'leveldb',
      logger: silentLogger,
    });
    try {
      // The data directory holds `state/`, which holds the generation `sm-000001`.
      expect(fsynced).toEqual(expect.arrayContaining([join(directory, 'replica'), state]));
      fsynced.length = 0;
      const install = await stateMachine.beginInstall();
      await install.abort();
      expect(fsynced).toContain(state);
    } finally {
      await stateMachine.close();
    }
  });
});
