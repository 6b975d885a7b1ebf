import { Agent, request } from 'node:http';
import type { HttpAnswer, HttpClient, HttpClientOptions } from './http-client.js';

/** node:http with a keep-alive Agent holding at most `connectionsMax` sockets. */
export class NodeHttpClient implements HttpClient {
  private readonly agent: Agent;
  private readonly url: URL;

  constructor(private readonly options: HttpClientOptions) {
    this.url = new URL(options.origin);
    this.agent = new Agent({ keepAlive: true, maxSockets: options.connectionsMax, scheduling: 'lifo' });
  }

  request(method: string, path: string, body?: Uint8Array, contentType?: string): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { 'content-length': body?.byteLength ?? 0 };
      if (contentType !== undefined) headers['content-type'] = contentType;
      const outgoing = request(
        {
          agent: this.agent,
          host: this.url.hostname,
          port: this.url.port,
          method,
          path,
          headers,
          timeout: this.options.requestTimeoutMs,
        },
        (incoming) => {
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.on('end', () =>
            resolve({ status: incoming.statusCode ?? 0, body: Buffer.concat(chunks) }),
          );
          incoming.on('error', reject);
        },
      );
      outgoing.on('timeout', () =>
        outgoing.destroy(new Error(`no answer within ${this.options.requestTimeoutMs} ms`)),
      );
      outgoing.on('error', reject);
      outgoing.end(
        body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      );
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
