import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@impulse/common';
import { ShardNode, parseShardNodeConfig } from '../../src/index.js';
import { batchKey, dataKey } from '../../src/state-machine/index.js';
import { LevelDbEngine } from '../../src/storage/index.js';

const logger = createLogger({ service: 'shard-node', level: 'silent' });

interface Answer {
  readonly status: number;
  readonly text: string;
}

/**
 * The fault state of a real replica (a group of one on LevelDB) whose engine was damaged while it
 * was stopped, through the engine itself: a value altered in place, a batch record removed. Each
 * test checks the whole outward behaviour: no value served, the fault on every report, the
 * replica stepped down for good, the process still running.
 */
describe('a replica with a storage fault', () => {
  let directory: string;
  let node: ShardNode | undefined;
  let base: string;

  const start = async (): Promise<ShardNode> => {
    const config = parseShardNodeConfig({
      argv: [
        '--port=0',
        '--engine=leveldb',
        `--data-dir=${directory}`,
        '--raft-log-sync=false',
        '--tick-interval=10ms',
        '--log-level=silent',
        // Founds the group of one on its first start; ignored once the directory holds Raft state.
        '--bootstrap',
      ],
      env: {},
    });
    node = await ShardNode.start(config, logger);
    base = `http://127.0.0.1:${node.port}`;
    return node;
  };
  const stop = async (): Promise<void> => {
    await node?.stop();
    node = undefined;
  };
  const call = async (path: string, init: RequestInit = {}): Promise<Answer> => {
    const response = await fetch(`${base}${path}`, init);
    return { status: response.status, text: await response.text() };
  };
  const codeOf = (answer: Answer): string =>
    (JSON.parse(answer.text) as { error: { code: string } }).error.code;
  const untilLeader = async (started: ShardNode): Promise<void> => {
    for (let attempt = 0; attempt < 200 && started.replica.status().role !== 'leader'; attempt++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(started.replica.status().role).toBe('leader');
  };
  /** Changes the engine of the stopped replica through LevelDB itself. */
  const damage = async (change: (engine: LevelDbEngine) => Promise<void>): Promise<void> => {
    const engine = await LevelDbEngine.open({ directory: join(directory, 'state', 'sm-000001'), sync: true });
    try {
      await change(engine);
    } finally {
      await engine.close();
    }
  };
  const writeKeys = async (): Promise<void> => {
    await untilLeader(await start());
    for (let index = 0; index < 20; index++) {
      expect((await call(`/kv/key-${index}`, { method: 'PUT', body: `value-${index}` })).status).toBe(204);
    }
    await stop();
  };
  const expectReported = async (kind: string): Promise<void> => {
    const ready = await call('/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.text)).toMatchObject({ error: { code: 'STORAGE_FAULT', faultKind: kind } });
    const status = await call('/admin/status');
    expect(status.status).toBe(200);
    expect(JSON.parse(status.text)).toMatchObject({ storageFault: { kind }, keyCount: null });
    const metrics = (await call('/metrics')).text;
    expect(metrics).toMatch(/^impulse_replica_storage_fault(\{[^}]*\})? 1$/m);
    expect(metrics).toMatch(/^impulse_replica_storage_faults_total(\{[^}]*\})? 1$/m);
    expect((await call('/healthz')).status).toBe(200);
  };

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-replica-fault-'));
  });
  afterEach(async () => {
    await stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('answers STORAGE_FAULT rather than an altered value, steps down and never leads again', async () => {
    await writeKeys();
    await damage(async (engine) => {
      const stored = await engine.get(dataKey('key-7'));
      expect(stored).toBeDefined();
      const altered = Buffer.from(stored as Buffer);
      altered[altered.length - 1] = (altered[altered.length - 1] as number) ^ 0x20;
      await engine.put(dataKey('key-7'), altered);
    });
    const started = await start();
    // Nothing is wrong until the damaged value is read: the replica leads its group of one.
    await untilLeader(started);
    expect((await call('/readyz')).status).toBe(200);
    expect(await (await fetch(`${base}/kv/key-3`)).text()).toBe('value-3');
    const damaged = await call('/kv/key-7');
    expect(damaged.status).toBe(503);
    expect(JSON.parse(damaged.text)).toMatchObject({
      error: { code: 'STORAGE_FAULT', faultKind: 'checksum-mismatch', faultKey: 'd:key-7' },
    });
    await expectReported('checksum-mismatch');
    // It stepped down at once, and no election timeout makes it campaign again.
    expect(started.replica.status().role).toBe('follower');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(started.replica.status().role).toBe('follower');
    // Every read and write is refused now, healthy keys too, stale or not.
    expect(codeOf(await call('/kv/key-3?consistency=stale'))).toBe('STORAGE_FAULT');
    expect(codeOf(await call('/kv?consistency=stale'))).toBe('STORAGE_FAULT');
    expect(codeOf(await call('/kv/new', { method: 'PUT', body: 'x' }))).toBe('STORAGE_FAULT');
  });

  it('starts faulted, serving nothing, when a batch was lost while a later one survived', async () => {
    await writeKeys();
    let removed = 0;
    await damage(async (engine) => {
      // Remove the record of a batch in the middle, as if LevelDB had dropped its log block.
      for await (const { key } of engine.iterate({ start: batchKey(5), end: batchKey(1_000_000) })) {
        if (removed === 0) {
          await engine.delete(key);
          removed++;
        }
      }
    });
    expect(removed).toBe(1);
    const started = await start();
    await expectReported('gap');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(started.replica.status().role).toBe('follower');
    expect(codeOf(await call('/kv/key-3?consistency=stale'))).toBe('STORAGE_FAULT');
  });
});
