import { Pool } from 'undici';
import type { HttpAnswer, HttpClient, HttpClientOptions } from './http-client.js';

/** undici's Pool: keep-alive connections without pipelining (HTTP/1.1 pipelining hides stalls). */
export class UndiciClient implements HttpClient {
  private readonly pool: Pool;

  constructor(options: HttpClientOptions) {
    this.pool = new Pool(options.origin, {
      connections: options.connectionsMax,
      pipelining: 1,
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      keepAliveTimeout: 60_000,
    });
  }

  async request(method: string, path: string, body?: Uint8Array, contentType?: string): Promise<HttpAnswer> {
    const headers: Record<string, string> = {};
    if (contentType !== undefined) headers['content-type'] = contentType;
    const answer = await this.pool.request({
      method: method as 'GET',
      path,
      headers,
      ...(body === undefined ? {} : { body }),
    });
    const bytes = Buffer.from(await answer.body.arrayBuffer());
    return { status: answer.statusCode, body: bytes };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
