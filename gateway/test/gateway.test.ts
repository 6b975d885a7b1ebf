import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, loadClusterConfig } from '@impulse/common';
import { Gateway, parseGatewayConfig } from '../src/index.js';

/** What the leader replica saw of each request it answered. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

const largeValue = 'x'.repeat(100 * 1024);

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function answer(response: ServerResponse, status: number, body: string, type = 'text/plain'): void {
  response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

/**
 * The gateway's data path (a plain listener in front of express) against two fake replicas of one
 * group: the first says it is not the leader and names the second, which answers.
 */
describe('gateway data path', () => {
  const seen: Seen[] = [];
  const follower = createServer((request, response) => {
    request.resume();
    request.once('end', () =>
      answer(
        response,
        421,
        JSON.stringify({ error: { code: 'NOT_LEADER', message: 'not the leader', leaderHint: 'g1-r2' } }),
        'application/json',
      ),
    );
  });
  const leader = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.once('end', () => {
      seen.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks).toString(),
      });
      if (request.method === 'PUT' || request.method === 'DELETE') answer(response, 204, '');
      else if (request.url === '/kv/large') answer(response, 200, largeValue);
      else answer(response, 200, `value of ${request.url ?? ''}`);
    });
  });
  let gateway: Gateway;
  let base: string;

  beforeAll(async () => {
    const followerUrl = await listen(follower);
    const leaderUrl = await listen(leader);
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
        ],
      }),
    });
    const config = parseGatewayConfig({ argv: ['--port=0', '--log-level=silent'], env: {} });
    gateway = await Gateway.start(config, cluster, createLogger({ service: 'gateway', level: 'silent' }));
    base = `http://127.0.0.1:${gateway.port}`;
  });

  afterAll(async () => {
    await gateway.stop();
    follower.close();
    leader.close();
  });

  it('proxies a read to the leader named by NOT_LEADER, with the path as the client sent it', async () => {
    const response = await fetch(`${base}/kv/photos%2F1?consistency=stale`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('value of /kv/photos%2F1?consistency=stale');
    expect(seen.at(-1)?.headers['x-impulse-slot']).toMatch(/^\d+$/);
  });

  it('sends a write body and a request id, keeping the one the client gave', async () => {
    const response = await fetch(`${base}/kv/a`, {
      method: 'PUT',
      body: 'hello',
      headers: { 'x-impulse-request-id': 'client-id_1' },
    });
    expect(response.status).toBe(204);
    expect(seen.at(-1)).toMatchObject({ method: 'PUT', url: '/kv/a', body: 'hello' });
    expect(seen.at(-1)?.headers['x-impulse-request-id']).toBe('client-id_1');
    const generated = await fetch(`${base}/kv/a`, { method: 'DELETE' });
    expect(generated.status).toBe(204);
    expect(seen.at(-1)?.headers['x-impulse-request-id']).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('streams an answer larger than the gathered size intact', async () => {
    const response = await fetch(`${base}/kv/large`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(largeValue);
  });

  it('keeps the 405, 400 and 404 rules, and the admin routes on express', async () => {
    const post = await fetch(`${base}/kv/a`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD, PUT, DELETE');
    expect(((await post.json()) as { error: { code: string } }).error.code).toBe('METHOD_NOT_ALLOWED');
    const badId = await fetch(`${base}/kv/a`, {
      method: 'PUT',
      body: 'x',
      headers: { 'x-impulse-request-id': 'not valid!' },
    });
    expect(badId.status).toBe(400);
    expect((await fetch(`${base}/kv/%ZZ`)).status).toBe(400);
    for (const path of ['/kvx/a', '/KV/a', '/KV?limit=1']) {
      const response = await fetch(`${base}${path}`);
      expect(response.status).toBe(404);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('ROUTE_NOT_FOUND');
    }
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('counts data-path requests under the /kv/{key} route, and retries by reason', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(
      /impulse_http_requests_total\{route="\/kv\/\{key\}",method="GET",status="200",service="gateway"\} [1-9]/,
    );
    expect(text).toMatch(
      /impulse_http_requests_total\{route="\/kv\/\{key\}",method="POST",status="405",service="gateway"\} 1/,
    );
    expect(text).toMatch(
      /impulse_http_requests_total\{route="unmatched",method="GET",status="404",service="gateway"\} 3/,
    );
    expect(text).toMatch(
      /impulse_gateway_retries_total\{group="g1",reason="not_leader",service="gateway"\} 1/,
    );
  });
});

/**
 * Issue 11, item 5: key requests are bounded in flight, as scans are, since each may hold a value
 * in memory. The fake leader holds every answer until the test releases it.
 */
describe('gateway key requests in flight', () => {
  const held: (() => void)[] = [];
  const leader = createServer((request, response) => {
    request.resume();
    request.once('end', () => held.push(() => answer(response, request.method === 'PUT' ? 204 : 200, '')));
  });
  let gateway: Gateway;
  let base: string;
  let port: number;

  const metric = async (pattern: RegExp): Promise<number> =>
    Number(pattern.exec(await (await fetch(`${base}/metrics`)).text())?.[1]);
  const untilHeld = async (count: number): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (held.length < count && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(held.length).toBe(count);
  };
  const inFlight = /impulse_gateway_requests_in_flight\{route="\/kv\/\{key\}",service="gateway"\} (\d+)/;
  const refused = /impulse_gateway_overload_refusals_total\{route="\/kv\/\{key\}",service="gateway"\} (\d+)/;

  beforeAll(async () => {
    const leaderUrl = await listen(leader);
    const cluster = loadClusterConfig({
      json: JSON.stringify({
        epoch: 1,
        groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url: leaderUrl }] }],
      }),
    });
    const config = parseGatewayConfig({
      argv: ['--port=0', '--log-level=silent', '--key-requests-max=2', '--upstream-timeout=30s'],
      env: {},
    });
    gateway = await Gateway.start(config, cluster, createLogger({ service: 'gateway', level: 'silent' }));
    port = gateway.port;
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    for (const release of held.splice(0)) release();
    await gateway.stop();
    leader.close();
  });

  it('answers 429 TOO_MANY_REQUESTS past --key-requests-max, counts it, and serves again once one ends', async () => {
    const first = fetch(`${base}/kv/a`);
    const second = fetch(`${base}/kv/b`, { method: 'PUT', body: 'value' });
    await untilHeld(2);
    expect(await metric(inFlight)).toBe(2);
    const third = await fetch(`${base}/kv/c`);
    expect(third.status).toBe(429);
    expect(((await third.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_REQUESTS');
    expect(await metric(refused)).toBe(1);
    for (const release of held.splice(0)) release();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(204);
    const again = fetch(`${base}/kv/c`);
    await untilHeld(1);
    for (const release of held.splice(0)) release();
    expect((await again).status).toBe(200);
    expect(await metric(inFlight)).toBe(0);
  });

  it('counts a write whose body is still arriving, until its connection goes', async () => {
    // Two writes that declare a body and send half of it: the gateway is reading them.
    const sockets = await Promise.all(
      [0, 1].map(async (index) => {
        const socket = connect(port, '127.0.0.1');
        await once(socket, 'connect');
        socket.write(`PUT /kv/slow-${index} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf.`);
        return socket;
      }),
    );
    const deadline = Date.now() + 5000;
    while ((await metric(inFlight)) < 2 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await metric(inFlight)).toBe(2);
    expect((await fetch(`${base}/kv/other`)).status).toBe(429);
    for (const socket of sockets) socket.destroy();
    while ((await metric(inFlight)) > 0 && Date.now() < deadline + 5000)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await metric(inFlight)).toBe(0);
    const later = fetch(`${base}/kv/other`);
    await untilHeld(1);
    for (const release of held.splice(0)) release();
    expect((await later).status).toBe(200);
  });
});

/**
 * Nodes that answer for a group elsewhere: the first replica's node no longer hosts the group
 * (`GROUP_NOT_HOSTED`), the second's replica failed (`REPLICA_FAILED`); the third serves. Neither
 * refusal proposed anything, so the gateway tries the next replica at once, for reads, writes and
 * scans, and names the group on every request.
 */
describe('gateway with replicas that answer for their group elsewhere', () => {
  const groupsSeen: (string | undefined)[] = [];
  const refusing = (code: string, status: number): Server =>
    createServer((request, response) => {
      groupsSeen.push(request.headers['x-impulse-group'] as string | undefined);
      request.resume();
      request.once('end', () =>
        answer(response, status, JSON.stringify({ error: { code, message: code } }), 'application/json'),
      );
    });
  const notHosted = refusing('GROUP_NOT_HOSTED', 421);
  const failed = refusing('REPLICA_FAILED', 503);
  const serving = createServer((request, response) => {
    groupsSeen.push(request.headers['x-impulse-group'] as string | undefined);
    request.resume();
    request.once('end', () => {
      if (request.method === 'PUT') answer(response, 204, '');
      else if ((request.url ?? '').startsWith('/kv?'))
        answer(
          response,
          200,
          JSON.stringify({ items: [{ key: 'k', value: 'v' }], next: null }),
          'application/json',
        );
      else answer(response, 200, 'v');
    });
  });
  let gateway: Gateway;
  let base: string;

  beforeAll(async () => {
    const urls = [await listen(notHosted), await listen(failed), await listen(serving)];
    const cluster = loadClusterConfig({
      json: JSON.stringify({
        groups: [
          {
            id: 'g1',
            replicas: urls.map((url, index) => ({
              id: `g1-r${index + 1}`,
              url,
              peerAddress: `127.0.0.1:${index + 1}`,
            })),
          },
        ],
      }),
    });
    const config = parseGatewayConfig({ argv: ['--port=0', '--log-level=silent'], env: {} });
    gateway = await Gateway.start(config, cluster, createLogger({ service: 'gateway', level: 'silent' }));
    base = `http://127.0.0.1:${gateway.port}`;
  });

  afterAll(async () => {
    await gateway.stop();
    for (const server of [notHosted, failed, serving]) server.close();
  });

  it('tries the next replica at once and names the group on every attempt', async () => {
    const put = await fetch(`${base}/kv/k`, { method: 'PUT', body: 'v' });
    expect(put.status).toBe(204);
    // The leader guess moved to the serving replica: the read goes there first.
    const get = await fetch(`${base}/kv/k`);
    expect([get.status, await get.text()]).toEqual([200, 'v']);
    const scan = await fetch(`${base}/kv?limit=10`);
    expect(scan.status).toBe(200);
    expect(groupsSeen.length).toBeGreaterThanOrEqual(4);
    expect(new Set(groupsSeen)).toEqual(new Set(['g1']));
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/impulse_gateway_retries_total\{[^}]*reason="group_not_hosted"[^}]*\} 1/);
    expect(metrics).toMatch(/impulse_gateway_retries_total\{[^}]*reason="replica_failed"[^}]*\} 1/);
  });
});
