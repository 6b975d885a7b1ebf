import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkHistory } from '@impulse/common';
import { afterEach, describe, expect, it } from 'vitest';
import { RegisterWorkload } from '../src/chaos/register-workload.js';
import { SeededRandom } from '../src/random.js';

type Fault = 'none' | 'stale reads' | 'lost writes' | 'hung writes';

/**
 * A key-value server with the gateway's routes and statuses and one deliberate fault, to show that
 * the workload and the checker together catch what they claim to catch.
 */
function faultyServer(fault: Fault): Server {
  const values = new Map<string, string>();
  // 'stale reads': reads come from a copy refreshed every 100 ms, like a follower lagging behind.
  let copy = new Map<string, string>();
  const refresh = setInterval(() => (copy = new Map(values)), 100);
  let freshWrites = 0;
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const key = decodeURIComponent((request.url ?? '').slice('/kv/'.length));
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method === 'GET') {
        const value = (fault === 'stale reads' ? copy : values).get(key);
        if (value === undefined) {
          response.writeHead(404, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no such key' } }));
        } else {
          response.writeHead(200).end(value);
        }
        return;
      }
      if (fault === 'hung writes' && key.endsWith('-r1')) return; // never answered, never applied
      if (request.method === 'PUT') {
        // 'lost writes': every third write of a fresh key is acknowledged and forgotten.
        const isFresh = /-u\d+-\d+$/.test(key);
        if (!(fault === 'lost writes' && isFresh && ++freshWrites % 3 === 0)) {
          values.set(key, Buffer.concat(chunks).toString('utf8'));
        }
      } else {
        values.delete(key);
      }
      response.writeHead(204).end();
    });
  });
  server.on('close', () => clearInterval(refresh));
  return server;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function runAgainst(fault: Fault) {
  const server = faultyServer(fault);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const random = new SeededRandom(7);
  const workload = new RegisterWorkload({
    gatewayUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    clients: 8,
    keysActive: 3,
    operationsPerKeyMax: 60,
    requestTimeoutMs: 300,
    uniqueWriteFraction: 0.2,
    backoffMs: 20,
    keyPrefix: 'test',
    randomOf: () => () => random.nextDouble(),
  });
  workload.start();
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  await workload.stop();
  const lost = await workload.finalReads();
  workload.close();
  const outcome = workload.outcome();
  return { outcome, lost, check: checkHistory(outcome.events) };
}

describe('the chaos register workload', () => {
  it('records a linearizable history and loses nothing against a correct store', async () => {
    const { outcome, lost, check } = await runAgainst('none');
    expect(outcome.counts.ok).toBeGreaterThan(200);
    expect(outcome.registerKeys.length).toBeGreaterThan(3); // keys rotated
    expect(outcome.acknowledgedUniqueWrites.size).toBeGreaterThan(20);
    expect(check.result).toBe('linearizable');
    expect(lost).toEqual([]);
    // Every second that saw operations has them counted, with latencies of the acknowledged ones.
    const total = outcome.seconds.reduce((sum, second) => sum + second.ok + second.fail + second.info, 0);
    expect(total).toBe(outcome.counts.ok + outcome.counts.fail + outcome.counts.info);
  });

  it('catches stale reads', async () => {
    const { check } = await runAgainst('stale reads');
    expect(check.result).toBe('not-linearizable');
    expect(check.counterexample?.operations.some((operation) => operation.f === 'get')).toBe(true);
  });

  it('catches acknowledged writes that were lost', async () => {
    const { lost } = await runAgainst('lost writes');
    expect(lost.length).toBeGreaterThan(0);
    expect(lost[0]).toMatch(/-u\d+-\d+ \(404\)$/);
  });

  it('records writes that time out as indeterminate, and the history stays checkable', async () => {
    const { outcome, check } = await runAgainst('hung writes');
    const infos = outcome.events.filter((event) => event.type === 'info');
    expect(infos.length).toBeGreaterThan(0);
    expect(infos.every((event) => event.f !== 'get' && event.key.endsWith('-r1'))).toBe(true);
    expect(check.result).toBe('linearizable');
  });
});
