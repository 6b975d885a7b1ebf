import { once } from 'node:events';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { pathForKey } from '@impulse/common';
import { LocalCluster, type ReplicaProcess } from '@impulse/local-cluster';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { waitFor } from '../support/wait-for.js';

/** Keys written per run: enough for LevelDB's write-ahead log to span several 32 KiB blocks. */
const keyCount = 800;
const writeConcurrency = 16;
/** LevelDB's write-ahead log is read in blocks of this size; a damaged block is dropped whole. */
const logBlockBytes = 32 * 1024;

interface ScanPage {
  items: { key: string; value: string; encoding?: string }[];
  next: string | null;
}

/**
 * The storage-fault suite: a real group of 3 replicas on LevelDB behind the gateway; acknowledged
 * writes; every replica stopped cleanly (SIGTERM); one byte of one replica's LevelDB files flipped
 * where it changes what LevelDB returns (inside a value in a table file, or inside a value in the
 * write-ahead log, in a block that is not the last); every replica started again. Then: no read
 * path answers a wrong value, no acknowledged write is missing through the gateway, the damaged
 * replica reports the fault everywhere, and the group serves on its two healthy replicas. A run
 * whose damage the replica never saw fails: the fault report is asserted, not hoped for.
 */
describe('storage faults on one replica of a group (leveldb)', () => {
  let cluster: LocalCluster | undefined;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>> | undefined;

  afterEach(async () => {
    await cluster?.stop();
    await directory?.remove();
    cluster = undefined;
    directory = undefined;
  });

  async function startAndWrite(shardNodeArguments: readonly string[]): Promise<Map<string, string>> {
    directory = await temporaryDirectory('storage-faults');
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      logLevel: 'info',
      readyTimeoutMs: 8000,
      shardNodeArguments,
    });
    await cluster.leaderOf('g1');
    const acknowledged = new Map<string, string>();
    const gatewayUrl = cluster.gatewayUrl;
    let next = 0;
    const writer = async (): Promise<void> => {
      while (next < keyCount) {
        const key = `key-${String(next++).padStart(5, '0')}`;
        // Hexadecimal text: the tables' compression leaves it as literals, so it can be found.
        const value = randomBytes(50).toString('hex');
        const response = await rawRequest(gatewayUrl, pathForKey(key), { method: 'PUT', body: value });
        if (response.status === 204) acknowledged.set(key, value);
      }
    };
    await Promise.all(Array.from({ length: writeConcurrency }, writer));
    expect(acknowledged.size).toBe(keyCount);
    return acknowledged;
  }

  /** SIGTERM to every replica, as a clean stop; the gateway stays. */
  async function stopReplicas(): Promise<void> {
    const running = cluster as LocalCluster;
    await Promise.all(
      running.group('g1').map(async (replica) => {
        const child = replica.child;
        if (child === undefined) return;
        const exited = once(child, 'exit');
        running.signal(replica.replicaId, 'SIGTERM');
        await exited;
      }),
    );
  }

  /** Flips one byte inside the first value found in one of `files`; answers the key and file. */
  async function flipInsideValue(
    files: readonly string[],
    acknowledged: ReadonlyMap<string, string>,
    acceptPosition: (position: number, fileBytes: number) => boolean,
  ): Promise<{ key: string; file: string }> {
    for (const file of files) {
      const bytes = await readFile(file);
      for (const [key, value] of acknowledged) {
        const position = bytes.indexOf(Buffer.from(value, 'latin1'));
        if (position < 0 || !acceptPosition(position, bytes.length)) continue;
        const middle = position + (value.length >> 1);
        bytes[middle] = (bytes[middle] as number) ^ 0x01;
        await writeFile(file, bytes);
        return { key, file };
      }
    }
    throw new Error(`no acknowledged value was found in ${files.join(', ')}`);
  }

  async function engineFiles(replica: ReplicaProcess, extension: string): Promise<string[]> {
    const state = join(replica.dataDirectory, 'state');
    const generations = (await readdir(state)).filter((name) => name.startsWith('sm-'));
    const files: string[] = [];
    for (const generation of generations) {
      for (const name of await readdir(join(state, generation))) {
        if (name.endsWith(extension)) files.push(join(state, generation, name));
      }
    }
    // The largest first: most values, and for the log, most blocks before its last.
    const sizes = new Map(
      await Promise.all(files.map(async (file) => [file, (await stat(file)).size] as const)),
    );
    return files.sort((left, right) => (sizes.get(right) ?? 0) - (sizes.get(left) ?? 0));
  }

  /** Every acknowledged key, read linearizably through the gateway: each exactly as written. */
  async function expectEveryKeyThroughGateway(acknowledged: ReadonlyMap<string, string>): Promise<void> {
    const gatewayUrl = (cluster as LocalCluster).gatewayUrl;
    const wrong: string[] = [];
    const keys = [...acknowledged.keys()];
    let next = 0;
    const reader = async (): Promise<void> => {
      while (next < keys.length) {
        const key = keys[next++] as string;
        const response = await rawRequest(gatewayUrl, pathForKey(key));
        if (response.status !== 200 || response.body.toString('latin1') !== acknowledged.get(key))
          wrong.push(`${key}: ${response.status} ${response.body.toString('latin1').slice(0, 120)}`);
      }
    };
    await Promise.all(Array.from({ length: writeConcurrency }, reader));
    expect(wrong).toEqual([]);
    // One scan through the gateway, across the group, page by page: every item exactly as written.
    const seen = new Map<string, string>();
    let token: string | null = null;
    do {
      const query: string = token === null ? '/kv?limit=1000' : `/kv?limit=1000&continue=${token}`;
      const response = await rawRequest(gatewayUrl, query);
      expect(response.status).toBe(200);
      const page = response.json() as ScanPage;
      for (const item of page.items) seen.set(item.key, item.value);
      token = page.next;
    } while (token !== null);
    for (const [key, value] of acknowledged) expect(seen.get(key), key).toBe(value);
  }

  /**
   * The damaged replica's own read paths (stale scan pages, then stale gets): every answer is the
   * value written or 503 STORAGE_FAULT, never another value and never a 404 for a written key.
   */
  async function expectNoWrongValueOn(
    replica: ReplicaProcess,
    acknowledged: ReadonlyMap<string, string>,
  ): Promise<void> {
    let token: string | null = null;
    do {
      const query: string =
        token === null
          ? '/kv?limit=200&consistency=stale'
          : `/kv?limit=200&consistency=stale&continue=${token}`;
      const response = await rawRequest(replica.url, query);
      if (response.status !== 200) {
        expect(response.status).toBe(503);
        expect(errorCodeOf(response)).toBe('STORAGE_FAULT');
        break;
      }
      const page = response.json() as ScanPage;
      for (const item of page.items) expect(item.value, item.key).toBe(acknowledged.get(item.key));
      token = page.next;
    } while (token !== null);
    for (const [key, value] of acknowledged) {
      const response = await rawRequest(replica.url, `${pathForKey(key)}?consistency=stale`);
      if (response.status === 200) expect(response.body.toString('latin1'), key).toBe(value);
      else expect(errorCodeOf(response), key).toBe('STORAGE_FAULT');
    }
  }

  /**
   * The fault was reported (its error line, with its kind; the fault counter), and the replica then
   * rebuilt itself from the leader's snapshot: the rebuild's line, the rebuild counter, ready again,
   * no fault in its status, and every acknowledged key served by it, stale, exactly as written.
   * Answers the fault as its log line gave it.
   */
  async function expectFaultReportedThenRebuilt(
    replica: ReplicaProcess,
    kind: string,
    acknowledged: ReadonlyMap<string, string>,
  ): Promise<Record<string, unknown>> {
    const logLines = async (text: string): Promise<Record<string, unknown>[]> =>
      (await readFile(replica.logFile, 'utf8'))
        .split('\n')
        .filter((line) => line.includes(text))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    await waitFor('the fault log line', async () => (await logLines('replica: storage fault')).length > 0);
    const [fault] = await logLines('replica: storage fault');
    expect(fault).toMatchObject({ level: 50, faultKind: kind });
    await waitFor(
      'the rebuild',
      async () => (await logLines("rebuilt from the leader's snapshot")).length > 0,
    );
    expect((await logLines("rebuilt from the leader's snapshot"))[0]).toMatchObject({ faultKind: kind });
    await waitFor(
      'the rebuilt replica to be ready',
      async () => (await rawRequest(replica.url, '/readyz')).status === 200,
    );
    const status = (
      await rawRequest(replica.url, '/admin/status', { headers: cluster?.adminHeaders() ?? {} })
    ).json() as {
      storageFault: Record<string, unknown> | null;
      keyCount: number | null;
    };
    expect(status.storageFault).toBeNull();
    const metrics = (await rawRequest(replica.url, '/metrics')).body.toString();
    expect(metrics).toMatch(/^impulse_replica_storage_fault(\{[^}]*\})? 0$/m);
    expect(metrics).toMatch(/^impulse_replica_storage_faults_total(\{[^}]*\})? 1$/m);
    expect(metrics).toMatch(/^impulse_replica_rebuilds_total(\{[^}]*\})? 1$/m);
    const wrong: string[] = [];
    for (const [key, value] of acknowledged) {
      const response = await rawRequest(replica.url, `${pathForKey(key)}?consistency=stale`);
      if (response.status !== 200 || response.body.toString('latin1') !== value)
        wrong.push(`${key}: ${response.status} ${response.body.toString('latin1').slice(0, 120)}`);
    }
    expect(wrong).toEqual([]);
    return fault as Record<string, unknown>;
  }

  /** The group serves new writes and reads, and every replica holds them. */
  async function expectGroupServes(): Promise<void> {
    const running = cluster as LocalCluster;
    await running.leaderOf('g1', 10_000);
    for (let index = 0; index < 20; index++) {
      const key = `after-fault-${index}`;
      expect(
        (await rawRequest(running.gatewayUrl, pathForKey(key), { method: 'PUT', body: key })).status,
      ).toBe(204);
      expect((await rawRequest(running.gatewayUrl, pathForKey(key))).body.toString()).toBe(key);
    }
    for (const replica of running.group('g1')) {
      await waitFor(`${replica.replicaId} to hold the writes made after the fault`, async () => {
        const response = await rawRequest(replica.url, `${pathForKey('after-fault-19')}?consistency=stale`);
        return response.status === 200 && response.body.toString() === 'after-fault-19';
      });
    }
  }

  it('a flipped byte inside a value in a table file: never served, the fault reported, the group serves', async () => {
    // Small snapshots: each flushes the engine to tables, so the values are in .ldb files.
    const acknowledged = await startAndWrite(['--snapshot-entries=300', '--snapshot-catch-up-entries=50']);
    const running = cluster as LocalCluster;
    const damaged = running.replica('g1-r2');
    await stopReplicas();
    const { key, file } = await flipInsideValue(await engineFiles(damaged, '.ldb'), acknowledged, () => true);
    for (const replica of running.group('g1')) await running.restart(replica.replicaId);
    await running.leaderOf('g1');
    await expectEveryKeyThroughGateway(acknowledged);
    await expectNoWrongValueOn(damaged, acknowledged);
    const fault = await expectFaultReportedThenRebuilt(damaged, 'checksum-mismatch', acknowledged);
    expect(fault).toMatchObject({ faultKey: `d:${key}` });
    expect(String(fault['faultFile'])).toContain(join(damaged.dataDirectory, 'state'));
    expect(file).toContain(join(damaged.dataDirectory, 'state'));
    await expectGroupServes();
    await expectEveryKeyThroughGateway(acknowledged);
  });

  it('a flipped byte in the write-ahead log: the lost batch found at start, the fault reported, nothing lost', async () => {
    // Default snapshots: nothing is flushed, so every batch is still in the write-ahead log.
    const acknowledged = await startAndWrite([]);
    const running = cluster as LocalCluster;
    const damaged = running.replica('g1-r3');
    await stopReplicas();
    const logs = (await engineFiles(damaged, '.log')).filter((file) => !file.endsWith('/LOG'));
    // In a block before the last: LevelDB drops that block and keeps the later ones, so a later
    // batch (with a higher applied index) survives the lost one. A flip in the last block only
    // shortens the log, which the Raft log replays: not the fault under test.
    await flipInsideValue(
      logs,
      acknowledged,
      (position, fileBytes) =>
        Math.floor(position / logBlockBytes) < Math.floor((fileBytes - 1) / logBlockBytes) - 1,
    );
    const healthy = running.group('g1').filter((replica) => replica !== damaged);
    for (const replica of healthy) await running.restart(replica.replicaId);
    // The damaged replica starts faulted (its start waits for /readyz, which it answers once
    // rebuilt), and serves no read from its damaged state meanwhile.
    const damagedStart = running.restart(damaged.replicaId).then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    await waitFor(
      'the damaged replica to answer',
      async () => (await rawRequest(damaged.url, '/healthz')).status === 200,
    );
    await expectNoWrongValueOn(damaged, acknowledged);
    const fault = await expectFaultReportedThenRebuilt(damaged, 'gap', acknowledged);
    expect(String(fault['err'] === undefined ? '' : JSON.stringify(fault['err']))).toMatch(
      /lacks the batches of indexes \d+ to \d+/,
    );
    await expectEveryKeyThroughGateway(acknowledged);
    await expectGroupServes();
    expect(await damagedStart).toBeUndefined();
  });

  it('a deleted engine directory over a compacted log: the lost state reported, rebuilt from the leader', async () => {
    // Small snapshots: the log is compacted, so it cannot replay the state from the start.
    const acknowledged = await startAndWrite(['--snapshot-entries=300', '--snapshot-catch-up-entries=50']);
    const running = cluster as LocalCluster;
    const damaged = running.replica('g1-r1');
    await stopReplicas();
    await rm(join(damaged.dataDirectory, 'state'), { recursive: true, force: true });
    for (const replica of running.group('g1')) {
      if (replica !== damaged) await running.restart(replica.replicaId);
    }
    await running.restart(damaged.replicaId);
    await expectNoWrongValueOn(damaged, acknowledged);
    const fault = await expectFaultReportedThenRebuilt(damaged, 'lost', acknowledged);
    expect(String(fault['faultFile'])).toBe(join(damaged.dataDirectory, 'state'));
    await expectEveryKeyThroughGateway(acknowledged);
    await expectGroupServes();
  });

  it('the engine folder CURRENT names is deleted: the lost state reported, rebuilt from the leader', async () => {
    const acknowledged = await startAndWrite(['--snapshot-entries=300', '--snapshot-catch-up-entries=50']);
    const running = cluster as LocalCluster;
    const damaged = running.replica('g1-r2');
    await stopReplicas();
    const state = join(damaged.dataDirectory, 'state');
    for (const name of await readdir(state)) {
      if (name.startsWith('sm-')) await rm(join(state, name), { recursive: true, force: true });
    }
    for (const replica of running.group('g1')) await running.restart(replica.replicaId);
    await expectNoWrongValueOn(damaged, acknowledged);
    await expectFaultReportedThenRebuilt(damaged, 'lost', acknowledged);
    await expectEveryKeyThroughGateway(acknowledged);
    await expectGroupServes();
  });
});
