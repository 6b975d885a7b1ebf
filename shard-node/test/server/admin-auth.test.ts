import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, createLogger, pathForKey } from '@impulse/common';
import { ShardNode, checkShardNodeConfig, parseShardNodeConfig } from '../../src/index.js';

const token = 'replica-admin-token-0123456789abcdef';

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

/** What the replica's status says of the things an admin change changes. */
interface MembershipState {
  readonly term: number;
  readonly commitIndex: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  readonly members: readonly unknown[];
}

/**
 * The admin routes of one replica (a group of one, memory engine) started as the process starts it,
 * its admin token given by IMPULSE_ADMIN_TOKEN: every route refuses a request without the right
 * token, and a refused request changes nothing.
 */
describe("a replica's admin routes with an admin token", () => {
  let directory: string;
  let node: ShardNode;
  let base: string;

  async function call(
    path: string,
    init: { method?: string; authorization?: string; body?: string } = {},
  ): Promise<Answer> {
    const response = await fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      headers: init.authorization === undefined ? {} : { authorization: init.authorization },
      ...(init.body === undefined ? {} : { body: init.body }),
    });
    const text = await response.text();
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = { text };
    }
    return { status: response.status, headers: response.headers, body };
  }

  const state = (): MembershipState => {
    const { term, commitIndex, voters, learners, members } = node.replica.status();
    return { term, commitIndex, voters, learners, members };
  };

  const newMember = JSON.stringify({
    replicaId: 'g1-r2',
    raftId: 2,
    url: 'http://127.0.0.1:1',
    peerAddress: '127.0.0.1:2',
  });
  /** Every admin route, with a body that the route would act on. */
  const routes: readonly { method: string; path: string; body?: string }[] = [
    { method: 'GET', path: '/admin/status' },
    { method: 'GET', path: '/admin/consistency' },
    { method: 'POST', path: '/admin/members', body: newMember },
    { method: 'POST', path: '/admin/members/g1-r1/promote' },
    { method: 'DELETE', path: '/admin/members/g1-r1' },
    { method: 'POST', path: '/admin/transfer-leadership', body: '{"to":"g1-r1"}' },
    { method: 'POST', path: '/admin/consistency-check' },
    { method: 'GET', path: '/admin/nothing-here' },
  ];

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-admin-auth-'));
    const env = { IMPULSE_ADMIN_TOKEN: `${token}\n` };
    const config = checkShardNodeConfig(
      parseShardNodeConfig({
        argv: ['--port=0', '--engine=memory', `--data-dir=${directory}`, '--bootstrap', '--log-level=silent'],
        env,
      }),
      env,
    );
    node = await ShardNode.start(config, createLogger({ service: 'shard-node', level: 'silent' }));
    base = `http://127.0.0.1:${node.port}`;
    for (let attempt = 0; attempt < 100 && node.replica.status().role !== 'leader'; attempt++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await fetch(`${base}${pathForKey('k')}`, { method: 'PUT', body: 'v' })).status).toBe(204);
  });

  afterAll(async () => {
    await node?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it.each([
    ['no Authorization header', undefined, 'missing', 'Bearer realm="impulse-admin"'],
    [
      'a wrong token',
      `Bearer ${token.replace('r', 'R')}`,
      'invalid',
      'Bearer realm="impulse-admin", error="invalid_token"',
    ],
    [
      'a malformed header',
      `Token ${token}`,
      'malformed',
      'Bearer realm="impulse-admin", error="invalid_request"',
    ],
    [
      'the token without its scheme',
      token,
      'malformed',
      'Bearer realm="impulse-admin", error="invalid_request"',
    ],
  ])(
    'refuses every admin route given %s, and changes nothing',
    async (_name, authorization, reason, challenge) => {
      const before = state();
      for (const route of routes) {
        const answer = await call(route.path, {
          method: route.method,
          ...(authorization === undefined ? {} : { authorization }),
          ...(route.body === undefined ? {} : { body: route.body }),
        });
        const label = `${route.method} ${route.path}`;
        expect(answer.status, label).toBe(401);
        expect(answer.body, label).toMatchObject({ error: { code: 'ADMIN_UNAUTHORIZED', reason } });
        expect(answer.headers.get('www-authenticate'), label).toBe(challenge);
        // The token is never echoed.
        expect(JSON.stringify(answer.body), label).not.toContain(token);
      }
      // No learner added, no member removed, no leadership moved, no consistency check proposed.
      expect(state()).toEqual(before);
    },
  );

  it('refuses a large admin body without reading it', async () => {
    const before = state();
    const socket = connect(node.port, '127.0.0.1');
    await once(socket, 'connect');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.write('POST /admin/members HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n');
    socket.write(`10000\r\n${'x'.repeat(0x10000)}\r\n`);
    await once(socket, 'close');
    const answer = Buffer.concat(chunks).toString('latin1');
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(answer).toContain('ADMIN_UNAUTHORIZED');
    expect(state()).toEqual(before);
  });

  it('serves every admin route to the right token', async () => {
    const authorization = `Bearer ${token}`;
    const status = await call('/admin/status', { authorization });
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ groupId: 'g1', role: 'leader', keyCount: 1 });
    expect((await call('/admin/consistency', { authorization })).status).toBe(200);
    const before = state().commitIndex;
    const check = await call('/admin/consistency-check', { method: 'POST', authorization });
    expect(check.status).toBe(200);
    expect(check.body).toMatchObject({ consistent: true });
    expect(state().commitIndex).toBeGreaterThan(before);
    const added = await call('/admin/members', { method: 'POST', authorization, body: newMember });
    expect(added.status).toBe(200);
    expect(state().learners).toEqual([2]);
    const removed = await call('/admin/members/g1-r2', { method: 'DELETE', authorization });
    expect(removed.status).toBe(200);
    expect(state().learners).toEqual([]);
    // Past the check, each route's own rules answer.
    expect((await call('/admin/members', { method: 'GET', authorization })).status).toBe(405);
    expect((await call('/admin/nothing-here', { authorization })).status).toBe(404);
  });

  it('keeps health, readiness, metrics and the data path open', async () => {
    expect((await call('/healthz')).status).toBe(200);
    expect((await call('/readyz')).status).toBe(200);
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(
      /impulse_http_requests_total\{route="\/admin\/members",method="POST",status="401"[^}]*\} [1-9]/,
    );
    expect((await fetch(`${base}${pathForKey('k')}`)).status).toBe(200);
    expect((await fetch(`${base}/kv?limit=1`)).status).toBe(200);
  });
});

describe('the admin token at start', () => {
  const parse = (env: Record<string, string>): ReturnType<typeof checkShardNodeConfig> =>
    checkShardNodeConfig(parseShardNodeConfig({ argv: [], env }), env);
  const secret = '0123456789abcdef0123456789abcdef';

  it('refuses a cluster secret without an admin token', () => {
    expect(() => parse({ IMPULSE_CLUSTER_SECRET: secret })).toThrow(ConfigError);
    expect(() => parse({ IMPULSE_CLUSTER_SECRET: secret })).toThrow(
      /a cluster secret is given but no admin token \(--admin-token-file or IMPULSE_ADMIN_TOKEN\)/,
    );
  });

  it('takes both, or neither', () => {
    const both = parse({ IMPULSE_CLUSTER_SECRET: secret, IMPULSE_ADMIN_TOKEN: token });
    expect(Buffer.from(both.adminToken ?? []).toString()).toBe(token);
    expect(Buffer.from(both.clusterSecret ?? []).toString()).toBe(secret);
    const neither = parse({});
    expect(neither.adminToken).toBeUndefined();
    expect(neither.clusterSecret).toBeUndefined();
  });

  it('keeps refusing a flag that disagrees with the cluster configuration when secrets are given', () => {
    const cluster = JSON.stringify({
      epoch: 1,
      groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url: 'http://127.0.0.1:7001', raftId: 1 }] }],
    });
    const env = { IMPULSE_CLUSTER_SECRET: secret, IMPULSE_ADMIN_TOKEN: token };
    expect(() =>
      checkShardNodeConfig(
        parseShardNodeConfig({ argv: [`--cluster=${cluster}`, '--value-bytes-max=2MiB'], env }),
        env,
      ),
    ).toThrow(
      /--value-bytes-max \(IMPULSE_VALUE_BYTES_MAX\) is 2097152 bytes but the cluster configuration's valueBytesMax is 1048576/,
    );
  });
});
