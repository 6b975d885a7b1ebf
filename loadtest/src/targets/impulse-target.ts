import type { HttpClient } from '../http-client.js';
import { TargetError, type KvTarget } from './kv-target.js';

const snippetBytesMax = 200;

/**
 * Impulse's HTTP API (`/kv/{key}`), through the gateway. The bare Map server speaks the same API,
 * so it is measured through this target too.
 */
export class ImpulseTarget implements KvTarget {
  constructor(
    readonly name: string,
    private readonly client: HttpClient,
  ) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    const answer = await this.client.request(
      'PUT',
      `/kv/${encodeURIComponent(key)}`,
      value,
      'application/octet-stream',
    );
    if (answer.status !== 204) throw failure('PUT', key, answer.status, answer.body);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const answer = await this.client.request('GET', `/kv/${encodeURIComponent(key)}`);
    if (answer.status === 200) return answer.body;
    if (answer.status === 404) return undefined;
    throw failure('GET', key, answer.status, answer.body);
  }

  async delete(key: string): Promise<void> {
    const answer = await this.client.request('DELETE', `/kv/${encodeURIComponent(key)}`);
    if (answer.status !== 204) throw failure('DELETE', key, answer.status, answer.body);
  }

  async scan(startKey: string, limit: number): Promise<number> {
    const answer = await this.client.request(
      'GET',
      `/kv?start=${encodeURIComponent(startKey)}&limit=${limit}`,
    );
    if (answer.status !== 200) throw failure('GET', `?start=${startKey}`, answer.status, answer.body);
    const parsed = JSON.parse(answer.body.toString('utf8')) as { items?: unknown[]; records?: unknown[] };
    return (parsed.items ?? parsed.records ?? []).length;
  }

  async supportsScan(): Promise<boolean> {
    const answer = await this.client.request('GET', '/kv?start=&limit=1');
    return answer.status === 200;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

function failure(method: string, key: string, status: number, body: Buffer): TargetError {
  const snippet = body.subarray(0, snippetBytesMax).toString('utf8');
  return new TargetError(`${method} /kv/${key} answered ${status}: ${snippet}`, status);
}
