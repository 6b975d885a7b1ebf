import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, loadClusterConfig } from '@impulse/common';
import { Gateway, parseGatewayConfig, withAdminToken } from '../src/index.js';

const token = 'gateway-admin-token-0123456789abcdef';

/**
 * `GET /admin/cluster` with an admin token: refused without it, and asked of the replicas with it.
 * Replica g1-r1 takes the gateway's token; g1-r2 was given another one and refuses it.
 */
describe("the gateway's admin route with an admin token", () => {
  const seen: IncomingHttpHeaders[] = [];
  const replicaAnswering = (role: string, acceptsToken: boolean) =>
    createServer((request, response) => {
      seen.push(request.headers);
      const authorized = acceptsToken && request.headers.authorization === `Bearer ${token}`;
      const body = authorized
        ? JSON.stringify({ replicaId: role === 'leader' ? 'g1-r1' : 'g1-r2', role, term: 3 })
        : JSON.stringify({ error: { code: 'ADMIN_UNAUTHORIZED', message: 'no', reason: 'invalid' } });
      response.writeHead(authorized ? 200 : 401, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      response.end(body);
    });
  const leader = replicaAnswering('leader', true);
  const stranger = replicaAnswering('follower', false);
  let gateway: Gateway;
  let base: string;

  async function listen(server: ReturnType<typeof createServer>): Promise<string> {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  beforeAll(async () => {
    const cluster = loadClusterConfig({
      json: JSON.stringify({
        epoch: 1,
        groups: [
          {
            id: 'g1',
            replicas: [
              { id: 'g1-r1', url: await listen(leader), raftId: 1, peerAddress: '127.0.0.1:1' },
              { id: 'g1-r2', url: await listen(stranger), raftId: 2, peerAddress: '127.0.0.1:2' },
            ],
          },
        ],
      }),
    });
    const env = { IMPULSE_ADMIN_TOKEN: token };
    const config = withAdminToken(parseGatewayConfig({ argv: ['--port=0', '--log-level=silent'], env }), env);
    gateway = await Gateway.start(config, cluster, createLogger({ service: 'gateway', level: 'silent' }));
    base = `http://127.0.0.1:${gateway.port}`;
  });

  afterAll(async () => {
    await gateway.stop();
    leader.close();
    stranger.close();
  });

  it('refuses /admin/cluster without the right token, asking no replica', async () => {
    seen.length = 0;
    for (const [authorization, reason] of [
      [undefined, 'missing'],
      [`Bearer ${token}0`, 'invalid'],
      [`Basic ${token}`, 'malformed'],
    ] as const) {
      const response = await fetch(`${base}/admin/cluster`, {
        headers: authorization === undefined ? {} : { authorization },
      });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="impulse-admin"/);
      expect(await response.json()).toMatchObject({ error: { code: 'ADMIN_UNAUTHORIZED', reason } });
    }
    expect((await fetch(`${base}/ADMIN/cluster`)).status).toBe(401);
    expect(seen).toEqual([]);
  });

  it('answers /admin/cluster to the token, and sends it to the replicas', async () => {
    seen.length = 0;
    const response = await fetch(`${base}/admin/cluster`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    const map = (await response.json()) as {
      groups: { leader: string | null; replicas: Record<string, unknown>[] }[];
    };
    expect(map.groups[0]?.leader).toBe('g1-r1');
    expect(map.groups[0]?.replicas[0]).toMatchObject({ id: 'g1-r1', reachable: true, role: 'leader' });
    // A replica that refuses the gateway's token says so; its error is never taken for a status.
    expect(map.groups[0]?.replicas[1]).toMatchObject({
      id: 'g1-r2',
      reachable: true,
      httpStatus: 401,
      error: 'ADMIN_UNAUTHORIZED',
    });
    expect(seen.map((headers) => headers.authorization)).toEqual([`Bearer ${token}`, `Bearer ${token}`]);
    expect(seen.map((headers) => headers['x-impulse-group'])).toEqual(['g1', 'g1']);
  });

  it('keeps health, readiness and metrics open', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(
      /impulse_http_requests_total\{route="\/admin\/cluster",method="GET",status="401",service="gateway"\} [1-9]/,
    );
  });
});

describe('the gateway without an admin token', () => {
  it('answers /admin/cluster, a read, to anyone, and refuses other methods', async () => {
    const cluster = loadClusterConfig({
      json: JSON.stringify({
        epoch: 1,
        groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url: 'http://127.0.0.1:1' }] }],
      }),
    });
    const config = withAdminToken(
      parseGatewayConfig({ argv: ['--port=0', '--log-level=silent'], env: {} }),
      {},
    );
    expect(config.adminToken).toBeUndefined();
    const gateway = await Gateway.start(
      config,
      cluster,
      createLogger({ service: 'gateway', level: 'silent' }),
    );
    try {
      const base = `http://127.0.0.1:${gateway.port}`;
      expect((await fetch(`${base}/admin/cluster`)).status).toBe(200);
      const post = await fetch(`${base}/admin/cluster`, { method: 'POST' });
      expect(post.status).toBe(401);
      expect(await post.json()).toMatchObject({
        error: { code: 'ADMIN_UNAUTHORIZED', reason: 'notConfigured' },
      });
    } finally {
      await gateway.stop();
    }
  });
});
