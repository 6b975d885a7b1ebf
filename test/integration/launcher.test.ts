import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SlotTable, pathForKey } from '@impulse/common';
import { adminTokenFileName, foundedFileName, repositoryRoot } from '@impulse/local-cluster';
import { rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';

const startMain = join(repositoryRoot, 'deploy/local/dist/start.js');

/** Runs `npm start` on `root` with free ports until it says it is ready; answers its output so far. */
async function startLauncher(
  root: string,
  onChild: (child: ChildProcess) => void,
): Promise<{ child: ChildProcess; stdout: () => string; stderr: () => string }> {
  const started = spawn(
    process.execPath,
    [startMain, `--data-dir=${root}`, '--gateway-port=0', '--node-base-port=0', '--log-level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  onChild(started);
  let stdout = '';
  let stderr = '';
  started.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  started.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 60_000;
  while (!stdout.includes('impulse: ready') && started.exitCode === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child: started, stdout: () => stdout, stderr: () => stderr };
}

/**
 * `npm start` (3 nodes, each hosting a replica of g1, g2 and g3) when a node, or one replica on a
 * node, cannot start: the launcher keeps every healthy process running, says which node or replica
 * failed and why, and which groups still have a majority. Replica r of group g lives on node
 * (g + r - 2) mod 3 + 1: g1-r1 n1, g1-r2 n2, g1-r3 n3; g2-r1 n2, g2-r2 n3, g2-r3 n1; g3-r1 n3,
 * g3-r2 n1, g3-r3 n2.
 */
describe('npm start with nodes or replicas that cannot start', () => {
  let child: ChildProcess | undefined;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>> | undefined;
  let firstToken = '';

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    await directory?.remove();
  });

  it('keeps the healthy processes serving and names each failed node and replica with its cause', async () => {
    directory = await temporaryDirectory('launcher');
    // A file where n3's data directory belongs: the node refuses to start. A file where n2 keeps
    // g3's replica: that replica fails, and n2 serves its others. g1 and g2 lose one replica of
    // three (they keep a majority), g3 two (it does not).
    writeFileSync(join(directory.path, 'n3'), 'not a directory');
    mkdirSync(join(directory.path, 'n2', 'groups'), { recursive: true });
    writeFileSync(join(directory.path, 'n2', 'groups', 'g3'), 'not a directory');
    const {
      child: started,
      stdout,
      stderr,
    } = await startLauncher(directory.path, (spawned) => {
      child = spawned;
    });
    expect(stdout(), stderr()).toContain('impulse: ready');
    expect(stderr()).toMatch(
      /^impulse: node n3 did not start: n3 exited during start-up \(code [12]\): impulse-shard-node: .*data/m,
    );
    expect(stderr()).toMatch(/^impulse: node n2's replica of g3 did not start: .*groups\/g3/m);
    expect(stderr()).toContain('impulse: group g1 runs 2 of its 3 replicas, a majority: it serves');
    expect(stderr()).toContain('impulse: group g2 runs 2 of its 3 replicas, a majority: it serves');
    expect(stderr()).toContain('impulse: group g3 runs 1 of its 3 replicas, not a majority');
    expect(stdout()).not.toContain('node n3 ');
    // The replicas that started founded their groups, and are recorded as having done so.
    const founders = ['g1-r1', 'g1-r2', 'g2-r1', 'g2-r3', 'g3-r2'];
    expect(stdout()).toContain(`impulse: first start of ${founders.join(', ')}: founded their groups`);
    expect(foundedIn(directory.path)).toEqual(founders);
    const gateway = /gateway +(http:\/\/\S+)/.exec(stdout())?.[1] ?? '';
    // Keys of g1 and g2 are served, each group electing a leader from its two running replicas.
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
    // The launcher made an admin token, said where, and gave it to every process (decision 0017).
    const tokenFile = join(directory.path, adminTokenFileName);
    expect(stdout()).toContain(`admin token ${tokenFile}`);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    firstToken = readFileSync(tokenFile, 'utf8').trim();
    expect(firstToken).toMatch(/^[0-9a-f]{64}$/);
    expect((await rawRequest(gateway, '/admin/cluster')).status).toBe(401);
    const map = await rawRequest(gateway, '/admin/cluster', {
      headers: { authorization: `Bearer ${firstToken}` },
    });
    expect(map.status).toBe(200);
    // The gateway asked the replicas with the token too: they answered their roles.
    const roles = (map.json() as { groups: { replicas: { role?: string }[] }[] }).groups.flatMap((group) =>
      group.replicas.map((replica) => replica.role),
    );
    expect(roles).toContain('leader');
    started.kill('SIGTERM');
    const [code] = (await once(started, 'exit')) as [number | null];
    expect(code).toBe(0);
  });

  it('on the next start founds only the replicas that never started, and refuses founded ones that lost their data', async () => {
    const root = directory?.path ?? '';
    // n3 and n2's g3 can start now, for the first time; n1, whose replicas founded their groups,
    // lost its whole data directory.
    rmSync(join(root, 'n3'));
    rmSync(join(root, 'n2', 'groups', 'g3'));
    rmSync(join(root, 'n1'), { recursive: true });
    const {
      child: started,
      stdout,
      stderr,
    } = await startLauncher(root, (spawned) => {
      child = spawned;
    });
    expect(stdout(), stderr()).toContain('impulse: ready');
    expect(stdout()).toContain('impulse: first start of g1-r3, g2-r2, g3-r1, g3-r3: founded their groups');
    // The admin token is kept from one start to the next.
    expect(readFileSync(join(root, adminTokenFileName), 'utf8').trim()).toBe(firstToken);
    for (const group of ['g1', 'g2', 'g3']) {
      expect(stderr()).toMatch(
        new RegExp(
          `^impulse: node n1's replica of ${group} did not start: data directory .* holds no Raft state: starting would found group ${group} again, with no data\\.`,
          'm',
        ),
      );
    }
    // n1's replicas stay listed: they started here once, so they are never founded again.
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
    const gateway = /gateway +(http:\/\/\S+)/.exec(stdout())?.[1] ?? '';
    // Every key written before is still there (g1 and g2 serve from n2 and n3), and g3, founded
    // by n1's replica alone then by two more, takes writes.
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
