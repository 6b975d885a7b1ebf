import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SlotTable, pathForKey } from '@impulse/common';
import { foundedFileName, repositoryRoot } from '@impulse/local-cluster';
import { rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';

const startMain = join(repositoryRoot, 'deploy/local/dist/start.js');

/**
 * `npm start` when some replicas cannot start: the launcher keeps every healthy process running,
 * says which replica failed and why, and which groups still have a majority.
 */
describe('npm start with replicas that cannot start', () => {
  let child: ChildProcess | undefined;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>> | undefined;

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    await directory?.remove();
  });

  it('keeps the healthy processes serving and names each failed replica with its cause', async () => {
    directory = await temporaryDirectory('launcher');
    // A file where a replica's data directory belongs: that replica refuses to start. g2 loses one
    // of its three replicas (it keeps a majority), g3 two (it does not).
    for (const [group, replica] of [
      ['g2', 'g2-r1'],
      ['g3', 'g3-r1'],
      ['g3', 'g3-r2'],
    ] as const) {
      mkdirSync(join(directory.path, group), { recursive: true });
      writeFileSync(join(directory.path, group, replica), 'not a directory');
    }
    const started = spawn(
      process.execPath,
      [
        startMain,
        `--data-dir=${directory.path}`,
        '--gateway-port=0',
        '--replica-base-port=0',
        '--log-level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = started;
    let stdout = '';
    let stderr = '';
    started.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    started.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = Date.now() + 60_000;
    while (!stdout.includes('impulse: ready') && started.exitCode === null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(stdout, stderr).toContain('impulse: ready');
    const stderrLines = stderr.split('\n');
    for (const replica of ['g2-r1', 'g3-r1', 'g3-r2']) {
      const line = stderrLines.find((candidate) =>
        candidate.startsWith(`impulse: replica ${replica} did not start:`),
      );
      // The replica's own cause, not only "it exited".
      expect(line, stderr).toMatch(/exited during start-up \(code [12]\): impulse-shard-node: .*data/);
    }
    expect(stderr).toContain('impulse: group g2 runs 2 of its 3 replicas, a majority: it serves');
    expect(stderr).toContain('impulse: group g3 runs 1 of its 3 replicas, not a majority');
    expect(stdout).not.toContain('replica g2-r1 ');
    // The replicas that started founded their groups, and are recorded as having done so.
    const founders = ['g1-r1', 'g1-r2', 'g1-r3', 'g2-r2', 'g2-r3', 'g3-r3'];
    expect(stdout).toContain(`impulse: first start of ${founders.join(', ')}: founded their groups`);
    expect(foundedIn(directory.path)).toEqual(founders);
    const gateway = /gateway +(http:\/\/\S+)/.exec(stdout)?.[1] ?? '';
    // Keys of g1 and g2 are served: g2 elects a leader from its two running replicas.
    const table = SlotTable.fromGroups(['g1', 'g2', 'g3'], 1);
    const keys = Array.from({ length: 60 }, (_, index) => `launcher-${index}`).filter(
      (key) => table.groupForKey(key) !== 'g3',
    );
    expect(keys.some((key) => table.groupForKey(key) === 'g2')).toBe(true);
    for (const key of keys) {
      const put = await rawRequest(gateway, pathForKey(key), { method: 'PUT', body: key, timeoutMs: 20_000 });
      expect(put.status, key).toBe(204);
      expect((await rawRequest(gateway, pathForKey(key))).body.toString(), key).toBe(key);
    }
    started.kill('SIGTERM');
    const [code] = (await once(started, 'exit')) as [number | null];
    expect(code).toBe(0);
  });

  it('on the next start founds only the replicas that never started, and refuses a founded one that lost its data', async () => {
    const root = directory?.path ?? '';
    // The three that could not start can now, for the first time; g1-r1, which founded g1, lost
    // its whole data directory.
    for (const [group, replica] of [
      ['g2', 'g2-r1'],
      ['g3', 'g3-r1'],
      ['g3', 'g3-r2'],
    ] as const) {
      rmSync(join(root, group, replica));
    }
    rmSync(join(root, 'g1', 'g1-r1'), { recursive: true });
    const started = spawn(
      process.execPath,
      [startMain, `--data-dir=${root}`, '--gateway-port=0', '--replica-base-port=0', '--log-level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = started;
    let stdout = '';
    let stderr = '';
    started.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    started.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = Date.now() + 60_000;
    while (!stdout.includes('impulse: ready') && started.exitCode === null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(stdout, stderr).toContain('impulse: ready');
    expect(stdout).toContain('impulse: first start of g2-r1, g3-r1, g3-r2: founded their groups');
    expect(stderr).toMatch(
      /^impulse: replica g1-r1 did not start: g1-r1 exited during start-up \(code 2\): impulse-shard-node: data directory .* holds no Raft state: starting would found group g1 again, with no data\. .*\[DATA_DIRECTORY_EMPTY\]$/m,
    );
    // g1-r1 stays listed: it started here once, so it is never given --bootstrap again.
    expect(foundedIn(root)).toEqual([
      'g1-r1',
      'g1-r2',
      'g1-r3',
      'g2-r1',
      'g2-r2',
      'g2-r3',
      'g3-r1',
      'g3-r2',
      'g3-r3',
    ]);
    const gateway = /gateway +(http:\/\/\S+)/.exec(stdout)?.[1] ?? '';
    // Every key written before is still there (g1 serves from its other two replicas, g2 with its
    // newcomer), and g3, founded by one replica then two more, takes writes.
    const table = SlotTable.fromGroups(['g1', 'g2', 'g3'], 1);
    const keys = Array.from({ length: 60 }, (_, index) => `launcher-${index}`);
    for (const key of keys) {
      const answer = await rawRequest(gateway, pathForKey(key), { timeoutMs: 20_000 });
      if (table.groupForKey(key) === 'g3') {
        expect(answer.status, key).toBe(404);
        const put = await rawRequest(gateway, pathForKey(key), {
          method: 'PUT',
          body: key,
          timeoutMs: 20_000,
        });
        expect(put.status, key).toBe(204);
      } else {
        expect(answer.status, key).toBe(200);
        expect(answer.body.toString(), key).toBe(key);
      }
    }
    started.kill('SIGTERM');
    const [code] = (await once(started, 'exit')) as [number | null];
    expect(code).toBe(0);
  });
});

/** The replicas the launcher's record in `root` lists as founded. */
function foundedIn(root: string): string[] {
  return (JSON.parse(readFileSync(join(root, foundedFileName), 'utf8')) as { replicas: string[] }).replicas;
}
