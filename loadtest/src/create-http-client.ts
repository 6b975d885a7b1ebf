import type { HttpClient, HttpClientName, HttpClientOptions } from './http-client.js';
import { NodeHttpClient } from './node-http-client.js';
import { UndiciClient } from './undici-client.js';

export function createHttpClient(name: HttpClientName, options: HttpClientOptions): HttpClient {
  return name === 'undici' ? new UndiciClient(options) : new NodeHttpClient(options);
}
