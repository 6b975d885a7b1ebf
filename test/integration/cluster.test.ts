import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotTable, pathForKey } from '@impulse/common';
import { LocalCluster } from '@impulse/local-cluster';
import { errorCodeOf, rawRequest, type RawResponse } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';

/**
 * A real cluster on loopback: a gateway and 3 single-replica shard groups, each a process with
 * LevelDB on disk. Everything goes through the gateway unless a test says otherwise.
 */
describe('a local cluster of 3 shard groups behind the gateway', () => {
  let cluster: LocalCluster;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  let gateway: string;

  beforeAll(async () => {
    directory = await temporaryDirectory('cluster');
    cluster = await LocalCluster.start({
      groups: 3,
      dataDirectory: directory.path,
      logLevel: 'warn',
      gatewayArguments: ['--upstream-timeout=2s'],
    });
    gateway = cluster.gatewayUrl;
  });

  afterAll(async () => {
    await cluster?.stop();
    await directory?.remove();
  });

  const put = (key: string, value: string | Buffer): Promise<RawResponse> =>
    rawRequest(gateway, pathForKey(key), { method: 'PUT', body: value });
  const get = (key: string): Promise<RawResponse> => rawRequest(gateway, pathForKey(key));
  const del = (key: string): Promise<RawResponse> =>
    rawRequest(gateway, pathForKey(key), { method: 'DELETE' });

  /** The process still serves, and `key` still holds what it held before the bad request. */
  async function expectUnchanged(key: string, expected: string | undefined): Promise<void> {
    expect((await rawRequest(gateway, '/healthz')).status).toBe(200);
    const response = await get(key);
    if (expected === undefined) {
      expect(response.status).toBe(404);
    } else {
      expect(response.status).toBe(200);
      expect(response.body.toString()).toBe(expected);
    }
  }

  it('puts, gets and deletes through the gateway', async () => {
    expect((await put('greeting', 'hello')).status).toBe(204);
    const got = await get('greeting');
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('application/octet-stream');
    expect(got.body.toString()).toBe('hello');
    expect((await put('greeting', 'hello again')).status).toBe(204);
    expect((await get('greeting')).body.toString()).toBe('hello again');
    expect((await del('greeting')).status).toBe(204);
    const gone = await get('greeting');
    expect(gone.status).toBe(404);
    expect(errorCodeOf(gone)).toBe('NOT_FOUND');
    expect((await del('greeting')).status).toBe(204);
  });

  it('stores binary values byte for byte, odd keys, and empty values', async () => {
    const binary = Buffer.from([0, 1, 2, 255, 254, 0, 10, 13]);
    expect((await put('binary', binary)).status).toBe(204);
    expect((await get('binary')).body.equals(binary)).toBe(true);
    for (const key of ['a/b/c', 'sp ace', '€uro', '?query', '#hash', '%percent', 'k'.repeat(1024)]) {
      expect((await put(key, `value of ${key}`)).status, key).toBe(204);
      expect((await get(key)).body.toString(), key).toBe(`value of ${key}`);
    }
    expect((await put('empty', '')).status).toBe(204);
    const empty = await get('empty');
    expect(empty.status).toBe(200);
    expect(empty.body.length).toBe(0);
  });

  it('spreads keys over every group, each key on the group its slot maps to', async () => {
    const table = SlotTable.fromGroups(['g1', 'g2', 'g3'], 1);
    const keys = Array.from({ length: 90 }, (_, index) => `spread-${index}`);
    await Promise.all(keys.map((key) => put(key, key)));
    for (const replica of cluster.replicas) {
      const expected = keys.filter((key) => table.groupForKey(key) === replica.groupId);
      expect(expected.length).toBeGreaterThan(10);
      for (const key of expected) {
        // Straight at the replica: the key is there, and only there.
        const direct = await rawRequest(replica.url, pathForKey(key));
        expect(direct.status, `${key} on ${replica.replicaId}`).toBe(200);
      }
      const elsewhere = keys.find((key) => table.groupForKey(key) !== replica.groupId) ?? '';
      expect((await rawRequest(replica.url, pathForKey(elsewhere))).status).toBe(404);
    }
    const status = (
      await rawRequest(cluster.replicas[0]?.url ?? '', '/admin/status', { headers: cluster.adminHeaders() })
    ).json() as Record<string, unknown>;
    expect(status).toMatchObject({ groupId: 'g1', replicaId: 'g1-r1', engine: 'leveldb' });
    expect(status['keyCount']).toBeGreaterThan(10);
    expect(typeof status['pid']).toBe('number');
    expect(typeof status['uptimeSeconds']).toBe('number');
  });

  it('shows the cluster map on /admin/cluster', async () => {
    const map = (await rawRequest(gateway, '/admin/cluster', { headers: cluster.adminHeaders() })).json() as {
      epoch: number;
      slotCount: number;
      groups: { id: string; slots: number; replicas: { id: string; url: string; role: string }[] }[];
    };
    expect(map.epoch).toBe(1);
    expect(map.slotCount).toBe(16384);
    expect(map.groups.map((group) => group.id)).toEqual(['g1', 'g2', 'g3']);
    expect(map.groups.reduce((sum, group) => sum + group.slots, 0)).toBe(16384);
    expect(map.groups[0]?.replicas[0]?.url).toBe(cluster.replica('g1-r1').url);
    // The gateway asked each replica with the admin token the launcher gave them all.
    for (const group of map.groups) expect(group.replicas[0]?.role, group.id).toBe('leader');
  });

  describe('the admin routes need the admin token the launcher made', () => {
    it('refuses them without it, a wrong one or a malformed header, and changes nothing', async () => {
      const replica = cluster.replica('g1-r1');
      const statusBefore = (
        await rawRequest(replica.url, '/admin/status', { headers: cluster.adminHeaders() })
      ).json() as { term: number; commitIndex: number; voters: number[]; learners: number[] };
      const token = cluster.adminHeaders()['authorization']?.slice('Bearer '.length) ?? '';
      for (const [headers, reason] of [
        [{}, 'missing'],
        [
          { authorization: `Bearer ${token.replace(/^./, (first) => (first === 'a' ? 'b' : 'a'))}` },
          'invalid',
        ],
        [{ authorization: `Basic ${token}` }, 'malformed'],
      ] as const) {
        for (const [url, method, path, body] of [
          [gateway, 'GET', '/admin/cluster', undefined],
          [replica.url, 'GET', '/admin/status', undefined],
          [
            replica.url,
            'POST',
            '/admin/members',
            JSON.stringify({
              replicaId: 'g1-r9',
              raftId: 9,
              url: 'http://127.0.0.1:1',
              peerAddress: '127.0.0.1:2',
            }),
          ],
          [replica.url, 'POST', '/admin/consistency-check', undefined],
        ] as const) {
          const response = await rawRequest(url, path, {
            method,
            headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
            ...(body === undefined ? {} : { body }),
          });
          expect(response.status, `${method} ${path} (${reason})`).toBe(401);
          expect(errorCodeOf(response)).toBe('ADMIN_UNAUTHORIZED');
          expect((response.json() as { error: { reason: string } }).error.reason).toBe(reason);
          expect(response.headers['www-authenticate']).toMatch(/^Bearer realm="impulse-admin"/);
        }
      }
      const statusAfter = (
        await rawRequest(replica.url, '/admin/status', { headers: cluster.adminHeaders() })
      ).json() as typeof statusBefore;
      // No learner added, no consistency check proposed (it would have committed an entry).
      expect([statusAfter.term, statusAfter.commitIndex, statusAfter.voters, statusAfter.learners]).toEqual([
        statusBefore.term,
        statusBefore.commitIndex,
        statusBefore.voters,
        [],
      ]);
    });

    it('keeps health, readiness and metrics open for probes and Prometheus', async () => {
      for (const url of [gateway, cluster.replica('g1-r1').url]) {
        for (const path of ['/healthz', '/readyz', '/metrics']) {
          expect((await rawRequest(url, path)).status, `${url}${path}`).toBe(200);
        }
      }
    });
  });

  describe('bad input gets a clear error and changes nothing', () => {
    beforeAll(async () => {
      expect((await put('guarded', 'original')).status).toBe(204);
    });

    it('refuses an empty key with 400 INVALID_KEY', async () => {
      const response = await rawRequest(gateway, '/kv/', { method: 'PUT', body: 'x' });
      expect(response.status).toBe(400);
      expect(errorCodeOf(response)).toBe('INVALID_KEY');
      expect((response.json() as { error: { message: string } }).error.message).toMatch(/empty/);
      await expectUnchanged('guarded', 'original');
    });

    it('refuses a key over 1024 bytes of UTF-8 with 400 INVALID_KEY', async () => {
      const key = '€'.repeat(342); // 1026 bytes
      const response = await put(key, 'x');
      expect(response.status).toBe(400);
      expect(errorCodeOf(response)).toBe('INVALID_KEY');
      await expectUnchanged('guarded', 'original');
      expect((await rawRequest(gateway, pathForKey(key))).status).toBe(400);
    });

    it('refuses an invalid percent-encoding with 400 INVALID_ENCODING', async () => {
      for (const path of ['/kv/%ZZ', '/kv/abc%', '/kv/%FF%FE', '/kv/%ED%A0%80']) {
        const response = await rawRequest(gateway, path, { method: 'PUT', body: 'x' });
        expect(response.status, path).toBe(400);
        expect(errorCodeOf(response), path).toBe('INVALID_ENCODING');
      }
      await expectUnchanged('guarded', 'original');
    });

    it('refuses a value over 1 MiB with 413 VALUE_TOO_LARGE, declared or chunked', async () => {
      const declared = await rawRequest(gateway, pathForKey('guarded'), {
        method: 'PUT',
        // Announced but never sent: the answer must come before the body, not after 1 GiB.
        headers: { 'content-length': 1024 * 1024 * 1024 },
        body: [Buffer.alloc(64 * 1024, 1)],
      });
      expect(declared.status).toBe(413);
      expect(errorCodeOf(declared)).toBe('VALUE_TOO_LARGE');
      const chunked = await rawRequest(gateway, pathForKey('guarded'), {
        method: 'PUT',
        body: Array.from({ length: 64 }, () => Buffer.alloc(64 * 1024, 2)), // 4 MiB in 64 KiB chunks
      });
      expect(chunked.status).toBe(413);
      expect(errorCodeOf(chunked)).toBe('VALUE_TOO_LARGE');
      await expectUnchanged('guarded', 'original');
      // Exactly the limit is accepted.
      const limit = Buffer.alloc(1024 * 1024, 3);
      expect((await put('at-the-limit', limit)).status).toBe(204);
      expect((await get('at-the-limit')).body.equals(limit)).toBe(true);
    });

    it('refuses a wrong method with 405 and Allow', async () => {
      for (const method of ['POST', 'PATCH', 'OPTIONS']) {
        const response = await rawRequest(gateway, pathForKey('guarded'), { method, body: 'x' });
        expect(response.status, method).toBe(405);
        expect(response.headers['allow']).toBe('GET, HEAD, PUT, DELETE');
        expect(errorCodeOf(response)).toBe('METHOD_NOT_ALLOWED');
      }
      const metricsPost = await rawRequest(gateway, '/metrics', { method: 'POST' });
      expect(metricsPost.status).toBe(405);
      expect(metricsPost.headers['allow']).toBe('GET, HEAD');
      await expectUnchanged('guarded', 'original');
    });

    it('answers unknown routes with a JSON 404', async () => {
      for (const path of ['/', '/nope', '/KV', '/kvx/a', '/admin']) {
        // `/admin` is under the admin routes: it needs the token before it finds no route.
        const response = await rawRequest(gateway, path, { headers: cluster.adminHeaders() });
        expect(response.status, path).toBe(404);
        expect(response.headers['content-type']).toMatch(/application\/json/);
        expect(errorCodeOf(response), path).toBe('ROUTE_NOT_FOUND');
      }
      await expectUnchanged('guarded', 'original');
    });

    it('refuses a malformed request id with 400 INVALID_REQUEST', async () => {
      for (const requestId of ['has space', 'x'.repeat(65), 'semi;colon']) {
        const response = await rawRequest(gateway, pathForKey('guarded'), {
          method: 'PUT',
          headers: { 'x-impulse-request-id': requestId },
          body: 'changed',
        });
        expect(response.status, requestId).toBe(400);
        expect(errorCodeOf(response)).toBe('INVALID_REQUEST');
      }
      await expectUnchanged('guarded', 'original');
    });

    it('applies the same rules on a shard-node reached directly', async () => {
      const replica = cluster.replica('g1-r1').url;
      expect(errorCodeOf(await rawRequest(replica, '/kv/', { method: 'PUT', body: 'x' }))).toBe(
        'INVALID_KEY',
      );
      expect(errorCodeOf(await rawRequest(replica, '/kv/%ZZ'))).toBe('INVALID_ENCODING');
      const tooLarge = await rawRequest(replica, '/kv/direct', {
        method: 'PUT',
        body: Buffer.alloc(1024 * 1024 + 1),
      });
      expect(tooLarge.status).toBe(413);
      const wrongMethod = await rawRequest(replica, '/kv/direct', { method: 'POST' });
      expect(wrongMethod.status).toBe(405);
      expect(wrongMethod.headers['allow']).toBe('GET, HEAD, PUT, DELETE');
      expect(errorCodeOf(await rawRequest(replica, '/unknown'))).toBe('ROUTE_NOT_FOUND');
      expect((await rawRequest(replica, '/kv/direct')).status).toBe(404);
      expect((await rawRequest(replica, '/healthz')).status).toBe(200);
    });
  });

  it('exports Prometheus metrics from the gateway and every replica', async () => {
    const gatewayMetrics = (await rawRequest(gateway, '/metrics')).body.toString();
    expect(gatewayMetrics).toMatch(
      /impulse_http_requests_total\{route="\/kv\/\{key\}",method="PUT",status="204"/,
    );
    expect(gatewayMetrics).toMatch(/impulse_http_request_duration_seconds_bucket\{/);
    expect(gatewayMetrics).toMatch(/impulse_gateway_upstream_duration_seconds_bucket\{/);
    expect(gatewayMetrics).toMatch(/impulse_process_cpu_seconds_total/);
    const replicaMetrics = (await rawRequest(cluster.replica('g2-r1').url, '/metrics')).body.toString();
    expect(replicaMetrics).toMatch(/impulse_kv_operations_total\{[^}]*operation="put",outcome="ok"/);
    expect(replicaMetrics).toMatch(/impulse_engine_keys\{[^}]*engine="leveldb"/);
    expect(replicaMetrics).toMatch(/impulse_raft_is_leader\{[^}]*\} 1/);
    expect(replicaMetrics).toMatch(/impulse_raft_log_fsync_duration_seconds_count\{[^}]*\} [1-9]/);
    expect(replicaMetrics).toMatch(/impulse_raft_term\{[^}]*\} [1-9]/);
  });

  it('answers 503 GROUP_UNAVAILABLE at once for a dead group, and keeps its data across kill -9', async () => {
    const table = SlotTable.fromGroups(['g1', 'g2', 'g3'], 1);
    const keys = Array.from({ length: 60 }, (_, index) => `durable-${index}`).filter(
      (key) => table.groupForKey(key) === 'g2',
    );
    for (const key of keys) expect((await put(key, `v-${key}`)).status).toBe(204);

    await cluster.kill('g2-r1');
    const startedAt = Date.now();
    const unavailable = await get(keys[0] ?? '');
    const elapsedMs = Date.now() - startedAt;
    expect(unavailable.status).toBe(503);
    expect(errorCodeOf(unavailable)).toBe('GROUP_UNAVAILABLE');
    expect(elapsedMs).toBeLessThan(2000);
    // Other groups still serve.
    const other = ['x1', 'x2', 'x3', 'x4', 'x5', 'x6'].find((key) => table.groupForKey(key) !== 'g2') ?? '';
    expect((await put(other, 'still up')).status).toBe(204);
    const unavailableMetrics = (await rawRequest(gateway, '/metrics')).body.toString();
    expect(unavailableMetrics).toMatch(/impulse_gateway_upstream_errors_total\{group="g2",reason="refused"/);

    await cluster.restart('g2-r1');
    for (const key of keys) {
      const response = await get(key);
      expect(response.status, key).toBe(200);
      expect(response.body.toString()).toBe(`v-${key}`);
    }
  });

  it('answers 504 UPSTREAM_TIMEOUT, not a hang, when a group stops answering (SIGSTOP)', async () => {
    const table = SlotTable.fromGroups(['g1', 'g2', 'g3'], 1);
    const key =
      ['t1', 't2', 't3', 't4', 't5', 't6', 't7'].find((candidate) => table.groupForKey(candidate) === 'g3') ??
      '';
    expect((await put(key, 'before the pause')).status).toBe(204);
    cluster.signal('g3-r1', 'SIGSTOP');
    try {
      const startedAt = Date.now();
      const response = await get(key);
      const elapsedMs = Date.now() - startedAt;
      expect(response.status).toBe(504);
      expect(errorCodeOf(response)).toBe('UPSTREAM_TIMEOUT');
      expect(elapsedMs).toBeGreaterThanOrEqual(1900);
      expect(elapsedMs).toBeLessThan(4000);
    } finally {
      cluster.signal('g3-r1', 'SIGCONT');
    }
    expect((await get(key)).body.toString()).toBe('before the pause');
  });

  it('keeps the data when the whole cluster is stopped with SIGTERM and started again', async () => {
    expect((await put('across-restart', 'kept')).status).toBe(204);
    const exits = cluster.replicas.map(
      (replica) =>
        new Promise<number | null>((resolve) => replica.child?.once('exit', (code) => resolve(code))),
    );
    await cluster.stop();
    // SIGTERM is a clean stop: every replica flushed and closed its engine and exited 0.
    expect(await Promise.all(exits)).toEqual([0, 0, 0]);
    cluster = await LocalCluster.start({ groups: 3, dataDirectory: directory.path, logLevel: 'warn' });
    gateway = cluster.gatewayUrl;
    expect((await get('across-restart')).body.toString()).toBe('kept');
    expect((await get('binary')).body.equals(Buffer.from([0, 1, 2, 255, 254, 0, 10, 13]))).toBe(true);
  });
});
