import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayMain, shardNodeMain } from '@impulse/local-cluster';
import { temporaryDirectory } from '../support/temporary-directory.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(
  main: string,
  argumentsList: readonly string[],
  env: Record<string, string> = {},
): Promise<Run> {
  const child = spawn(process.execPath, [main, ...argumentsList], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

describe('the command lines of the shard-node and the gateway', () => {
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  beforeAll(async () => {
    directory = await temporaryDirectory('cli');
  });
  afterAll(async () => {
    await directory.remove();
  });

  it('print --help with every option, its unit and its default, and exit 0', async () => {
    const shardNode = await run(shardNodeMain, ['--help']);
    expect(shardNode.code).toBe(0);
    expect(shardNode.stdout).toMatch(/--value-bytes-max <bytes> +env IMPULSE_VALUE_BYTES_MAX, default 1MiB/);
    expect(shardNode.stdout).toMatch(/--engine <memory\|leveldb>/);
    const gateway = await run(gatewayMain, ['--help']);
    expect(gateway.code).toBe(0);
    expect(gateway.stdout).toMatch(/--request-deadline <ms> +env IMPULSE_REQUEST_DEADLINE, default 10000/);
  });

  it('refuse garbage configuration with every problem listed and exit 2', async () => {
    const shardNode = await run(shardNodeMain, ['--port=http', '--engine', 'rocksdb', '--frobnicate'], {
      IMPULSE_VALUE_BYTES_MAX: 'lots',
    });
    expect(shardNode.code).toBe(2);
    expect(shardNode.stderr).toContain('--port: must be a whole number');
    expect(shardNode.stderr).toContain('--engine: must be one of memory, leveldb');
    expect(shardNode.stderr).toContain('unknown option --frobnicate');
    expect(shardNode.stderr).toContain('IMPULSE_VALUE_BYTES_MAX: must be a whole number');

    const noCluster = await run(gatewayMain, ['--port=0']);
    expect(noCluster.code).toBe(2);
    expect(noCluster.stderr).toMatch(/a cluster configuration is required/);
    const badCluster = await run(gatewayMain, [
      '--port=0',
      '--cluster={"groups":[{"id":"g1","replicas":[]}]}',
    ]);
    expect(badCluster.code).toBe(2);
    expect(badCluster.stderr).toContain('cluster.groups[0].replicas: must be an array of 1 to 7 replicas');
    const notJson = await run(gatewayMain, ['--port=0', '--cluster-file', `${directory.path}/missing.json`]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/cannot read cluster file/);
  });

  it('refuse to start a second replica on a data directory in use, with a clear error', async () => {
    const dataDir = `${directory.path}/locked`;
    const first = spawn(
      process.execPath,
      [shardNodeMain, '--port=0', '--bootstrap', `--data-dir=${dataDir}`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      // Wait until the first one logs that it listens, so its data directory's lock is held.
      await new Promise<void>((resolve, reject) => {
        first.stdout.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('server: listening')) resolve();
        });
        first.once('exit', () => reject(new Error('the first replica exited')));
      });
      const second = await run(shardNodeMain, ['--port=0', `--data-dir=${dataDir}`]);
      expect(second.code).toBe(1);
      expect(second.stdout).toMatch(/"level":60/);
      expect(second.stderr.split('\n')[0]).toMatch(
        /^impulse-shard-node: data directory .* is in use by another process \(pid \d+\).* \[DATA_DIRECTORY_LOCKED\]$/,
      );
    } finally {
      first.kill('SIGTERM');
      const [code] = (await once(first, 'exit')) as [number | null];
      expect(code).toBe(0);
    }
  });
});
