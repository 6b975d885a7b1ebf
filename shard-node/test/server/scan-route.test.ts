import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareKeys,
  createLogger,
  encodeContinuation,
  scanItemValue,
  scanPageBytesMax,
  type ScanPageBody,
} from '@impulse/common';
import { ShardNode, parseShardNodeConfig } from '../../src/index.js';
import { renderScanPage } from '../../src/server/scan.js';
import type { Entry } from '../../src/storage/index.js';

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/**
 * The scan route of a real replica (a group of one, memory engine): `GET /kv?...` over the keys
 * written through `/kv/{key}`, checked from outside.
 */
describe('shard-node scan route', () => {
  let directory: string;
  let node: ShardNode;
  let base: string;

  async function call(path: string, init: RequestInit = {}): Promise<Answer> {
    const response = await fetch(`${base}${path}`, init);
    return { status: response.status, headers: response.headers, text: await response.text() };
  }

  async function scan(query: string): Promise<ScanPageBody> {
    const answer = await call(`/kv?${query}`);
    expect(answer.status, `${query}: ${answer.text}`).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/json; charset=utf-8');
    return JSON.parse(answer.text) as ScanPageBody;
  }

  /** Every key of the range, following `next` page by page. */
  async function scanAll(query: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const page: ScanPageBody = await scan(token === null ? query : `${query}&continue=${token}`);
      keys.push(...page.items.map((item) => item.key));
      token = page.next;
      if (token === null) return keys;
    }
    throw new Error('too many pages');
  }

  function errorOf(answer: Answer): { code: string } & Record<string, unknown> {
    return (JSON.parse(answer.text) as { error: { code: string } }).error;
  }

  async function put(key: string, value: string | Buffer): Promise<void> {
    const answer = await call(`/kv/${encodeURIComponent(key)}`, { method: 'PUT', body: value });
    expect(answer.status, key).toBe(204);
  }

  // Keys whose byte order differs from JavaScript's string order: U+FFFD sorts below U+1F600.
  const keys = [
    ...Array.from({ length: 25 }, (_, index) => `k${String(index).padStart(2, '0')}`),
    'user:1',
    'user:2',
    'user:3',
    'users',
    'a b',
    '\uFFFD',
    '😀',
  ];
  const sortedKeys = [...keys].sort(compareKeys);

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-scan-route-'));
    const config = parseShardNodeConfig({
      argv: [
        '--port=0',
        '--engine=memory',
        `--data-dir=${directory}`,
        '--bootstrap',
        '--raft-log-sync=false',
        '--value-bytes-max=512KiB',
        '--key-bytes-max=16B',
        '--log-level=silent',
      ],
      env: {},
    });
    node = await ShardNode.start(config, createLogger({ service: 'shard-node', level: 'silent' }));
    base = `http://127.0.0.1:${node.port}`;
    for (let attempt = 0; attempt < 100; attempt++) {
      if (node.replica.status().role === 'leader') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const key of keys) await put(key, `value of ${key}`);
  });

  afterAll(async () => {
    await node.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('answers every key in byte order with its value, in one page when it fits', async () => {
    const page = await scan('limit=1000');
    expect(page.items.map((item) => item.key)).toEqual(sortedKeys);
    expect(page.items.at(-2)?.key).toBe('\uFFFD');
    expect(page.items.every((item) => item.value === `value of ${item.key}`)).toBe(true);
    expect(page.next).toBeNull();
    // The default limit is 100, and an empty start is no bound.
    expect((await scan('start=')).items).toHaveLength(keys.length);
  });

  it('pages with continue, from right after the last key, and ends with next null', async () => {
    const first = await scan('limit=3');
    expect(first.items.map((item) => item.key)).toEqual(sortedKeys.slice(0, 3));
    expect(first.next).toBe(encodeContinuation(sortedKeys[2] ?? ''));
    const second = await scan(`limit=3&continue=${first.next ?? ''}`);
    expect(second.items.map((item) => item.key)).toEqual(sortedKeys.slice(3, 6));
    expect(await scanAll('limit=4')).toEqual(sortedKeys);
    // A page that ends exactly at the last key says so: no empty page after it.
    const last = await scan(`limit=2&continue=${encodeContinuation(sortedKeys.at(-3) ?? '')}`);
    expect(last.items.map((item) => item.key)).toEqual(sortedKeys.slice(-2));
    expect(last.next).toBeNull();
  });

  it('filters by prefix, start and end, and their intersection', async () => {
    expect(await scanAll('prefix=user%3A&limit=2')).toEqual(['user:1', 'user:2', 'user:3']);
    expect(await scanAll('start=k20&end=k23')).toEqual(['k20', 'k21', 'k22']);
    expect(await scanAll('prefix=user&start=user%3A2')).toEqual(['user:2', 'user:3', 'users']);
    expect(await scanAll('prefix=k1&end=k13')).toEqual(['k10', 'k11', 'k12']);
    expect(await scanAll('start=a+b&end=k01')).toEqual(['a b', 'k00']);
    expect(await scan('prefix=user%3A&start=v')).toEqual({ items: [], next: null });
    expect(await scan('prefix=nothing')).toEqual({ items: [], next: null });
    expect(await scanAll('consistency=stale&prefix=k2')).toEqual(['k20', 'k21', 'k22', 'k23', 'k24']);
  });

  it('no longer answers a deleted key, and answers a new value', async () => {
    await put('k05', 'changed');
    expect((await call('/kv/k06', { method: 'DELETE' })).status).toBe(204);
    const page = await scan('prefix=k0');
    expect(page.items.map((item) => item.key)).toEqual(
      sortedKeys.filter((key) => key.startsWith('k0') && key !== 'k06'),
    );
    expect(page.items.find((item) => item.key === 'k05')?.value).toBe('changed');
    await put('k06', 'value of k06');
    await put('k05', 'value of k05');
  });

  it('answers values that are not UTF-8 as base64, byte for byte', async () => {
    const binary = Buffer.from([0, 1, 0xfe, 0xff, 0x80]);
    await put('zbinary', binary);
    await put('zempty', '');
    const page = await scan('prefix=z');
    expect(page.items).toEqual([
      { key: 'zbinary', value: binary.toString('base64'), encoding: 'base64' },
      { key: 'zempty', value: '' },
    ]);
    expect(scanItemValue(page.items[0] ?? { key: '', value: '' }).equals(binary)).toBe(true);
  });

  it('stops a page before it passes the byte bound, and continues after it', async () => {
    const valueBytes = 300 * 1024;
    const large = ['big1', 'big2', 'big3', 'big4', 'big5'];
    for (const [index, key] of large.entries()) await put(key, 'x'.repeat(valueBytes - index));
    const first = await call('/kv?prefix=big&limit=10');
    const page = JSON.parse(first.text) as ScanPageBody;
    // Three values fit in 1 MiB, a fourth would not.
    expect(page.items.map((item) => item.key)).toEqual(['big1', 'big2', 'big3']);
    expect(page.next).toBe(encodeContinuation('big3'));
    expect(Buffer.byteLength(first.text)).toBeLessThan(scanPageBytesMax + 100);
    const rest = await scan(`prefix=big&limit=10&continue=${page.next ?? ''}`);
    expect(rest.items.map((item) => [item.key, item.value.length])).toEqual([
      ['big4', valueBytes - 3],
      ['big5', valueBytes - 4],
    ]);
    expect(rest.next).toBeNull();
    for (const key of large) await call(`/kv/${key}`, { method: 'DELETE' });
  });

  it('answers HEAD with the headers only, and other methods with 405', async () => {
    const get = await call('/kv?limit=2');
    const head = await call('/kv?limit=2', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    expect(head.headers.get('content-length')).toBe(get.headers.get('content-length'));
    for (const method of ['PUT', 'POST', 'DELETE']) {
      const answer = await call('/kv?limit=2', { method, body: method === 'DELETE' ? null : 'x' });
      expect(answer.status, method).toBe(405);
      expect(answer.headers.get('allow')).toBe('GET, HEAD');
      expect(errorOf(answer).code).toBe('METHOD_NOT_ALLOWED');
    }
    expect((await scan('limit=1000')).items).toHaveLength(keys.length + 2);
  });

  it('refuses bad parameters with a stable code, and keeps serving', async () => {
    const cases: [string, string][] = [
      ['limit=0', 'INVALID_REQUEST'],
      ['limit=1001', 'INVALID_REQUEST'],
      ['limit=abc', 'INVALID_REQUEST'],
      ['prefx=a', 'INVALID_REQUEST'],
      ['start=a&start=b', 'INVALID_REQUEST'],
      ['start=b&end=a', 'INVALID_REQUEST'],
      ['consistency=bogus', 'INVALID_REQUEST'],
      ['start=%ZZ', 'INVALID_ENCODING'],
      ['prefix=%FF', 'INVALID_ENCODING'],
      [`start=${'k'.repeat(17)}`, 'INVALID_KEY'],
      [`end=${'k'.repeat(17)}`, 'INVALID_KEY'],
      ['continue=bogus!', 'INVALID_CONTINUATION'],
      [`continue=${encodeContinuation('k'.repeat(17))}`, 'INVALID_CONTINUATION'],
    ];
    for (const [query, code] of cases) {
      const answer = await call(`/kv?${query}`);
      expect(answer.status, query).toBe(400);
      expect(errorOf(answer).code, query).toBe(code);
    }
    expect((await call('/healthz')).status).toBe(200);
    expect((await scan('prefix=k0')).items).toHaveLength(10);
  });

  it('counts scans under the /kv route and the scan engine operation', async () => {
    await scan('limit=1');
    await call('/kv?limit=0');
    const text = (await call('/metrics')).text;
    expect(text).toMatch(/impulse_http_requests_total\{route="\/kv",method="GET",status="200",[^}]*\} [1-9]/);
    expect(text).toMatch(/impulse_http_requests_total\{route="\/kv",method="GET",status="400",[^}]*\} [1-9]/);
    expect(text).toMatch(
      /impulse_kv_operations_total\{engine="memory",operation="scan",outcome="ok",[^}]*\} [1-9]/,
    );
    expect(text).not.toMatch(/route="unmatched",method="GET",status="200"/);
  });
});

describe('renderScanPage', () => {
  /** Entries `k0`, `k1`, ... with values of `valueBytes` bytes, counting how many were pulled. */
  function entries(
    count: number,
    valueBytes: number,
  ): { iterable: AsyncIterable<Entry>; pulled: () => number } {
    let pulled = 0;
    async function* generate(): AsyncGenerator<Entry> {
      for (let index = 0; index < count; index++) {
        pulled++;
        yield { key: Buffer.from(`k${index}`), value: Buffer.alloc(valueBytes, 0x61) };
      }
    }
    return { iterable: generate(), pulled: () => pulled };
  }

  const keysOf = (body: string): string[] => (JSON.parse(body) as ScanPageBody).items.map((item) => item.key);

  it('reads one entry past a full page to tell whether keys remain, and no more', async () => {
    const many = entries(10, 1);
    const page = JSON.parse(await renderScanPage(many.iterable, 3, 1024)) as ScanPageBody;
    expect(page.items.map((item) => item.key)).toEqual(['k0', 'k1', 'k2']);
    expect(page.next).toBe(encodeContinuation('k2'));
    expect(many.pulled()).toBe(4);
    const exact = JSON.parse(await renderScanPage(entries(3, 1).iterable, 3, 1024)) as ScanPageBody;
    expect(exact.next).toBeNull();
    expect(JSON.parse(await renderScanPage(entries(0, 1).iterable, 3, 1024))).toEqual({
      items: [],
      next: null,
    });
  });

  it('stops at the byte bound, always taking a first item however large', async () => {
    expect(keysOf(await renderScanPage(entries(10, 100).iterable, 10, 250))).toEqual(['k0', 'k1']);
    const huge = JSON.parse(await renderScanPage(entries(2, 5000).iterable, 10, 100)) as ScanPageBody;
    expect(huge.items.map((item) => item.key)).toEqual(['k0']);
    expect(huge.next).toBe(encodeContinuation('k0'));
  });
});
