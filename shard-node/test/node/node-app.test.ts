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
async function startNodeServer(groups: readonly string[]): Promise<{
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
  const config = parseShardNodeConfig({ argv: [], env: {} });
  const listeners = new Map<Replica, RequestListener>();
  const app = createNodeApp({
    node,
    logger: silentLogger,
    registry,
    startedAtMs: Date.now(),
    isReady: () => true,
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
          consistencyChecker: new ConsistencyChecker(replica, silentLogger, registry),
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
  init: { method?: string; group?: string; body?: string } = {},
): Promise<{ status: number; body: string; code: string | undefined }> {
  const response = await fetch(`${url}${path}`, {
    method: init.method ?? 'GET',
    headers: init.group === undefined ? {} : { [groupHeader]: init.group },
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const body = await response.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: response.status, body, code };
}

describe("a node's client API", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function started(groups: readonly string[]): Promise<Awaited<ReturnType<typeof startNodeServer>>> {
    const running = await startNodeServer(groups);
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
});
