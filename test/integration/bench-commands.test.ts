import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  runBenchCommand,
  runFailoverCommand,
  runNodeBenchCommand,
  runSeedBenchCommand,
} from '@impulse/loadtest';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { temporaryDirectory } from '../support/temporary-directory.js';

/**
 * The benchmark commands run end to end at a tiny size, on real processes: they start their
 * clusters, measure, print their tables and last line, and write result.json. What they measure
 * is not checked (a benchmark reports, it never fails on a slow machine), only that it ran.
 */
describe('benchmark commands, end to end at a tiny size', () => {
  let results: { path: string; remove: () => Promise<void> };
  let printed: string;

  beforeEach(async () => {
    results = await temporaryDirectory('bench-results');
    printed = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      printed += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    await results.remove();
  });

  const lastLine = (): string => printed.trim().split('\n').at(-1) ?? '';
  const resultFile = async (): Promise<Record<string, unknown>> => {
    const directory = /^results: (.+)$/m.exec(printed)?.[1] ?? '';
    return JSON.parse(await readFile(join(directory, 'result.json'), 'utf8')) as Record<string, unknown>;
  };

  it('npm run bench runs both Impulse shapes', async () => {
    const status = await runBenchCommand(
      [
        '--target=impulse-replicas',
        '--workload=put',
        '--duration=1',
        '--concurrency=4',
        '--record-count=20',
        '--record-bytes=16',
        '--groups=1',
        '--count-syncs=false',
        `--results=${results.path}`,
      ],
      {},
    );
    expect(status, printed).toBe(0);
    expect(lastLine()).toMatch(/ impulse_replicas=\d+ ratio_replicas=n\/a$/);
    const nodes = await runBenchCommand(
      [
        '--target=impulse',
        '--workload=put',
        '--duration=1',
        '--concurrency=4',
        '--record-count=20',
        '--record-bytes=16',
        '--groups=2',
        '--count-syncs=false',
        `--results=${results.path}`,
      ],
      {},
    );
    expect(nodes, printed).toBe(0);
    expect(lastLine()).toMatch(/^bench: workload=put impulse=\d+ etcd=n\/a /);
    expect(printed).toMatch(/^impulse +\d+ .* \d+\.\d$/m);
  });

  it('npm run bench:nodes measures idle nodes and the throughput of two node clusters', async () => {
    const status = await runNodeBenchCommand(
      [
        '--rounds=1',
        '--idle-groups=1,2',
        '--idle-settle=0',
        '--idle-window=1',
        '--groups=1',
        '--spread-groups=2',
        '--replicas-shape=false',
        '--duration=1',
        '--concurrency=4',
        '--record-count=20',
        '--record-bytes=16',
        '--count-syncs=false',
        `--results=${results.path}`,
      ],
      {},
    );
    expect(status, printed).toBe(0);
    expect(lastLine()).toMatch(
      /^bench:nodes: commit=\S+ idle_cpu_percent_per_group=1:[\d.]+,2:[\d.]+ idle_marginal_cpu_percent_per_group=2:-?[\d.]+ throughput=nodes-1:\d+,nodes-2:\d+ spread_ratio=[\d.]+$/,
    );
    const result = await resultFile();
    expect((result['idle'] as { samples: unknown[] }).samples).toHaveLength(2 * 4);
  });

  it('npm run bench:failover kills a leader node, times its groups, and restarts it', async () => {
    const status = await runFailoverCommand(['--rounds=1', '--groups=2', `--results=${results.path}`], {});
    expect(status, printed).toBe(0);
    expect(lastLine()).toMatch(
      /^bench:failover: commit=\S+ rounds=1 groups=2 failovers=[12] unfinished=0 write_max_s=[\d.]+ /,
    );
    expect(printed).toMatch(/restarted and caught up in [\d.]+ s/);
  });

  it("npm run bench:seed runs the seed project's benchmarks on node processes", async () => {
    const status = await runSeedBenchCommand(
      [
        '--engines=memory',
        '--duration=500ms',
        '--requests=5',
        '--clients=2',
        '--nodes=2',
        '--groups=2',
        `--results=${results.path}`,
      ],
      {},
    );
    expect(status, printed).toBe(0);
    const measured = printed.split('\n').filter((line) => line.startsWith('memory '));
    expect(measured.map((line) => line.split(/ +/).slice(0, 3).join(' '))).toEqual([
      'memory concurrent PUT',
      'memory concurrent GET',
      'memory concurrent DELETE',
      'memory sequential PUT',
      'memory sequential GET',
      'memory sequential DELETE',
    ]);
    expect(measured[3]).toMatch(/ requests\/s {2}\(5 requests, 0 errors, 5 requests one after another; p50 /);
    const result = await resultFile();
    expect(result['shape']).toEqual({ kind: 'nodes', nodes: 2, groups: 2, replicasPerGroup: 1 });
  });
});
