import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const valueBytesMax = 1024 * 1024;

/**
 * The ceiling: a bare node:http server doing the same work as Impulse in a Map (the same
 * `/kv/{key}` routes and statuses) with nothing else: no gateway hop, no disk, no validation
 * beyond the value limit. Impulse's throughput over this one is the share of an HTTP server on
 * this machine that Impulse keeps.
 */
export function createMapServer(): Server {
  const values = new Map<string, Buffer>();
  return createServer((request, response) => {
    const url = request.url ?? '/';
    if (url === '/readyz' || url === '/healthz') return answer(response, 200);
    if (!url.startsWith('/kv/')) return answer(response, 404);
    let key: string;
    try {
      key = decodeURIComponent(url.slice('/kv/'.length));
    } catch {
      return answer(response, 400);
    }
    switch (request.method) {
      case 'GET': {
        const value = values.get(key);
        if (value === undefined) return answer(response, 404);
        response.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': value.length,
        });
        response.end(value);
        return;
      }
      case 'PUT':
        readBody(request, (body) => {
          if (body === undefined) return answer(response, 413);
          values.set(key, body);
          answer(response, 204);
        });
        return;
      case 'DELETE':
        values.delete(key);
        return answer(response, 204);
      default:
        return answer(response, 405);
    }
  });
}

function readBody(request: IncomingMessage, then: (body: Buffer | undefined) => void): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  request.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes <= valueBytesMax) chunks.push(chunk);
  });
  request.on('end', () => then(bytes > valueBytesMax ? undefined : Buffer.concat(chunks, bytes)));
}

function answer(response: ServerResponse, status: number): void {
  response.writeHead(status, { 'content-length': 0 });
  response.end();
}

export async function listen(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}
