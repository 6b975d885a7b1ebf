import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, pathForKey } from '@impulse/common';
import { ShardNode, parseShardNodeConfig } from '../../src/index.js';

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = await probe();
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Periodic consistency checks: the leader of a group of one runs them on its own timer. */
describe('periodic consistency checks', () => {
  let directory: string;
  let node: ShardNode;
  let base: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-consistency-periodic-'));
    const config = parseShardNodeConfig({
      argv: [
        '--port=0',
        '--engine=leveldb',
        `--data-dir=${directory}`,
        '--bootstrap',
        '--raft-log-sync=false',
        '--tick-interval=10ms',
        '--consistency-check-interval=200ms',
        '--log-level=silent',
      ],
      env: {},
    });
    node = await ShardNode.start(config, createLogger({ service: 'shard-node', level: 'silent' }));
    base = `http://127.0.0.1:${node.port}`;
  });

  afterAll(async () => {
    await node?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('runs a check every --consistency-check-interval while it leads, each at a later index', async () => {
    await waitFor('a leader', async () => (node.replica.status().role === 'leader' ? true : undefined));
    for (let index = 0; index < 5; index++) {
      const put = await fetch(`${base}${pathForKey(`periodic-${index}`)}`, { method: 'PUT', body: 'v' });
      expect(put.status).toBe(204);
    }
    const first = await waitFor('a periodic check', async () => {
      const body = (await (await fetch(`${base}/admin/consistency`)).json()) as {
        index: number | null;
        keys: number;
      };
      return body.index !== null && body.keys === 5 ? body.index : undefined;
    });
    const later = await waitFor('a later periodic check', async () => {
      const body = (await (await fetch(`${base}/admin/consistency`)).json()) as { index: number | null };
      return body.index !== null && body.index > first ? body.index : undefined;
    });
    expect(later).toBeGreaterThan(first);
    // The leader counts a check once every member reported: two of them, at least, soon.
    await waitFor('two checks counted as consistent', async () => {
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const consistent =
        /impulse_replica_consistency_checks_total\{[^}]*outcome="consistent"[^}]*\} (\d+)/.exec(metrics);
      return Number(consistent?.[1]) >= 2 ? true : undefined;
    });
  });

  it('refuses a periodic interval past its maximum', () => {
    expect(() => parseShardNodeConfig({ argv: ['--consistency-check-interval=169h'], env: {} })).toThrow(
      /consistency-check-interval/,
    );
  });
});
