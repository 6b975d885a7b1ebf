import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SlotTable,
  compareKeys,
  encodeContinuation,
  pathForKey,
  scanItemValue,
  type ScanPageBody,
} from '@impulse/common';
import { LocalCluster, type ReplicaProcess } from '@impulse/local-cluster';
import { ImpulseTarget, createHttpClient } from '@impulse/loadtest';
import { errorCodeOf, rawRequest, type RawResponse } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { waitFor } from '../support/wait-for.js';

const groupIds = ['g1', 'g2', 'g3'];

/** The value written for a key: text for most, bytes that are not UTF-8 for every seventh. */
function valueOf(key: string, index: number): Buffer {
  return index % 7 === 0 ? Buffer.from([0xff, index % 256, 0, 0xfe]) : Buffer.from(`value of ${key}`);
}

/**
 * Range scans across a real cluster: a gateway and 3 shard groups of 3 replicas (LevelDB), keys
 * written through the gateway and read back in pages, in one global byte order.
 */
describe('range scans across 3 shard groups of 3 replicas', () => {
  let cluster: LocalCluster;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  let gateway: string;
  /** What the cluster holds: key → value. */
  const written = new Map<string, Buffer>();

  const keys = [
    ...Array.from({ length: 240 }, (_, index) => `item/${String(index).padStart(4, '0')}`),
    ...Array.from({ length: 30 }, (_, index) => `user:${index}`),
    ...Array.from({ length: 20 }, (_, index) => `é-${index}`),
    'a b',
    'a+b',
    'a%2Fb',
    '?query',
    '#hash',
    '\uFFFD',
    '😀',
    'k'.repeat(1024),
  ];

  async function page(baseUrl: string, query: string): Promise<ScanPageBody> {
    const response = await rawRequest(baseUrl, `/kv?${query}`);
    expect(response.status, `${query}: ${response.body.toString()}`).toBe(200);
    return response.json() as ScanPageBody;
  }

  /** Every key and value of the range, following `next` page by page. */
  async function scanAll(query: string, baseUrl = gateway): Promise<[string, Buffer][]> {
    const found: [string, Buffer][] = [];
    let token: string | null = null;
    for (let pages = 0; pages < 1000; pages++) {
      const body: ScanPageBody = await page(baseUrl, token === null ? query : `${query}&continue=${token}`);
      expect(body.items.length).toBeLessThanOrEqual(Number(/limit=(\d+)/.exec(query)?.[1] ?? 100));
      found.push(...body.items.map((item): [string, Buffer] => [item.key, scanItemValue(item)]));
      token = body.next;
      if (token === null) return found;
      expect(token).toBe(encodeContinuation(body.items.at(-1)?.key ?? ''));
    }
    throw new Error('too many pages');
  }

  async function notLeaderRetries(groupId: string): Promise<number> {
    const text = (await rawRequest(gateway, '/metrics')).body.toString();
    const match = new RegExp(
      `impulse_gateway_retries_total\\{group="${groupId}",reason="not_leader"[^}]*\\} (\\d+)`,
    ).exec(text);
    return Number(match?.[1] ?? 0);
  }

  function expected(filter: (key: string) => boolean): [string, Buffer][] {
    return [...written.keys()]
      .filter(filter)
      .sort(compareKeys)
      .map((key) => [key, written.get(key) as Buffer]);
  }

  beforeAll(async () => {
    directory = await temporaryDirectory('scan');
    cluster = await LocalCluster.start({
      groups: 3,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      logLevel: 'warn',
    });
    gateway = cluster.gatewayUrl;
    for (const groupId of groupIds) await cluster.leaderOf(groupId);
    // A few hundred keys, written through the gateway 16 at a time.
    for (let from = 0; from < keys.length; from += 16) {
      await Promise.all(
        keys.slice(from, from + 16).map(async (key, offset) => {
          const value = valueOf(key, from + offset);
          const response = await rawRequest(gateway, pathForKey(key), { method: 'PUT', body: value });
          expect(response.status, key).toBe(204);
          written.set(key, value);
        }),
      );
    }
  });

  afterAll(async () => {
    await cluster?.stop();
    await directory?.remove();
  });

  it('keeps the keys spread over every group, each group scanning only its own', async () => {
    const table = SlotTable.fromGroups(groupIds, 1);
    for (const groupId of groupIds) {
      const leader = await cluster.leaderOf(groupId);
      const own = await scanAll('limit=1000', leader.url);
      expect(own.length).toBeGreaterThan(50);
      expect(own.map(([key]) => key)).toEqual(
        expected((key) => table.groupForKey(key) === groupId).map(([key]) => key),
      );
    }
  });

  it('pages through every key in one byte order with its value, with a small limit', async () => {
    const found = await scanAll('limit=7');
    expect(found.map(([key]) => key)).toEqual(expected(() => true).map(([key]) => key));
    expect(found).toEqual(expected(() => true));
    // One large page holds the same, and the last page says so.
    const whole = await page(gateway, 'limit=1000');
    expect(whole.items.map((item) => item.key)).toEqual(found.map(([key]) => key));
    expect(whole.next).toBeNull();
  });

  it('filters by prefix, by start and end, and by both', async () => {
    expect(await scanAll('prefix=user%3A&limit=4')).toEqual(expected((key) => key.startsWith('user:')));
    expect(await scanAll(`prefix=${encodeURIComponent('é-')}&limit=6`)).toEqual(
      expected((key) => key.startsWith('é-')),
    );
    const inRange = (key: string): boolean =>
      compareKeys(key, 'item/0100') >= 0 && compareKeys(key, 'item/0150') < 0;
    expect(await scanAll('start=item%2F0100&end=item%2F0150&limit=9')).toEqual(expected(inRange));
    expect(await scanAll('prefix=item%2F01&start=item%2F0190&end=item%2F0195&limit=2')).toEqual(
      expected((key) => key.startsWith('item/019') && key < 'item/0195'),
    );
    expect(await scanAll('start=a&end=b&consistency=stale')).toEqual(
      expected((key) => compareKeys(key, 'a') >= 0 && compareKeys(key, 'b') < 0),
    );
    expect(await page(gateway, 'prefix=nothing-here')).toEqual({ items: [], next: null });
  });

  it('no longer answers deleted keys, and answers new values', async () => {
    for (const key of ['item/0003', 'user:7', '😀']) {
      expect((await rawRequest(gateway, pathForKey(key), { method: 'DELETE' })).status).toBe(204);
      written.delete(key);
    }
    expect((await rawRequest(gateway, pathForKey('item/0004'), { method: 'PUT', body: 'new' })).status).toBe(
      204,
    );
    written.set('item/0004', Buffer.from('new'));
    const found = await scanAll('limit=50');
    expect(found).toEqual(expected(() => true));
    expect(found.map(([key]) => key)).not.toContain('user:7');
  });

  it('answers NOT_LEADER from a follower, and its local state with consistency=stale', async () => {
    const leader = await cluster.leaderOf('g2');
    const follower = cluster.group('g2').find((replica) => replica !== leader) as ReplicaProcess;
    const refused = await rawRequest(follower.url, '/kv?limit=5');
    expect(refused.status).toBe(421);
    expect(errorCodeOf(refused)).toBe('NOT_LEADER');
    expect((refused.json() as { error: { leaderHint: string } }).error.leaderHint).toBe(leader.replicaId);
    const fromLeader = await scanAll('limit=1000', leader.url);
    await waitFor('the follower to apply every write', async () => {
      const stale = await scanAll('limit=1000&consistency=stale', follower.url);
      return JSON.stringify(stale) === JSON.stringify(fromLeader);
    });
  });

  it('follows a leadership transfer, and refuses bad input at the gateway with a stable code', async () => {
    const leader = await cluster.leaderOf('g1');
    const target = cluster.group('g1').find((replica) => replica !== leader) as ReplicaProcess;
    const moved = await rawRequest(leader.url, '/admin/transfer-leadership', {
      headers: cluster.adminHeaders(),
      method: 'POST',
      body: JSON.stringify({ to: target.replicaId }),
    });
    expect(moved.status, moved.body.toString()).toBe(200);
    // The gateway still guesses the old leader: its NOT_LEADER answer leads the scan to the new one.
    const retriesBefore = await notLeaderRetries('g1');
    expect(await scanAll('limit=100')).toEqual(expected(() => true));
    expect(await notLeaderRetries('g1')).toBeGreaterThan(retriesBefore);

    const cases: [string, number, string][] = [
      ['limit=0', 400, 'INVALID_REQUEST'],
      ['limit=5000', 400, 'INVALID_REQUEST'],
      ['sart=a', 400, 'INVALID_REQUEST'],
      ['start=%FF', 400, 'INVALID_ENCODING'],
      [`start=${'k'.repeat(1025)}`, 400, 'INVALID_KEY'],
      ['continue=not-a-token', 400, 'INVALID_CONTINUATION'],
    ];
    for (const [query, status, code] of cases) {
      const response: RawResponse = await rawRequest(gateway, `/kv?${query}`);
      expect(response.status, query).toBe(status);
      expect(errorCodeOf(response), query).toBe(code);
    }
    expect((await rawRequest(gateway, '/kv', { method: 'DELETE' })).status).toBe(405);
    expect(await scanAll('limit=1000')).toEqual(expected(() => true));
  });

  it('serves the load generator: the Impulse target supports scans (workload e)', async () => {
    const target = new ImpulseTarget(
      'impulse',
      createHttpClient('node', { origin: gateway, connectionsMax: 2, requestTimeoutMs: 10_000 }),
    );
    try {
      expect(await target.supportsScan()).toBe(true);
      expect(await target.scan('item/0100', 25)).toBe(25);
      // Past 'zzzz' come the keys that start above ASCII: 'é-…' and U+FFFD.
      expect(await target.scan('zzzz', 25)).toBe(expected((key) => compareKeys(key, 'zzzz') >= 0).length);
      expect(await target.scan('\u{10FFFF}', 25)).toBe(0);
    } finally {
      await target.close();
    }
  });

  it('fails the whole scan with 503 GROUP_UNAVAILABLE while a group is down, never a partial page', async () => {
    await Promise.all(cluster.group('g3').map((replica) => cluster.kill(replica.replicaId)));
    const startedAt = Date.now();
    const response = await rawRequest(gateway, '/kv?limit=10');
    expect(response.status).toBe(503);
    expect(response.json()).toMatchObject({ error: { code: 'GROUP_UNAVAILABLE', group: 'g3' } });
    expect(Date.now() - startedAt).toBeLessThan(3000);
    // Key requests to the other groups still work.
    const table = SlotTable.fromGroups(groupIds, 1);
    const elsewhere = [...written.keys()].find((key) => table.groupForKey(key) !== 'g3') ?? '';
    expect((await rawRequest(gateway, pathForKey(elsewhere))).status).toBe(200);
  });
});
