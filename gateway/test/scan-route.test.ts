import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ScanPageBuilder,
  compareKeys,
  createLogger,
  encodeContinuation,
  loadClusterConfig,
  parseScanQuery,
  scanItemJson,
  scanItemOf,
  scanRangeOf,
  toImpulseError,
  type ScanPageBody,
} from '@impulse/common';
import { Gateway, parseGatewayConfig } from '../src/index.js';

/** How a fake replica answers scans. */
type Mode =
  | { readonly kind: 'serve' }
  | { readonly kind: 'notLeader'; readonly leaderHint: string | null }
  | { readonly kind: 'hang' }
  | { readonly kind: 'answer'; readonly status: number; readonly body: string };

/**
 * A replica that answers scans of a fixed set of keys (as the shard-node does, through the same
 * page builder), or misbehaves as its mode says, and records the URLs it was asked.
 */
class FakeReplica {
  mode: Mode = { kind: 'serve' };
  readonly urls: string[] = [];
  readonly server: Server;
  private readonly hanging: ServerResponse[] = [];

  constructor(
    private readonly keys: readonly string[],
    private readonly pageBytesMax = 1 << 20,
  ) {
    this.server = createServer((request, response) => {
      this.urls.push(request.url ?? '');
      request.resume();
      const mode = this.mode;
      switch (mode.kind) {
        case 'hang':
          this.hanging.push(response);
          return;
        case 'notLeader':
          return json(response, 421, {
            error: { code: 'NOT_LEADER', message: 'not the leader', leaderHint: mode.leaderHint },
          });
        case 'answer':
          response.writeHead(mode.status, { 'content-type': 'application/json' });
          response.end(mode.body);
          return;
        case 'serve':
          try {
            response.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
            response.end(this.page(request.url ?? ''));
          } catch (error) {
            json(response, 400, toImpulseError(error).toBody());
          }
      }
    });
  }

  private page(url: string): string {
    const query = parseScanQuery(url);
    const range = scanRangeOf(query);
    const page = new ScanPageBuilder(query.limit, this.pageBytesMax);
    let more = false;
    for (const key of [...this.keys].sort(compareKeys)) {
      const keyBytes = Buffer.from(key);
      if (range.start !== undefined && Buffer.compare(keyBytes, range.start) < 0) continue;
      if (range.end !== undefined && Buffer.compare(keyBytes, range.end) >= 0) break;
      if (!page.maybeAdd(key, scanItemJson(scanItemOf(key, Buffer.from(`v-${key}`))))) {
        more = true;
        break;
      }
    }
    return page.render(more);
  }

  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  release(): void {
    for (const response of this.hanging.splice(0)) response.destroy();
  }

  close(): void {
    this.release();
    this.server.closeAllConnections();
    this.server.close();
  }
}

function json(response: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

/** A port nothing listens on: connections to it are refused. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

const g1Keys = ['a', 'c', 'e', 'g', 'user:1', 'user:3', '\uFFFD'];
const g2Keys = ['b', 'd', 'f', 'user:2', 'users', '😀'];
const g3Keys = ['aa', 'zz'];
const allKeys = [...g1Keys, ...g2Keys, ...g3Keys].sort(compareKeys);

/**
 * The gateway's scan route against fake replicas: group g1 has a follower (named first, so the
 * gateway learns the leader from it) and a leader; g2 and g3 one replica each.
 */
describe('gateway scan route', () => {
  const g1Follower = new FakeReplica([]);
  const g1Leader = new FakeReplica(g1Keys);
  const g2 = new FakeReplica(g2Keys);
  // g3 stops its pages short on a small byte budget: the merge must not pass its last key.
  const g3 = new FakeReplica(g3Keys, 1);
  const replicas = [g1Follower, g1Leader, g2, g3];
  let gateway: Gateway;
  let base: string;

  async function call(path: string, init: RequestInit = {}): Promise<Answer> {
    const response = await fetch(`${base}${path}`, init);
    return { status: response.status, headers: response.headers, text: await response.text() };
  }

  async function scan(query: string): Promise<ScanPageBody> {
    const answer = await call(`/kv?${query}`);
    expect(answer.status, `${query}: ${answer.text}`).toBe(200);
    return JSON.parse(answer.text) as ScanPageBody;
  }

  async function scanAll(query: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const page: ScanPageBody = await scan(token === null ? query : `${query}&continue=${token}`);
      keys.push(...page.items.map((item) => item.key));
      token = page.next;
      if (token === null) return keys;
    }
    throw new Error('too many pages');
  }

  function errorOf(answer: Answer): { code: string; message: string } & Record<string, unknown> {
    return (JSON.parse(answer.text) as { error: { code: string; message: string } }).error;
  }

  beforeAll(async () => {
    g1Follower.mode = { kind: 'notLeader', leaderHint: 'g1-r2' };
    const [followerUrl, leaderUrl, g2Url, g3Url] = await Promise.all(
      replicas.map((replica) => replica.listen()),
    );
    const cluster = loadClusterConfig({
      json: JSON.stringify({
        epoch: 1,
        virtualNodesPerGroup: 16,
        groups: [
          {
            id: 'g1',
            replicas: [
              { id: 'g1-r1', url: followerUrl, raftId: 1, peerAddress: '127.0.0.1:1' },
              { id: 'g1-r2', url: leaderUrl, raftId: 2, peerAddress: '127.0.0.1:2' },
            ],
          },
          { id: 'g2', replicas: [{ id: 'g2-r1', url: g2Url, raftId: 1, peerAddress: '127.0.0.1:3' }] },
          { id: 'g3', replicas: [{ id: 'g3-r1', url: g3Url, raftId: 1, peerAddress: '127.0.0.1:4' }] },
        ],
      }),
    });
    const config = parseGatewayConfig({
      argv: [
        '--port=0',
        '--log-level=silent',
        '--upstream-timeout=300ms',
        '--request-deadline=2s',
        '--scans-in-flight-max=2',
        // Small keys and values: a group's answer is then bounded by the 1 MiB page, plus an item.
        '--key-bytes-max=64B',
        '--value-bytes-max=1KiB',
      ],
      env: {},
    });
    gateway = await Gateway.start(config, cluster, createLogger({ service: 'gateway', level: 'silent' }));
    base = `http://127.0.0.1:${gateway.port}`;
  });

  afterEach(() => {
    for (const replica of [g1Leader, g2, g3]) replica.mode = { kind: 'serve' };
    for (const replica of replicas) replica.release();
  });

  afterAll(async () => {
    await gateway.stop();
    for (const replica of replicas) replica.close();
  });

  it('merges every group into one byte order, learning a leader from NOT_LEADER', async () => {
    const page = await scan('limit=1000');
    expect(page.items.map((item) => item.key)).toEqual(allKeys.slice(0, allKeys.indexOf('aa') + 1));
    // g3 answered one item and more: the page stops at its last key, and continues from there.
    expect(page.next).toBe(encodeContinuation('aa'));
    expect(page.items[0]).toEqual({ key: 'a', value: 'v-a' });
    expect(g1Follower.urls).toEqual(['/kv?limit=1000']);
    expect(g1Leader.urls).toEqual(['/kv?limit=1000']);
    expect(await scanAll('limit=1000')).toEqual(allKeys);
  });

  it('pages with a small limit to exactly the keys, each page from right after the last', async () => {
    // Every group has more, and g3's page stopped first, at 'aa'.
    const first = await scan('limit=3');
    expect(first.items.map((item) => item.key)).toEqual(['a', 'aa']);
    expect(first.next).toBe(encodeContinuation('aa'));
    expect(g2.urls.at(-1)).toBe('/kv?limit=3');
    const second = await scan(`limit=3&continue=${first.next ?? ''}`);
    expect(g2.urls.at(-1)).toBe(`/kv?continue=${encodeContinuation('aa')}&limit=3`);
    expect(second.items.map((item) => item.key)).toEqual(['b', 'c', 'd']);
    expect(second.next).toBe(encodeContinuation('d'));
    for (const limit of [1, 2, 5]) expect(await scanAll(`limit=${limit}`), String(limit)).toEqual(allKeys);
  });

  it('passes prefix, start, end and consistency to every group, normalized', async () => {
    expect(await scanAll('prefix=user%3A&limit=2')).toEqual(['user:1', 'user:2', 'user:3']);
    expect(await scanAll('start=b&end=f&consistency=stale')).toEqual(['b', 'c', 'd', 'e']);
    expect(g2.urls.at(-1)).toMatch(/^\/kv\?start=b&end=f&.*consistency=stale$/);
    expect(await scanAll('prefix=user&start=user%3A2')).toEqual(['user:2', 'user:3', 'users']);
    // An empty range asks no group.
    const asked = g2.urls.length;
    expect(await scan('prefix=user&start=v')).toEqual({ items: [], next: null });
    expect(g2.urls.length).toBe(asked);
  });

  it('refuses bad parameters before any group is asked', async () => {
    const asked = g2.urls.length;
    const cases: [string, string][] = [
      ['limit=0', 'INVALID_REQUEST'],
      ['limit=1001', 'INVALID_REQUEST'],
      ['bogus=1', 'INVALID_REQUEST'],
      ['limit=1&limit=2', 'INVALID_REQUEST'],
      ['start=z&end=a', 'INVALID_REQUEST'],
      ['consistency=eventual', 'INVALID_REQUEST'],
      ['start=%E2%82', 'INVALID_ENCODING'],
      [`prefix=${'k'.repeat(1025)}`, 'INVALID_KEY'],
      ['continue=AWE%3D', 'INVALID_CONTINUATION'],
      [`continue=${Buffer.from('\u0002a').toString('base64url')}`, 'INVALID_CONTINUATION'],
    ];
    for (const [query, code] of cases) {
      const answer = await call(`/kv?${query}`);
      expect(answer.status, query).toBe(400);
      expect(answer.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(errorOf(answer).code, query).toBe(code);
    }
    expect(g2.urls.length).toBe(asked);
    const post = await call('/kv', { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const head = await call('/kv?limit=2', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('fails the whole scan with 504 when a group does not answer, never a partial page', async () => {
    g2.mode = { kind: 'hang' };
    const startedAt = Date.now();
    const answer = await call('/kv?limit=10');
    expect(answer.status).toBe(504);
    expect(errorOf(answer)).toMatchObject({ code: 'UPSTREAM_TIMEOUT', group: 'g2' });
    expect(errorOf(answer).message).toMatch(/scan needs every shard group/);
    expect(Date.now() - startedAt).toBeLessThan(1500);
  });

  it("replays a group's error, and answers INTERNAL for a malformed page or a key in two groups", async () => {
    g2.mode = { kind: 'answer', status: 400, body: '{"error":{"code":"INVALID_KEY","message":"too long"}}' };
    const refused = await call('/kv?limit=10');
    expect(refused.status).toBe(400);
    expect(errorOf(refused)).toMatchObject({ code: 'INVALID_KEY', group: 'g2' });
    g2.mode = { kind: 'answer', status: 200, body: '{"items":[{"key":"b"}],"next":null}' };
    const malformed = await call('/kv?limit=10');
    expect(malformed.status).toBe(500);
    expect(errorOf(malformed)).toMatchObject({ code: 'INTERNAL', group: 'g2' });
    g2.mode = { kind: 'answer', status: 200, body: '{"items":[{"key":"a","value":"x"}],"next":null}' };
    const duplicate = await call('/kv?limit=10');
    expect(duplicate.status).toBe(500);
    expect(errorOf(duplicate)).toMatchObject({ code: 'INTERNAL', key: 'a', groups: ['g1', 'g2'] });
    g2.mode = { kind: 'answer', status: 503, body: 'not json' };
    expect(errorOf(await call('/kv?limit=10')).code).toBe('INTERNAL');
    // An answer past what a page can be (1 MiB and one item) is cut off, not buffered.
    g2.mode = { kind: 'answer', status: 200, body: `{"items":[${'"x",'.repeat(300_000)}"x"],"next":null}` };
    const oversized = await call('/kv?limit=10');
    expect(oversized.status).toBe(500);
    expect(errorOf(oversized)).toMatchObject({ code: 'INTERNAL', group: 'g2' });
    expect(errorOf(oversized).message).toMatch(/answered over \d+ bytes/);
  });

  it('answers GROUP_UNAVAILABLE when a group has no leader within the deadline', async () => {
    g2.mode = { kind: 'notLeader', leaderHint: null };
    const answer = await call('/kv?limit=10');
    expect(answer.status).toBe(503);
    expect(errorOf(answer)).toMatchObject({ code: 'GROUP_UNAVAILABLE', group: 'g2' });
    // Each attempt waited a little and asked again, within the attempt and deadline budgets.
    expect(g2.urls.filter((url) => url === '/kv?limit=10').length).toBeGreaterThan(2);
  });

  it('counts scans under the /kv route, and retries by reason', async () => {
    await scan('limit=1');
    const text = await (await call('/metrics')).text;
    expect(text).toMatch(
      /impulse_http_requests_total\{route="\/kv",method="GET",status="200",service="gateway"\} [1-9]/,
    );
    expect(text).toMatch(
      /impulse_http_requests_total\{route="\/kv",method="GET",status="400",service="gateway"\} [1-9]/,
    );
    expect(text).toMatch(
      /impulse_http_requests_total\{route="\/kv",method="POST",status="405",service="gateway"\} 1/,
    );
    expect(text).toMatch(
      /impulse_gateway_retries_total\{group="g1",reason="not_leader",service="gateway"\} 1/,
    );
    expect(text).toMatch(
      /impulse_gateway_upstream_errors_total\{group="g2",reason="timeout",service="gateway"\} 1/,
    );
    expect(text).not.toMatch(/route="unmatched"/);
  });

  it('answers 429 TOO_MANY_REQUESTS past --scans-in-flight-max, and serves again once scans end', async () => {
    g2.mode = { kind: 'hang' };
    const hung = [call('/kv?limit=10'), call('/kv?limit=10')];
    // Both hung scans have reached the groups before the third arrives.
    const deadline = Date.now() + 1000;
    while (g2.urls.filter((url) => url === '/kv?limit=10').length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const refused = await call('/kv?limit=10');
    expect(refused.status).toBe(429);
    expect(errorOf(refused).code).toBe('TOO_MANY_REQUESTS');
    const metrics = (await call('/metrics')).text;
    expect(metrics).toMatch(/impulse_gateway_overload_refusals_total\{route="\/kv",service="gateway"\} 1/);
    expect(metrics).toMatch(/impulse_gateway_requests_in_flight\{route="\/kv",service="gateway"\} 2/);
    expect((await Promise.all(hung)).map((answer) => answer.status)).toEqual([504, 504]);
    g2.mode = { kind: 'serve' };
    expect((await call('/kv?limit=10')).status).toBe(200);
  });
});

describe('gateway scan route with a group down', () => {
  const hanging = new FakeReplica([]);
  let gateway: Gateway | undefined;

  afterAll(async () => {
    await gateway?.stop();
    hanging.close();
  });

  it('fails at once with 503 GROUP_UNAVAILABLE, without waiting for the other groups', async () => {
    hanging.mode = { kind: 'hang' };
    const cluster = loadClusterConfig({
      json: JSON.stringify({
        epoch: 1,
        groups: [
          {
            id: 'g1',
            replicas: [{ id: 'g1-r1', url: await hanging.listen(), raftId: 1, peerAddress: null }],
          },
          {
            id: 'g2',
            replicas: [
              { id: 'g2-r1', url: await closedPortUrl(), raftId: 1, peerAddress: '127.0.0.1:1' },
              { id: 'g2-r2', url: await closedPortUrl(), raftId: 2, peerAddress: '127.0.0.1:2' },
            ],
          },
        ],
      }),
    });
    const config = parseGatewayConfig({
      argv: ['--port=0', '--log-level=silent', '--upstream-timeout=5s', '--request-deadline=10s'],
      env: {},
    });
    const started = await Gateway.start(
      config,
      cluster,
      createLogger({ service: 'gateway', level: 'silent' }),
    );
    gateway = started;
    const startedAt = Date.now();
    const response = await fetch(`http://127.0.0.1:${started.port}/kv?limit=10`);
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: { code: string; group: string } }).error).toMatchObject({
      code: 'GROUP_UNAVAILABLE',
      group: 'g2',
    });
    // g1 never answers: the scan did not wait for its 5 s timeout.
    expect(Date.now() - startedAt).toBeLessThan(2000);
    expect(hanging.urls).toEqual(['/kv?limit=10']);
  });
});
