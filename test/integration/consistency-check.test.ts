import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pathForKey } from '@impulse/common';
import { LocalCluster } from '@impulse/local-cluster';
import { dataKey, openEngine, sealRecord } from '@impulse/shard-node';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { waitFor } from '../support/wait-for.js';

const keyCount = 60;

interface ConsistencyReport {
  index: number;
  replicas: { replicaId: string; hash: string | null; keys: number | null; matches: boolean }[];
  consistent: boolean;
  verdictCommitted: boolean;
}

/**
 * Replica consistency checks on a real group of 3 on LevelDB: a check of a healthy group is
 * consistent; then one replica's state is altered on purpose, with the state machine's own sealed
 * records, so that no per-record checksum and no batch-chain check can see it (one key deleted,
 * one value replaced by another validly sealed value), and the check names exactly that replica.
 * The verdict goes through the log: the divergent replica faults itself and is rebuilt from the
 * leader's snapshot, after which it holds every key as written and a new check is consistent.
 */
describe('replica consistency checks (leveldb)', () => {
  let cluster: LocalCluster | undefined;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>> | undefined;

  afterEach(async () => {
    await cluster?.stop();
    await directory?.remove();
    cluster = undefined;
    directory = undefined;
  });

  async function check(url: string): Promise<ConsistencyReport> {
    const response = await rawRequest(url, '/admin/consistency-check', {
      method: 'POST',
      headers: cluster?.adminHeaders() ?? {},
    });
    expect(response.status, response.body.toString()).toBe(200);
    return response.json() as ConsistencyReport;
  }

  it('finds a replica altered where checksums cannot see it, names exactly that one, and rebuilds it', async () => {
    directory = await temporaryDirectory('consistency-check');
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      engine: 'leveldb',
      logLevel: 'info',
      readyTimeoutMs: 8000,
    });
    const running = cluster;
    for (let index = 0; index < keyCount; index++) {
      const key = `key-${String(index).padStart(3, '0')}`;
      const response = await rawRequest(running.gatewayUrl, pathForKey(key), {
        method: 'PUT',
        body: `v${index}`,
      });
      expect(response.status).toBe(204);
    }

    let leader = await running.leaderOf('g1');
    const follower = running.group('g1').find((replica) => replica.replicaId !== leader.replicaId);
    if (follower === undefined) throw new Error('no follower');
    const refused = await rawRequest(follower.url, '/admin/consistency-check', {
      method: 'POST',
      headers: running.adminHeaders(),
    });
    expect(refused.status).toBe(421);
    expect(errorCodeOf(refused)).toBe('NOT_LEADER');
    expect(refused.json()).toMatchObject({ error: { leaderHint: leader.replicaId } });

    const healthy = await check(leader.url);
    expect(healthy.consistent).toBe(true);
    expect(healthy.verdictCommitted).toBe(false);
    expect(healthy.replicas.map((replica) => replica.replicaId).sort()).toEqual(['g1-r1', 'g1-r2', 'g1-r3']);
    for (const replica of healthy.replicas) expect(replica).toMatchObject({ keys: keyCount, matches: true });
    const own = (
      await rawRequest(follower.url, '/admin/consistency', { headers: running.adminHeaders() })
    ).json() as Record<string, unknown>;
    expect(own).toMatchObject({ replicaId: follower.replicaId, index: healthy.index, keys: keyCount });

    // Alter a follower while it is stopped: one key's record deleted (a lost write), one value
    // replaced by another sealed one (a bug that wrote a wrong value): both pass every checksum.
    const altered = follower;
    const exited = once(altered.child as NonNullable<typeof altered.child>, 'exit');
    running.signal(altered.replicaId, 'SIGTERM');
    await exited;
    const state = join(altered.dataDirectory, 'state');
    // The live generation: no snapshot was installed, so it is the only one.
    const generations = (await readdir(state)).filter((name) => name.startsWith('sm-'));
    expect(generations).toHaveLength(1);
    const generation = generations[0] as string;
    const engine = await openEngine({ name: 'leveldb', directory: join(state, generation), sync: true });
    try {
      const deleted = dataKey('key-007');
      expect(await engine.get(deleted)).toBeDefined();
      await engine.delete(deleted);
      const replaced = dataKey('key-011');
      await engine.put(replaced, sealRecord(replaced, Buffer.from('not what was written')));
    } finally {
      await engine.close();
    }
    await running.restart(altered.replicaId);

    // The altered replica serves its wrong value without a fault: only a comparison finds it.
    const stale = await rawRequest(altered.url, `${pathForKey('key-011')}?consistency=stale`);
    expect(stale.status).toBe(200);
    expect(stale.body.toString()).toBe('not what was written');

    leader = await running.leaderOf('g1', 10_000, [altered.replicaId]);
    const report = await check(leader.url);
    expect(report.consistent).toBe(false);
    expect(report.index).toBeGreaterThan(healthy.index);
    const divergent = report.replicas.filter((replica) => !replica.matches);
    expect(divergent.map((replica) => replica.replicaId)).toEqual([altered.replicaId]);
    expect(divergent[0]?.keys).toBe(keyCount - 1);
    for (const replica of report.replicas.filter((candidate) => candidate.matches))
      expect(replica.keys).toBe(keyCount);

    const metrics = (await rawRequest(leader.url, '/metrics')).body.toString();
    expect(metrics).toMatch(/^impulse_replica_consistency_mismatches_total(\{[^}]*\})? 1$/m);
    expect(metrics).toMatch(
      /^impulse_replica_consistency_checks_total\{[^}]*outcome="inconsistent"[^}]*\} 1$/m,
    );
    const log = await readFile(leader.logFile, 'utf8');
    const line = log.split('\n').find((text) => text.includes('consistency: replica diverges'));
    expect(line, 'the divergence log line').toBeDefined();
    expect(JSON.parse(line as string)).toMatchObject({ level: 50, divergentReplicaId: altered.replicaId });

    // Two voters of three agreed: the verdict was committed, the altered replica faulted itself
    // (kind divergent), asked the leader for a snapshot, and serves again from it.
    expect(report.verdictCommitted).toBe(true);
    await waitFor('the divergent replica to be rebuilt', async () =>
      (await readFile(altered.logFile, 'utf8')).includes("rebuilt from the leader's snapshot"),
    );
    const faultLine = (await readFile(altered.logFile, 'utf8'))
      .split('\n')
      .find((text) => text.includes('replica: storage fault'));
    expect(JSON.parse(faultLine as string)).toMatchObject({ level: 50, faultKind: 'divergent' });
    await waitFor(
      'the rebuilt replica to be ready',
      async () => (await rawRequest(altered.url, '/readyz')).status === 200,
    );
    const alteredMetrics = (await rawRequest(altered.url, '/metrics')).body.toString();
    expect(alteredMetrics).toMatch(/^impulse_replica_storage_faults_total(\{[^}]*\})? 1$/m);
    expect(alteredMetrics).toMatch(/^impulse_replica_rebuilds_total(\{[^}]*\})? 1$/m);
    expect(alteredMetrics).toMatch(/^impulse_replica_storage_fault(\{[^}]*\})? 0$/m);
    for (let index = 0; index < keyCount; index++) {
      const key = `key-${String(index).padStart(3, '0')}`;
      const answer = await rawRequest(altered.url, `${pathForKey(key)}?consistency=stale`);
      expect(answer.status, key).toBe(200);
      expect(answer.body.toString(), key).toBe(`v${index}`);
    }
    const after = await check((await running.leaderOf('g1')).url);
    expect(after.consistent).toBe(true);
    for (const replica of after.replicas) expect(replica).toMatchObject({ keys: keyCount, matches: true });
  });
});
