import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry, createHttpServer, groupHeader } from '@impulse/common';
import { parseShardNodeConfig } from '../../src/config.js';
import { Node } from '../../src/node/index.js';
import { createNodeApp } from '../../src/node/node-app.js';
import type { Replica } from '../../src/replica/index.js';
import { createShardApp } from '../../src/server/app.js';
import { ConsistencyChecker } from '../../src/server/consistency.js';
import type { RequestListener } from '../../src/server/kv.js';
import { silentLogger, untilLeading } from '../replica/harness.js';
import { FailingDisk, hosted, nodeOptions } from './node-harness.js';

/**
 * A node of groups g1, g2 and g3 (each a group of one, on a disk that can go bad) behind the node's
 * client API, served over HTTP as the node process serves it.
 */
async function startNodeServer(
  groups: readonly string[],
  adminToken?: string,
): Promise<{
  node: Node;
  disk: FailingDisk;
  registry: Registry;
  url: string;
  server: Server;
}> {
  const disk = new FailingDisk();
  const registry = new Registry();
  const node = await Node.start(
    nodeOptions(disk.fs, registry, 'replica'),
    groups.map((group) => hosted(group)),
  );
  for (const group of groups) await untilLeading(node.replicaOf(group) as Replica);
  const config = {
    ...parseShardNodeConfig({ argv: [], env: {} }),
    ...(adminToken === undefined ? {} : { adminToken: Buffer.from(adminToken) }),
  };
  const listeners = new Map<Replica, RequestListener>();
  const app = createNodeApp({
    node,
    logger: silentLogger,
    registry,
    startedAtMs: Date.now(),
    isReady: () => true,
    adminToken: config.adminToken,
    addReplica: async (replica) => {
      const self = replica.members.find((member) => member.raftId === replica.raftId) ?? replica.members[0];
      const added = await node.addReplica({
        groupId: replica.groupId,
        self: self as NonNullable<typeof self>,
        initialMembers: replica.members,
        join: false,
        bootstrap: true,
      });
      return added.status();
    },
    removeReplica: (groupId) => node.removeReplica(groupId),
    replicaListener: (groupId) => {
      const replica = node.replicaOf(groupId);
      if (replica === undefined) return undefined;
      let listener = listeners.get(replica);
      if (listener === undefined) {
        listener = createShardApp({
          config: { ...config, groupId },
          replica,
          logger: silentLogger,
          registry,
          startedAtMs: Date.now(),
          isReady: () => true,
          consistencyChecker: new ConsistencyChecker(replica, silentLogger, registry, config.adminToken),
        });
        listeners.set(replica, listener);
      }
      return listener;
    },
  });
  const server = createHttpServer({ limits: config, listener: app, registry, logger: silentLogger });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { node, disk, registry, url, server };
}

async function call(
  url: string,
  path: string,
  init: { method?: string; group?: string; body?: string; authorization?: string } = {},
): Promise<{ status: number; body: string; code: string | undefined; headers: Headers }> {
  const response = await fetch(`${url}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.group === undefined ? {} : { [groupHeader]: init.group }),
      ...(init.authorization === undefined ? {} : { authorization: init.authorization }),
    },
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const body = await response.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: response.status, body, code, headers: response.headers };
}

describe("a node's client API", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function started(
    groups: readonly string[],
    adminToken?: string,
  ): Promise<Awaited<ReturnType<typeof startNodeServer>>> {
    const running = await startNodeServer(groups, adminToken);
    cleanups.push(async () => {
      running.server.close();
      await running.node.stop();
    });
    return running;
  }

  it('routes each request to the replica of the group its header names, and keeps the groups apart', async () => {
    const { url } = await started(['g1', 'g2', 'g3']);
    expect((await call(url, '/kv/k', { method: 'PUT', group: 'g1', body: 'one' })).status).toBe(204);
    expect((await call(url, '/kv/k', { method: 'PUT', group: 'g2', body: 'two' })).status).toBe(204);
    expect((await call(url, '/kv/k', { group: 'g1' })).body).toBe('one');
    expect((await call(url, '/kv/k', { group: 'g2' })).body).toBe('two');
    expect((await call(url, '/kv/k', { group: 'g3' })).code).toBe('NOT_FOUND');
    const scan = JSON.parse((await call(url, '/kv?limit=10', { group: 'g2' })).body) as { items: unknown[] };
    expect(scan.items).toEqual([{ key: 'k', value: 'two' }]);
    // A group's own admin routes answer for that group.
    const status = JSON.parse((await call(url, '/admin/status', { group: 'g3' })).body) as {
      groupId: string;
    };
    expect(status.groupId).toBe('g3');
  });

  it('refuses a group it does not host, a missing header on a node of several groups, and a malformed one', async () => {
    const { url } = await started(['g1', 'g2']);
    const other = await call(url, '/kv/k', { method: 'PUT', group: 'g9', body: 'x' });
    expect([other.status, other.code]).toEqual([421, 'GROUP_NOT_HOSTED']);
    expect(JSON.parse(other.body)).toMatchObject({ error: { hostedGroups: ['g1', 'g2'] } });
    const missing = await call(url, '/kv/k');
    expect([missing.status, missing.code]).toEqual([421, 'GROUP_NOT_HOSTED']);
    const malformed = await call(url, '/kv/k', { group: '../g1' });
    expect([malformed.status, malformed.code]).toEqual([400, 'INVALID_REQUEST']);
    // Nothing was written anywhere.
    for (const group of ['g1', 'g2']) expect((await call(url, '/kv/k', { group })).code).toBe('NOT_FOUND');
  });

  it('serves its one group without the header when it hosts only one', async () => {
    const { url } = await started(['g1']);
    expect((await call(url, '/kv/k', { method: 'PUT', body: 'v' })).status).toBe(204);
    expect((await call(url, '/kv/k', { group: 'g1' })).body).toBe('v');
  });

  it('answers REPLICA_FAILED for a failed replica, stays ready, and reports the failure in its status and metrics', async () => {
    const { url, disk, node, registry } = await started(['g1', 'g2']);
    expect((await call(url, '/kv/a', { method: 'PUT', group: 'g2', body: '1' })).status).toBe(204);
    disk.failingPrefix = '/data/n1/groups/g2/raft';
    const failedWrite = await call(url, '/kv/b', { method: 'PUT', group: 'g2', body: '2' });
    expect(failedWrite.status).toBeGreaterThanOrEqual(500);
    expect(node.replicaOf('g2')).toBeUndefined();
    const refused = await call(url, '/kv/a', { group: 'g2' });
    expect([refused.status, refused.code]).toEqual([503, 'REPLICA_FAILED']);
    // The other group goes on, and the node stays in its load balancer.
    expect((await call(url, '/kv/c', { method: 'PUT', group: 'g1', body: '3' })).status).toBe(204);
    const ready = await call(url, '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({
      status: 'degraded',
      replicas: 1,
      failedGroups: ['g2'],
      storageFaultGroups: [],
    });
    const status = JSON.parse((await call(url, '/admin/status')).body) as {
      nodeId: string;
      replicas: { groupId: string; health: string; role?: string }[];
    };
    expect(status.nodeId).toBe('n1');
    expect(status.replicas.map((replica) => [replica.groupId, replica.health, replica.role])).toEqual([
      ['g1', 'running', 'leader'],
      ['g2', 'failed', undefined],
    ]);
    const metrics = await registry.metrics();
    expect(metrics).toContain('impulse_node_replicas{state="failed"} 1');
    // Every hosted group's metrics in one registry, each with its group label.
    expect(metrics).toMatch(/impulse_kv_slot_mismatches_total\{group="g1"\} 0/);
    expect(metrics).toMatch(/impulse_replica_consistency_checks_total\{group="g1",outcome="consistent"\} 0/);
    expect(metrics).toMatch(
      /impulse_http_requests_total\{route="\/kv\/\{key\}",method="PUT",status="204"\} 2/,
    );
  });
  describe('admin authentication', () => {
    const token = 'node-admin-token-0123456789abcdef';
    const bearer = `Bearer ${token}`;
    const members = JSON.stringify({
      groupId: 'g3',
      replicaId: 'g3-r1',
      raftId: 1,
      members: [{ replicaId: 'g3-r1', raftId: 1, url: 'http://127.0.0.1:1', peerAddress: '127.0.0.1:2' }],
    });

    it("refuses every admin route, the node's and its replicas', without the token, and changes nothing", async () => {
      const { url, node } = await started(['g1', 'g2'], token);
      const refusals = [
        await call(url, '/admin/status'),
        await call(url, '/admin/status', { group: 'g1' }),
        await call(url, '/admin/consistency', { group: 'g1' }),
        await call(url, '/ADMIN/STATUS'),
        await call(url, '/admin/replicas', { method: 'POST', body: members }),
        await call(url, '/admin/replicas/g1?force=true', { method: 'DELETE' }),
        await call(url, '/admin/transfer-leadership', {
          method: 'POST',
          group: 'g1',
          body: '{"to":"g1-r1"}',
        }),
        await call(url, '/admin/consistency-check', { method: 'POST', group: 'g2' }),
        await call(url, '/admin/members/g1-r1', { method: 'DELETE', group: 'g1' }),
      ];
      for (const refused of refusals) {
        expect([refused.status, refused.code]).toEqual([401, 'ADMIN_UNAUTHORIZED']);
        expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="impulse-admin"');
        expect(JSON.parse(refused.body)).toMatchObject({ error: { reason: 'missing' } });
      }
      // Nothing changed: the node hosts what it hosted, and its groups kept their one voter.
      expect([...node.runningReplicas().keys()].sort()).toEqual(['g1', 'g2']);
      for (const group of ['g1', 'g2']) expect(node.replicaOf(group)?.status().voters).toEqual([1]);
    });

    it('tells a wrong token from a malformed Authorization header', async () => {
      const { url, node } = await started(['g1'], token);
      for (const authorization of [
        `Bearer ${token}x`,
        'Bearer 0123456789abcdef0123456789abcdef',
        'bearer x',
      ]) {
        const refused = await call(url, '/admin/replicas/g1?force=true', { method: 'DELETE', authorization });
        expect([refused.status, refused.code], authorization).toEqual([401, 'ADMIN_UNAUTHORIZED']);
        expect(JSON.parse(refused.body), authorization).toMatchObject({ error: { reason: 'invalid' } });
        expect(refused.headers.get('www-authenticate')).toBe(
          'Bearer realm="impulse-admin", error="invalid_token"',
        );
      }
      for (const authorization of [
        token,
        `Basic ${token}`,
        'Bearer',
        `Bearer ${token} extra`,
        `Bearer "${token}"`,
      ]) {
        const refused = await call(url, '/admin/status', { authorization });
        expect([refused.status, refused.code], authorization).toEqual([401, 'ADMIN_UNAUTHORIZED']);
        expect(JSON.parse(refused.body), authorization).toMatchObject({ error: { reason: 'malformed' } });
        expect(refused.headers.get('www-authenticate')).toBe(
          'Bearer realm="impulse-admin", error="invalid_request"',
        );
      }
      expect(node.replicaOf('g1')).toBeDefined();
    });

    it('serves the admin routes to the right token, in any case of the scheme', async () => {
      const { url, node } = await started(['g1', 'g2'], token);
      const status = await call(url, '/admin/status', { authorization: bearer });
      expect(status.status).toBe(200);
      expect((JSON.parse(status.body) as { nodeId: string }).nodeId).toBe('n1');
      const replica = await call(url, '/admin/status', { group: 'g2', authorization: `bearer  ${token}` });
      expect((JSON.parse(replica.body) as { groupId: string }).groupId).toBe('g2');
      const forced = await call(url, '/admin/replicas/g1?force=true', {
        method: 'DELETE',
        authorization: bearer,
      });
      expect(forced.status).toBe(200);
      expect(node.replicaOf('g1')).toBeUndefined();
    });

    it('keeps health, readiness, metrics and the data path open', async () => {
      const { url } = await started(['g1'], token);
      expect((await call(url, '/healthz')).status).toBe(200);
      expect((await call(url, '/readyz')).status).toBe(200);
      expect((await call(url, '/readyz', { group: 'g1' })).status).toBe(200);
      const metrics = await call(url, '/metrics');
      expect(metrics.status).toBe(200);
      // Refusals are counted as requests, by route and status.
      await call(url, '/admin/status');
      expect((await call(url, '/metrics')).body).toMatch(
        /impulse_http_requests_total\{route="\/admin\/status",method="GET",status="401"[^}]*\} 1/,
      );
      expect((await call(url, '/kv/k', { method: 'PUT', body: 'v' })).status).toBe(204);
      expect((await call(url, '/kv/k')).body).toBe('v');
    });

    it('without a token, answers admin reads and refuses every admin change', async () => {
      const { url, node } = await started(['g1', 'g2']);
      expect((await call(url, '/admin/status')).status).toBe(200);
      expect((await call(url, '/admin/status', { group: 'g1' })).status).toBe(200);
      for (const [method, path, group] of [
        ['DELETE', '/admin/replicas/g1?force=true', undefined],
        ['POST', '/admin/replicas', undefined],
        ['POST', '/admin/consistency-check', 'g1'],
        ['DELETE', '/admin/members/g1-r1', 'g1'],
      ] as const) {
        // A token sent changes nothing: the process has none to compare it with.
        const refused = await call(url, path, {
          method,
          ...(group === undefined ? {} : { group }),
          authorization: bearer,
          ...(method === 'POST' ? { body: members } : {}),
        });
        expect([refused.status, refused.code], path).toEqual([401, 'ADMIN_UNAUTHORIZED']);
        expect(JSON.parse(refused.body), path).toMatchObject({ error: { reason: 'notConfigured' } });
      }
      expect([...node.runningReplicas().keys()].sort()).toEqual(['g1', 'g2']);
    });
  });
});
