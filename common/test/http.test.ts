import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ImpulseError } from '../src/index.js';
import { readBody, refuseBody } from '../src/index.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A server that reads bodies of at most 16 bytes and refuses larger ones as the services do. */
async function startServer(): Promise<number> {
  server = createServer((request, response) => {
    readBody(request, 16).then(
      (body) => response.writeHead(200, { 'content-length': body.length }).end(body),
      (error: unknown) => refuseBody(request, response, error as ImpulseError),
    );
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return (server?.address() as AddressInfo).port;
}

describe('refuseBody', () => {
  it('closes a keep-alive connection whose chunked body is over the limit, and says so', async () => {
    const port = await startServer();
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const closed = new Promise<number>((resolve) => {
      const startedAtMs = Date.now();
      socket.on('close', () => resolve(Date.now() - startedAtMs));
    });
    socket.on('error', () => undefined);
    // A chunk over the limit, and the body never finished: the client would go on sending.
    socket.write(
      'PUT /kv/k HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n' +
        '20\r\n' +
        'x'.repeat(32) +
        '\r\n',
    );
    const closedAfterMs = await closed;
    expect(received).toMatch(/^HTTP\/1\.1 413 /);
    expect(received.toLowerCase()).toContain('connection: close');
    expect(received).toContain('VALUE_TOO_LARGE');
    expect(closedAfterMs).toBeLessThan(5_000);
  });

  it('keeps the connection of a request that was read whole', async () => {
    const port = await startServer();
    const response = await fetch(`http://127.0.0.1:${port}/kv/k`, { method: 'PUT', body: 'small' });
    expect(response.status).toBe(200);
    expect(response.headers.get('connection')).toBe('keep-alive');
    expect(await response.text()).toBe('small');
  });
});
