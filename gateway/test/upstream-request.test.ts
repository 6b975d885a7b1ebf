import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, loadClusterConfig, pathForKey, slotForKey } from '@impulse/common';
import { Gateway, parseGatewayConfig } from '../src/index.js';

/** One request as a replica received it, byte for byte. */
interface Received {
  readonly requestLine: string;
  /** Header lines as sent: [name, value], names lower-cased. */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Buffer;
}

/**
 * A replica that records the raw bytes of every request: the request line and each header line as
 * they arrived on the socket, before any HTTP library could tidy them. It answers 204 to writes
 * and `200 ok` to reads, on the same keep-alive connection.
 */
function recordingReplica(received: Received[]): Server {
  return createServer((socket: Socket) => {
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const headEnd = pending.indexOf('\r\n\r\n');
        if (headEnd === -1) return;
        const lines = pending.subarray(0, headEnd).toString('latin1').split('\r\n');
        const headers = lines.slice(1).map((line): [string, string] => {
          const colon = line.indexOf(':');
          return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
        });
        const length = Number(headers.find(([name]) => name === 'content-length')?.[1] ?? 0);
        if (pending.length < headEnd + 4 + length) return;
        const body = pending.subarray(headEnd + 4, headEnd + 4 + length);
        pending = pending.subarray(headEnd + 4 + length);
        const requestLine = lines[0] ?? '';
        received.push({ requestLine, headers, body: Buffer.from(body) });
        const method = requestLine.split(' ')[0];
        if (method === 'PUT' || method === 'DELETE') socket.write('HTTP/1.1 204 No Content\r\n\r\n');
        else socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n${method === 'HEAD' ? '' : 'ok'}`);
      }
    });
  });
}

/**
 * Sends raw bytes and reads one answer: until its headers and `content-length` bytes of body have
 * arrived (none for a HEAD), or the gateway closes the connection, or `waitMs` passes.
 */
async function exchange(port: number, request: string | Buffer, waitMs = 3000): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(request);
  const isHead = request.toString().startsWith('HEAD ');
  let answer = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, waitMs);
    const finish = (): void => {
      clearTimeout(timer);
      resolve();
    };
    socket.on('data', (chunk: Buffer) => {
      answer = Buffer.concat([answer, chunk]);
      const headEnd = answer.indexOf('\r\n\r\n');
      if (headEnd === -1) return;
      const length = /\r\ncontent-length: *(\d+)/i.exec(answer.subarray(0, headEnd).toString('latin1'));
      const bodyBytes = isHead ? 0 : Number(length?.[1] ?? 0);
      if (answer.length >= headEnd + 4 + bodyBytes) finish();
    });
    socket.once('close', finish);
  });
  socket.destroy();
  return answer.toString('latin1');
}

/** Every client header a proxy must not pass on: framing, hop-by-hop, credentials, spoofed routing. */
const hostileHeaders = [
  'Host: evil.example',
  'Connection: keep-alive, x-drop-me',
  'Keep-Alive: timeout=600',
  'TE: trailers',
  'Trailer: x-after',
  'Upgrade: h2c',
  'Proxy-Authorization: Basic eA==',
  'Proxy-Connection: keep-alive',
  'X-Forwarded-For: 10.0.0.1',
  'X-Impulse-Slot: 7',
  'X-Impulse-Timeout-Ms: 1',
  'Authorization: Bearer secret',
  'Cookie: session=1',
  'X-Drop-Me: 1',
  'Content-Type: text/plain',
  'Accept-Encoding: gzip',
].join('\r\n');

describe('the upstream request the gateway builds', () => {
  const received: Received[] = [];
  const replica = recordingReplica(received);
  let authority: string;
  let gateway: Gateway;

  beforeAll(async () => {
    replica.listen(0, '127.0.0.1');
    await once(replica, 'listening');
    authority = `127.0.0.1:${(replica.address() as AddressInfo).port}`;
    const cluster = loadClusterConfig({
      json: JSON.stringify({
        epoch: 1,
        virtualNodesPerGroup: 16,
        groups: [
          {
            id: 'g1',
            replicas: [{ id: 'g1-r1', url: `http://${authority}`, raftId: 1, peerAddress: '127.0.0.1:1' }],
          },
        ],
      }),
    });
    const config = parseGatewayConfig({ argv: ['--port=0', '--log-level=silent'], env: {} });
    gateway = await Gateway.start(config, cluster, createLogger({ service: 'gateway', level: 'silent' }));
  });

  afterAll(async () => {
    await gateway.stop();
    replica.close();
  });

  beforeEach(() => {
    received.length = 0;
  });

  function headerNames(request: Received): string[] {
    return request.headers.map(([name]) => name).sort();
  }

  function headerOf(request: Received, name: string): string | undefined {
    return request.headers.find(([candidate]) => candidate === name)?.[1];
  }

  it('sends a PUT with exactly its own headers, whatever the client sent', async () => {
    const answer = await exchange(
      gateway.port,
      `PUT /kv/K HTTP/1.1\r\n${hostileHeaders}\r\nX-Impulse-Request-Id: client-id_1\r\nContent-Length: 5\r\n\r\nhello`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 204 /);
    expect(received).toHaveLength(1);
    const [put] = received as [Received];
    expect(put.requestLine).toBe('PUT /kv/K HTTP/1.1');
    expect(headerNames(put)).toEqual([
      'connection',
      'content-length',
      'content-type',
      'host',
      'x-impulse-group',
      'x-impulse-request-id',
      'x-impulse-slot',
    ]);
    expect(headerOf(put, 'host')).toBe(authority);
    expect(headerOf(put, 'connection')).toBe('keep-alive');
    expect(headerOf(put, 'content-length')).toBe('5');
    expect(headerOf(put, 'content-type')).toBe('application/octet-stream');
    expect(headerOf(put, 'x-impulse-slot')).toBe(String(slotForKey('K')));
    // The group routed to: a node hosts replicas of many and serves this one's.
    expect(headerOf(put, 'x-impulse-group')).toMatch(/^g\d+$/);
    expect(headerOf(put, 'x-impulse-request-id')).toBe('client-id_1');
    expect(put.body.toString()).toBe('hello');
  });

  it('sends a chunked PUT as one body with its length', async () => {
    const answer = await exchange(
      gateway.port,
      'PUT /kv/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 204 /);
    const [put] = received as [Received];
    expect(headerOf(put, 'transfer-encoding')).toBeUndefined();
    expect(headerOf(put, 'content-length')).toBe('5');
    expect(put.body.toString()).toBe('abcde');
    // The gateway made up a request id for a write that came without one.
    expect(headerOf(put, 'x-impulse-request-id')).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('sends GET, HEAD and DELETE with their own headers and no body', async () => {
    for (const [method, target, expectedLine, expectedNames] of [
      ['GET', '/kv/K', 'GET /kv/K HTTP/1.1', ['connection', 'host', 'x-impulse-group', 'x-impulse-slot']],
      [
        'GET',
        '/kv/K?consistency=st%61le',
        'GET /kv/K?consistency=stale HTTP/1.1',
        ['connection', 'host', 'x-impulse-group', 'x-impulse-slot'],
      ],
      [
        'GET',
        '/kv/K?consistency=linearizable',
        'GET /kv/K HTTP/1.1',
        ['connection', 'host', 'x-impulse-group', 'x-impulse-slot'],
      ],
      ['HEAD', '/kv/K', 'HEAD /kv/K HTTP/1.1', ['connection', 'host', 'x-impulse-group', 'x-impulse-slot']],
      [
        'DELETE',
        '/kv/K',
        'DELETE /kv/K HTTP/1.1',
        ['connection', 'content-length', 'host', 'x-impulse-group', 'x-impulse-request-id', 'x-impulse-slot'],
      ],
    ] as const) {
      received.length = 0;
      const answer = await exchange(
        gateway.port,
        `${method} ${target} HTTP/1.1\r\n${hostileHeaders}\r\n\r\n`,
      );
      expect(answer, `${method} ${target}`).toMatch(/^HTTP\/1\.1 20[04] /);
      expect(received, `${method} ${target}`).toHaveLength(1);
      const [request] = received as [Received];
      expect(request.requestLine).toBe(expectedLine);
      expect(headerNames(request), `${method} ${target}`).toEqual(expectedNames);
      if (method === 'DELETE') expect(headerOf(request, 'content-length')).toBe('0');
      expect(request.body.length).toBe(0);
    }
  });

  it('sends every key escaped so that nothing on the way can rewrite it, with the slot of that key', async () => {
    const targets: [string, string][] = [
      ['/kv/K//x', 'K//x'],
      ['/kv//K', '/K'],
      ['/kv/K-http:/x', 'K-http:/x'],
      ['/kv/K-http%3A%2F%2Fx', 'K-http://x'],
      ['/kv/a/../b', 'a/../b'],
      ['/kv/..', '..'],
      ['/kv/.', '.'],
      ['/kv/%2E%2E%2Fetc', '../etc'],
      ['/kv/%00', '\u0000'],
      ['/kv/%23frag', '#frag'],
      ['/kv/%3Fq=1', '?q=1'],
      ['/kv/%5Cx', '\\x'],
      ['/kv/caf%C3%A9', 'café'],
      ['/kv/a"b<c>{d}|^`', 'a"b<c>{d}|^`'],
      ["/kv/!'()*~", "!'()*~"],
      ['/kv/a+b%20c', 'a+b c'],
    ];
    for (const [target, key] of targets) {
      received.length = 0;
      const answer = await exchange(gateway.port, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(answer, target).toMatch(/^HTTP\/1\.1 200 /);
      const [request] = received as [Received];
      expect(request.requestLine, target).toBe(`GET ${pathForKey(key)} HTTP/1.1`);
      // The path holds nothing but unreserved characters and escapes.
      expect(pathForKey(key).slice('/kv/'.length), target).toMatch(/^(?:[A-Za-z0-9_~-]|%[0-9A-F]{2})+$/);
      expect(headerOf(request, 'x-impulse-slot'), target).toBe(String(slotForKey(key)));
    }
  });

  it('refuses targets that cannot name a key unambiguously, and sends nothing', async () => {
    for (const target of ['/kv/K#frag', '/kv/K\\x', 'http://evil/kv/K', '*']) {
      const answer = await exchange(gateway.port, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(answer, target).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer, target).toContain('"code":"INVALID_TARGET"');
    }
    expect(received).toHaveLength(0);
  });

  it('refuses a body on GET and DELETE, and sends nothing', async () => {
    for (const method of ['GET', 'DELETE']) {
      const answer = await exchange(
        gateway.port,
        `${method} /kv/K HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc`,
      );
      expect(answer, method).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer, method).toContain('"code":"BODY_NOT_ALLOWED"');
    }
    expect(received).toHaveLength(0);
  });
});

describe('the request deadline', () => {
  const received: Received[] = [];
  const replica = recordingReplica(received);
  let gateway: Gateway;

  beforeAll(async () => {
    replica.listen(0, '127.0.0.1');
    await once(replica, 'listening');
    const url = `http://127.0.0.1:${(replica.address() as AddressInfo).port}`;
    const cluster = loadClusterConfig({
      json: JSON.stringify({
        epoch: 1,
        virtualNodesPerGroup: 16,
        groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url, raftId: 1, peerAddress: '127.0.0.1:1' }] }],
      }),
    });
    const config = parseGatewayConfig({
      argv: ['--port=0', '--log-level=silent', '--request-deadline=300ms', '--request-timeout=15s'],
      env: {},
    });
    gateway = await Gateway.start(config, cluster, createLogger({ service: 'gateway', level: 'silent' }));
  });

  afterAll(async () => {
    await gateway.stop();
    replica.close();
  });

  it('counts from the arrival of the request: a body slower than the deadline gets 504 and reaches no replica', async () => {
    const socket = connect(gateway.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(`PUT /kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const answered = once(socket, 'data');
    socket.write('cd');
    const [chunk] = (await answered) as [Buffer];
    socket.destroy();
    expect(chunk.toString('latin1')).toMatch(/^HTTP\/1\.1 504 [\s\S]*"code":"UPSTREAM_TIMEOUT"/);
    expect(received).toHaveLength(0);
    // A request within the deadline goes through.
    expect(
      await exchange(gateway.port, 'PUT /kv/quick HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nq'),
    ).toMatch(/^HTTP\/1\.1 204 /);
    expect(received).toHaveLength(1);
  });
});
