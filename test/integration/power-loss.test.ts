import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster, PowerFs, type PowerCut } from '@impulse/local-cluster';
import { LevelDbEngine } from '../../shard-node/src/storage/index.js';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { findLostWrites, startWriteLoad } from '../support/write-load.js';

const builtStorage = resolve('shard-node/dist/storage/index.js');

/**
 * Power loss, on the power-cut file system (`deploy/powerfs`): a process is killed and everything
 * it wrote that no fsync made durable is dropped (contents, creations, renames, removals). What
 * was acknowledged must survive, on one replica and on every replica of a group at once.
 */
describe('power loss', () => {
  const mounts: PowerFs[] = [];
  let cluster: LocalCluster | undefined;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>> | undefined;

  afterEach(async () => {
    await cluster?.stop();
    for (const mount of mounts.splice(0)) await mount.unmount();
    await directory?.remove();
    cluster = undefined;
    directory = undefined;
  });

  // LevelDB writes a new database's first manifest without an fsync, then its first open points
  // CURRENT at a second manifest by a rename it does not make durable: a cut right after the open
  // left CURRENT naming an empty manifest ("no meta-nextfile entry in descriptor"), and the
  // replica could never start again.
  it('a LevelDB database just created opens again after a power cut', async () => {
    directory = await temporaryDirectory('power-leveldb');
    const mount = await PowerFs.mount({
      backingDirectory: join(directory.path, 'backing'),
      mountpoint: join(directory.path, 'data'),
    });
    mounts.push(mount);
    const database = join(mount.mountpoint, 'sm-000001');
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { LevelDbEngine } = await import(${JSON.stringify(builtStorage)});
         const engine = await LevelDbEngine.open({ directory: ${JSON.stringify(database)}, sync: false });
         await engine.put(Buffer.from('a'), Buffer.from('synced'));
         await engine.sync();
         await engine.put(Buffer.from('b'), Buffer.from('never synced'));
         console.log('ready');
         setInterval(() => undefined, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
    expect(line).toBe('ready');
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    const cut = await mount.cut();
    // The cut took effect: the unsynced write was there to lose.
    expect(cut.bytesDropped).toBeGreaterThan(0);

    const engine = await LevelDbEngine.open({ directory: database, sync: false });
    try {
      expect((await engine.get(Buffer.from('a')))?.toString()).toBe('synced');
      expect(await engine.get(Buffer.from('b'))).toBeUndefined();
    } finally {
      await engine.close();
    }
  });

  it('keeps every acknowledged write through a power cut of one replica, then of the whole group', async () => {
    directory = await temporaryDirectory('power-group');
    const dataRoot = join(directory.path, 'data');
    const replicaIds = ['g1-r1', 'g1-r2', 'g1-r3'];
    // Each replica's data directory is a mount of its own, as on three machines.
    const byReplica = new Map<string, PowerFs>();
    for (const replicaId of replicaIds) {
      const mount = await PowerFs.mount({
        backingDirectory: join(directory.path, 'backing', replicaId),
        mountpoint: join(dataRoot, 'g1', replicaId),
      });
      mounts.push(mount);
      byReplica.set(replicaId, mount);
    }
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: dataRoot,
      readyTimeoutMs: 15_000,
    });
    const running = cluster;
    const powerCut = async (victims: readonly string[]): Promise<PowerCut[]> => {
      await Promise.all(victims.map((replicaId) => running.kill(replicaId)));
      return Promise.all(victims.map((replicaId) => (byReplica.get(replicaId) as PowerFs).cut()));
    };

    const load = startWriteLoad(running.gatewayUrl, { concurrency: 8, prefix: 'power' });
    await sleep(3_000);
    const leader = await running.leaderOf('g1');
    const [oneCut] = await powerCut([leader.replicaId]);
    await sleep(1_000);
    await running.restart(leader.replicaId);
    await sleep(2_000);
    const groupCuts = await powerCut(replicaIds);
    const result = await load.stop();
    await Promise.all(replicaIds.map((replicaId) => running.restart(replicaId)));
    await running.leaderOf('g1', 30_000);

    // Each cut took effect: every replica had unsynced writes to lose (LevelDB's log is written
    // without a sync; the Raft log is the durable record).
    expect(oneCut?.bytesDropped).toBeGreaterThan(0);
    for (const cut of groupCuts) expect(cut.bytesDropped).toBeGreaterThan(0);
    expect(result.acknowledged.size).toBeGreaterThan(100);
    expect(await findLostWrites(running.gatewayUrl, result.acknowledged)).toEqual([]);
  }, 180_000);
});

const sleep = (ms: number): Promise<void> => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
