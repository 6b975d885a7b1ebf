import { once } from 'node:events';
import type { Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createHttpServer,
  createLogger,
  createMetricsRegistry,
  httpServerLimitProblems,
  readBodyOrRefuse,
  type HttpServerLimits,
  type Registry,
} from '@impulse/common';

/** A raw connection that collects everything the server sends until it closes. */
interface Connection {
  readonly socket: Socket;
  /** Resolves with all the bytes received once the server closes the connection. */
  readonly closed: Promise<string>;
}

async function open(port: number): Promise<Connection> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  const closed = new Promise<string>((resolve) =>
    socket.once('close', () => resolve(Buffer.concat(chunks).toString('latin1'))),
  );
  return { socket, closed };
}

/** Sends `request` and resolves with everything received until the server closes. */
async function exchange(port: number, request: string): Promise<string> {
  const connection = await open(port);
  connection.socket.write(request);
  return connection.closed;
}

function codeOf(answer: string): string | undefined {
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  try {
    return (JSON.parse(body) as { error: { code: string } }).error.code;
  } catch {
    return undefined;
  }
}

describe('the client HTTP server', () => {
  let server: Server | undefined;
  let registry: Registry;

  /** What the listener saw: `start <url>` when a request reached it, `end <url>` when it answered. */
  const events: string[] = [];

  /**
   * A server whose one route echoes the size of the body it read (`200 <bytes read>`), after
   * `?delay=` milliseconds, and closes the connection unless `?keep` is given.
   */
  async function start(limits: Partial<HttpServerLimits> = {}): Promise<number> {
    registry = createMetricsRegistry({ service: 'test' });
    events.length = 0;
    server = createHttpServer({
      limits: { headerTimeout: 10_000, requestTimeout: 30_000, connectionsMax: 4096, ...limits },
      listener: (request, response) => {
        const url = request.url ?? '';
        events.push(`start ${url}`);
        const delayMs = Number(/delay=(\d+)/.exec(url)?.[1] ?? 0);
        void readBodyOrRefuse(request, response, 1024 * 1024).then((body) => {
          if (body === undefined) return;
          setTimeout(() => {
            events.push(`end ${url}`);
            response.writeHead(200, {
              'content-length': String(body.length).length,
              ...(url.includes('keep') ? {} : { connection: 'close' }),
            });
            response.end(String(body.length));
          }, delayMs);
        });
      },
      registry,
      logger: createLogger({ service: 'test', level: 'silent' }),
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as AddressInfo).port;
  }

  async function refusals(reason: string): Promise<number> {
    const text = await registry.metrics();
    const match = new RegExp(`impulse_http_refusals_total\\{reason="${reason}"[^}]*\\} (\\d+)`).exec(text);
    return Number(match?.[1] ?? 0);
  }

  afterEach(() => {
    server?.closeAllConnections();
    server?.close();
    server = undefined;
  });

  it('answers 408 REQUEST_TIMEOUT to a client that sends its headers too slowly, or nothing at all', async () => {
    const port = await start({ headerTimeout: 300, requestTimeout: 5000 });
    const startedAt = Date.now();
    const slow = await open(port);
    slow.socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const silent = await open(port);
    for (const answer of [await slow.closed, await silent.closed]) {
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(codeOf(answer)).toBe('REQUEST_TIMEOUT');
      expect(answer).toContain('connection: close');
    }
    // The timeout fires within the check interval (a quarter of the header timeout here).
    expect(Date.now() - startedAt).toBeLessThan(2000);
    expect(await refusals('header_timeout')).toBe(2);
  });

  it('answers 408 REQUEST_TIMEOUT to a client whose body is too slow', async () => {
    const port = await start({ headerTimeout: 200, requestTimeout: 600 });
    const slow = await open(port);
    slow.socket.write('PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab');
    const answer = await slow.closed;
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('request body did not arrive within --request-timeout');
    expect(await refusals('request_timeout')).toBe(1);
    // A client within the limits is served.
    expect(await exchange(port, 'PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc')).toMatch(
      /^HTTP\/1\.1 200 [\s\S]*\r\n\r\n3$/,
    );
  });

  it('answers 503 TOO_MANY_CONNECTIONS past --connections-max, and serves again once one closes', async () => {
    const port = await start({ connectionsMax: 2 });
    const first = await open(port);
    const second = await open(port);
    const third = await open(port);
    const refused = await third.closed;
    expect(refused).toMatch(/^HTTP\/1\.1 503 /);
    expect(codeOf(refused)).toBe('TOO_MANY_CONNECTIONS');
    expect(await refusals('too_many_connections')).toBe(1);
    // The refused connection is counted until the server side has closed it too.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await registry.metrics()).toMatch(/impulse_http_connections\{[^}]*\} 2\n/);
    first.socket.destroy();
    await once(first.socket, 'close');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 /);
    second.socket.destroy();
  });

  it('answers malformed framing with 400 MALFORMED_REQUEST in JSON, and closes', async () => {
    const port = await start();
    const cases = {
      'CL.TE':
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG',
      'TE.CL':
        'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nG\r\n0\r\n\r\n',
      'two content-lengths':
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
      'two equal content-lengths':
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc',
      'transfer-encoding: xchunked':
        'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n',
      'transfer-encoding with a space before the colon':
        'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
      'transfer-encoding: chunked, identity':
        'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
      'two transfer-encodings':
        'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'a bad chunk size':
        'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
      'a negative content-length': 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'bare LF line ends': 'GET / HTTP/1.1\nHost: x\n\n',
      'a control character in the target': 'GET /a\u0001b HTTP/1.1\r\nHost: x\r\n\r\n',
      'raw UTF-8 in the target': 'GET /caf\u00c3\u00a9 HTTP/1.1\r\nHost: x\r\n\r\n',
      'a space in a header name': 'GET / HTTP/1.1\r\nHost: x\r\nX y: 1\r\n\r\n',
      'an obsolete line folding': 'GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n',
      'no Host': 'GET / HTTP/1.1\r\n\r\n',
      'two Hosts': 'GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
      'HTTP/2 preface': 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    };
    for (const [name, request] of Object.entries(cases)) {
      const answer = await exchange(port, request);
      expect(answer, name).toMatch(/^HTTP\/1\.1 400 /);
      expect(codeOf(answer), name).toBe('MALFORMED_REQUEST');
      expect(answer, name).toContain('connection: close');
    }
    expect(await refusals('malformed')).toBe(Object.keys(cases).length);
    // HTTP/1.0 needs no Host.
    expect(await exchange(port, 'GET / HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('answers 431 HEADERS_TOO_LARGE to headers or a request line over 16 KiB', async () => {
    const port = await start();
    const header = await exchange(
      port,
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`,
    );
    expect(header).toMatch(/^HTTP\/1\.1 431 /);
    expect(codeOf(header)).toBe('HEADERS_TOO_LARGE');
    const url = await exchange(port, `GET /${'a'.repeat(17 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(codeOf(url)).toBe('HEADERS_TOO_LARGE');
    expect(await refusals('headers_too_large')).toBe(2);
    // Just under the limit is served.
    expect(
      await exchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(15 * 1024)}\r\n\r\n`),
    ).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('answers 400 INVALID_TARGET to absolute-form, asterisk-form and raw # or \\ targets', async () => {
    const port = await start();
    for (const target of ['http://evil/kv/a', '*', '/kv/a#b', '/kv/a\\b', '/kv?prefix=a#b']) {
      const answer = await exchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(answer, target).toMatch(/^HTTP\/1\.1 400 /);
      expect(codeOf(answer), target).toBe('INVALID_TARGET');
    }
    expect(await refusals('invalid_target')).toBe(5);
  });

  it('runs the pipelined requests of one connection one after the other, answers in order', async () => {
    const port = await start();
    const pipelined = [
      'PUT /first?keep&delay=200 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc',
      'GET /second?keep HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /third HTTP/1.1\r\nHost: x\r\n\r\n',
    ].join('');
    const answer = await exchange(port, pipelined);
    expect(answer.match(/HTTP\/1\.1 200 /g)).toHaveLength(3);
    expect(answer).toMatch(/\r\n\r\n3HTTP\/1\.1 200 [\s\S]*\r\n\r\n0HTTP\/1\.1 200 [\s\S]*\r\n\r\n0$/);
    // The second request reached the route only once the first was answered: a read pipelined
    // after a write on one connection sees the write.
    expect(events).toEqual([
      'start /first?keep&delay=200',
      'end /first?keep&delay=200',
      'start /second?keep',
      'end /second?keep',
      'start /third',
      'end /third',
    ]);
  });

  it('refuses a header timeout longer than the request timeout', () => {
    expect(httpServerLimitProblems({ headerTimeout: 2000, requestTimeout: 1000, connectionsMax: 1 })).toEqual(
      [expect.stringContaining('--header-timeout (2000 ms) must not exceed --request-timeout (1000 ms)')],
    );
    expect(httpServerLimitProblems({ headerTimeout: 1000, requestTimeout: 1000, connectionsMax: 1 })).toEqual(
      [],
    );
  });
});
