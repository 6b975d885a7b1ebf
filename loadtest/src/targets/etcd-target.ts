import type { HttpClient } from '../http-client.js';
import { TargetError, type KvTarget } from './kv-target.js';

interface RangeAnswer {
  readonly kvs?: ReadonlyArray<{ readonly value?: string }>;
  readonly count?: string;
}

const base64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
/** range_end "\0" means every key from the start key on (etcd's convention). */
const rangeEndAll = Buffer.from([0]).toString('base64');

/**
 * etcd v3 through its JSON gateway (`/v3/kv/put`, `/v3/kv/range`, `/v3/kv/deleterange`), keys
 * and values in base64. Requests go round-robin to every member, as a client library spreading
 * its connections would; a follower forwards writes to the leader. Reads are linearizable (etcd's
 * default), like Impulse's.
 */
export class EtcdTarget implements KvTarget {
  readonly name = 'etcd';
  private nextClient = 0;

  constructor(private readonly clients: readonly HttpClient[]) {
    if (clients.length === 0) throw new Error('etcd target needs at least one member');
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    const valueBase64 = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
    await this.call('/v3/kv/put', { key: base64(key), value: valueBase64 });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const answer = (await this.call('/v3/kv/range', { key: base64(key) })) as RangeAnswer;
    const value = answer.kvs?.[0]?.value;
    if (answer.kvs === undefined || answer.kvs.length === 0) return undefined;
    return Buffer.from(value ?? '', 'base64');
  }

  async delete(key: string): Promise<void> {
    await this.call('/v3/kv/deleterange', { key: base64(key) });
  }

  async scan(startKey: string, limit: number): Promise<number> {
    const answer = (await this.call('/v3/kv/range', {
      key: base64(startKey),
      range_end: rangeEndAll,
      limit,
    })) as RangeAnswer;
    return answer.kvs?.length ?? 0;
  }

  async supportsScan(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.close()));
  }

  private async call(path: string, request: object): Promise<unknown> {
    const client = this.clients[this.nextClient] as HttpClient;
    this.nextClient = (this.nextClient + 1) % this.clients.length;
    const answer = await client.request(
      'POST',
      path,
      Buffer.from(JSON.stringify(request)),
      'application/json',
    );
    if (answer.status !== 200) {
      throw new TargetError(
        `POST ${path} answered ${answer.status}: ${answer.body.toString('utf8', 0, 200)}`,
        answer.status,
      );
    }
    return JSON.parse(answer.body.toString('utf8')) as unknown;
  }
}
