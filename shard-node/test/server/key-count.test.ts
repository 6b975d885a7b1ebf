import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@impulse/common';
import { ShardNode, parseShardNodeConfig } from '../../src/index.js';

const logger = createLogger({ service: 'shard-node', level: 'silent' });

/**
 * Issue 11, item 5: `/admin/status` and `impulse_engine_keys` give the user keys a replica holds,
 * from the count its state machine keeps: not the request ids and other records beside them.
 */
describe.each(['leveldb', 'memory'] as const)('the key count a replica reports on %s', (engine) => {
  let directory: string;
  let node: ShardNode | undefined;
  let base: string;

  const start = async (): Promise<void> => {
    const config = parseShardNodeConfig({
      argv: [
        '--port=0',
        `--engine=${engine}`,
        `--data-dir=${directory}`,
        '--raft-log-sync=false',
        '--tick-interval=10ms',
        '--log-level=silent',
        '--bootstrap',
      ],
      env: {},
    });
    node = await ShardNode.start(config, logger);
    base = `http://127.0.0.1:${node.port}`;
    for (let attempt = 0; attempt < 300 && node.replica.status().role !== 'leader'; attempt++)
      await new Promise((resolve) => setTimeout(resolve, 10));
  };
  const reported = async (): Promise<{ status: unknown; metric: number }> => {
    const status = ((await (await fetch(`${base}/admin/status`)).json()) as { keyCount: unknown }).keyCount;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const metric = Number(
      new RegExp(`^impulse_engine_keys\\{engine="${engine}"[^}]*\\} (\\d+)$`, 'm').exec(metrics)?.[1],
    );
    return { status, metric };
  };
  const write = async (path: string, init: RequestInit): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(`${base}${path}`, init);
      if (response.status === 204) return;
      // Right after its election a replica may not take writes for a moment.
      if (attempt > 100) throw new Error(`${path}: ${response.status} ${await response.text()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-key-count-'));
  });
  afterEach(async () => {
    await node?.stop();
    node = undefined;
    await rm(directory, { recursive: true, force: true });
  });

  it('counts user keys only, in /admin/status and impulse_engine_keys, across a restart', async () => {
    await start();
    expect(await reported()).toEqual({ status: 0, metric: 0 });
    // Every write carries a request id, which the state machine records beside the key.
    for (let index = 0; index < 5; index++) await write(`/kv/key-${index}`, { method: 'PUT', body: 'v' });
    await write('/kv/key-0', { method: 'PUT', body: 'again' });
    await write('/kv/key-1', { method: 'DELETE' });
    await write('/kv/never-written', { method: 'DELETE' });
    expect(await reported()).toEqual({ status: 4, metric: 4 });
    await node?.stop();
    await start();
    expect(await reported()).toEqual({ status: 4, metric: 4 });
  });
});
