import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, pathForKey, slotCount, slotForKey } from '@impulse/common';
import { ShardNode, parseShardNodeConfig } from '../../src/index.js';

/** A raw HTTP exchange: the request is sent as given and the answer read until the server closes. */
async function exchange(port: number, request: string | Buffer): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(request);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

function get(path: string): string {
  return `GET ${path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n`;
}

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/**
 * The key route of a real replica (a group of one, memory engine, small limits), served from the
 * plain listener in front of express: every rule the route had under express, checked from outside.
 */
describe('shard-node key route', () => {
  let directory: string;
  let node: ShardNode;
  let base: string;

  async function call(path: string, init: RequestInit = {}): Promise<Answer> {
    const response = await fetch(`${base}${path}`, init);
    return { status: response.status, headers: response.headers, text: await response.text() };
  }

  function errorOf(answer: Answer): { code: string; message: string } & Record<string, unknown> {
    return (JSON.parse(answer.text) as { error: { code: string; message: string } }).error;
  }

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-kv-route-'));
    const config = parseShardNodeConfig({
      argv: [
        '--port=0',
        '--engine=memory',
        `--data-dir=${directory}`,
        '--bootstrap',
        '--raft-log-sync=false',
        '--value-bytes-max=1KiB',
        '--key-bytes-max=16B',
        '--log-level=silent',
      ],
      env: {},
    });
    node = await ShardNode.start(config, createLogger({ service: 'shard-node', level: 'silent' }));
    base = `http://127.0.0.1:${node.port}`;
    // A group of one elects itself at once; wait until it takes writes.
    for (let attempt = 0; attempt < 100; attempt++) {
      if (node.replica.status().role === 'leader') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  afterAll(async () => {
    await node.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('writes, reads, heads and deletes a key with the same headers as before', async () => {
    expect((await call('/kv/a', { method: 'PUT', body: 'hello' })).status).toBe(204);
    const read = await call('/kv/a');
    expect(read.status).toBe(200);
    expect(read.text).toBe('hello');
    expect(read.headers.get('content-type')).toBe('application/octet-stream');
    expect(read.headers.get('content-length')).toBe('5');
    const head = await call('/kv/a', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('5');
    expect(head.text).toBe('');
    expect((await call('/kv/a', { method: 'DELETE' })).status).toBe(204);
    const gone = await call('/kv/a');
    expect(gone.status).toBe(404);
    expect(gone.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(errorOf(gone)).toEqual({ code: 'NOT_FOUND', message: 'no such key' });
  });

  it('reads a key percent-encoded, with a slash in it', async () => {
    expect((await call('/kv/photos%2F1', { method: 'PUT', body: 'p1' })).status).toBe(204);
    expect((await call('/kv/photos/1')).text).toBe('p1');
  });

  it('takes ?consistency=stale or linearizable and refuses anything else', async () => {
    await call('/kv/c', { method: 'PUT', body: 'v' });
    for (const query of ['consistency=stale', 'consistency=linearizable', 'consistency=st%61le', '', '&']) {
      const answer = await call(`/kv/c?${query}`);
      expect(answer.status, query).toBe(200);
      expect(answer.text, query).toBe('v');
    }
    for (const query of ['consistency=bogus', 'consistency=', 'consistency']) {
      const answer = await call(`/kv/c?${query}`);
      expect(answer.status, query).toBe(400);
      expect(errorOf(answer), query).toMatchObject({
        code: 'INVALID_REQUEST',
        allowed: ['linearizable', 'stale'],
      });
    }
    const repeated = await call('/kv/c?consistency=stale&consistency=stale');
    expect(errorOf(repeated)).toMatchObject({ code: 'INVALID_REQUEST', parameter: 'consistency' });
    // An unknown parameter is refused, as the scan route refuses one: a misspelt name would
    // otherwise silently read from the leader.
    for (const query of ['x=1', 'consistncy=stale']) {
      const answer = await call(`/kv/c?${query}`);
      expect(answer.status, query).toBe(400);
      expect(errorOf(answer), query).toMatchObject({ code: 'INVALID_REQUEST', allowed: ['consistency'] });
    }
    // A raw '#' (fetch never sends one; node's HTTP parser lets it through) is part of the path to
    // node and a fragment to most other parsers: refused, never read either way.
    for (const target of [
      '/kv/c?consistency=stale#x',
      '/kv/c?x=1#consistency=bogus',
      '/kv/c#?consistency=bogus',
    ]) {
      const answer = await exchange(node.port, get(target));
      expect(answer, target).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer, target).toContain('"code":"INVALID_TARGET"');
    }
  });

  it('refuses a key that does not hash to the slot the gateway routed it by, and writes nothing', async () => {
    const key = 'slotted/key';
    const slot = slotForKey(key);
    const wrong = String((slot + 1) % slotCount);
    const refused = await call(pathForKey(key), {
      method: 'PUT',
      body: 'v',
      headers: { 'x-impulse-slot': wrong },
    });
    expect(refused.status).toBe(400);
    expect(errorOf(refused)).toMatchObject({
      code: 'SLOT_MISMATCH',
      keySlot: slot,
      routedSlot: Number(wrong),
    });
    expect((await call(pathForKey(key))).status).toBe(404);
    // The slot of the key is taken, and so is a request that names none (a client calling directly).
    const put = await call(pathForKey(key), {
      method: 'PUT',
      body: 'v',
      headers: { 'x-impulse-slot': String(slot) },
    });
    expect(put.status).toBe(204);
    const deleted = await call(pathForKey(key), { method: 'DELETE', headers: { 'x-impulse-slot': wrong } });
    expect(errorOf(deleted).code).toBe('SLOT_MISMATCH');
    expect((await call(pathForKey(key), { headers: { 'x-impulse-slot': wrong } })).status).toBe(400);
    expect((await call(pathForKey(key))).text).toBe('v');
    for (const bad of ['-1', String(slotCount), '1e3', '0x10', 'x', '']) {
      const answer = await call(pathForKey(key), { headers: { 'x-impulse-slot': bad } });
      expect(errorOf(answer).code, bad).toBe('INVALID_REQUEST');
    }
    const text = (await call('/metrics')).text;
    expect(text).toMatch(/impulse_kv_slot_mismatches_total\{[^}]*\} 3\n/);
  });

  it('refuses a body on GET, HEAD and DELETE with BODY_NOT_ALLOWED, and changes nothing', async () => {
    await call('/kv/bodied', { method: 'PUT', body: 'kept' });
    for (const method of ['GET', 'HEAD', 'DELETE']) {
      for (const framing of [
        'content-length: 3\r\n\r\nabc',
        'transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      ]) {
        const answer = await exchange(node.port, `${method} /kv/bodied HTTP/1.1\r\nhost: t\r\n${framing}`);
        expect(answer, `${method} ${framing}`).toMatch(/^HTTP\/1\.1 400 /);
        if (method !== 'HEAD') expect(answer, `${method} ${framing}`).toContain('"code":"BODY_NOT_ALLOWED"');
      }
    }
    expect((await call('/kv/bodied')).text).toBe('kept');
    // An empty body declared as such is no body.
    const deleted = await exchange(
      node.port,
      'DELETE /kv/bodied HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\nconnection: close\r\n\r\n',
    );
    expect(deleted).toMatch(/^HTTP\/1\.1 204 /);
  });

  it('answers a bad key before a bad consistency, and a bad method before both', async () => {
    expect(errorOf(await call('/kv/?consistency=bogus')).code).toBe('INVALID_KEY');
    expect(errorOf(await call('/kv/%ZZ?consistency=bogus')).code).toBe('INVALID_ENCODING');
    expect(errorOf(await call(`/kv/${'k'.repeat(17)}`)).code).toBe('INVALID_KEY');
    expect((await call(`/kv/${'k'.repeat(16)}`)).status).toBe(404);
    expect(errorOf(await call('/kv/', { method: 'PUT', body: 'x' })).code).toBe('INVALID_KEY');
    const post = await call('/kv/%ZZ', { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD, PUT, DELETE');
    expect(errorOf(post)).toMatchObject({
      code: 'METHOD_NOT_ALLOWED',
      allowed: ['GET', 'HEAD', 'PUT', 'DELETE'],
    });
  });

  it('checks the request id of writes', async () => {
    const put = await call('/kv/r', {
      method: 'PUT',
      body: 'v',
      headers: { 'x-impulse-request-id': 'id_1-ok' },
    });
    expect(put.status).toBe(204);
    for (const requestId of ['not valid!', 'x'.repeat(65)]) {
      for (const method of ['PUT', 'DELETE']) {
        const answer = await call('/kv/r', {
          method,
          body: method === 'PUT' ? 'changed' : null,
          headers: { 'x-impulse-request-id': requestId },
        });
        expect(answer.status, `${method} ${requestId}`).toBe(400);
        expect(errorOf(answer).code).toBe('INVALID_REQUEST');
      }
    }
    expect((await call('/kv/r')).text).toBe('v');
  });

  it('refuses a body over the limit with 413 and closes a connection the client asked to close', async () => {
    const declared = await exchange(
      node.port,
      `PUT /kv/big HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: 1025\r\n\r\n${'x'.repeat(100)}`,
    );
    expect(declared).toMatch(/^HTTP\/1\.1 413 /);
    expect(declared).toContain('"code":"VALUE_TOO_LARGE"');
    const chunk = 'y'.repeat(2048);
    const chunked = await exchange(
      node.port,
      `PUT /kv/big HTTP/1.1\r\nhost: test\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
    );
    expect(chunked).toMatch(/^HTTP\/1\.1 413 /);
    expect((await call('/kv/big')).status).toBe(404);
    expect((await call('/kv/limit', { method: 'PUT', body: 'z'.repeat(1024) })).status).toBe(204);
  });

  it('leaves /KV/... and the other routes to express and its JSON 404', async () => {
    for (const path of ['/KV/a', '/kvx/a', '/KV?limit=1', '/kvx?limit=1']) {
      const answer = await call(path);
      expect(answer.status, path).toBe(404);
      expect(errorOf(answer).code, path).toBe('ROUTE_NOT_FOUND');
    }
    expect((await call('/healthz')).status).toBe(200);
    expect((await call('/readyz')).status).toBe(200);
    expect((await call('/admin/status')).status).toBe(200);
  });

  it('counts key requests under the /kv/{key} route and engine operations by outcome', async () => {
    await call('/kv/m', { method: 'PUT', body: 'v' });
    await call('/kv/m');
    await call('/kv/m', { method: 'POST' });
    const text = (await call('/metrics')).text;
    expect(text).toMatch(
      /impulse_http_requests_total\{route="\/kv\/\{key\}",method="PUT",status="204",[^}]*\} [1-9]/,
    );
    expect(text).toMatch(
      /impulse_http_requests_total\{route="\/kv\/\{key\}",method="GET",status="200",[^}]*\} [1-9]/,
    );
    expect(text).toMatch(
      /impulse_http_requests_total\{route="\/kv\/\{key\}",method="POST",status="405",[^}]*\} [1-9]/,
    );
    expect(text).toMatch(
      /impulse_http_request_duration_seconds_count\{[^}]*route="\/kv\/\{key\}",method="GET",status="200"\} [1-9]/,
    );
    expect(text).toMatch(
      /impulse_kv_operations_total\{engine="memory",operation="put",outcome="ok",[^}]*\} [1-9]/,
    );
    expect(text).toMatch(
      /impulse_kv_operations_total\{engine="memory",operation="get",outcome="ok",[^}]*\} [1-9]/,
    );
    expect(text).toMatch(
      /impulse_kv_operation_duration_seconds_count\{[^}]*engine="memory",operation="get"[^}]*\} [1-9]/,
    );
    expect(text).not.toMatch(/route="unmatched",method="PUT",status="204"/);
  });
});
