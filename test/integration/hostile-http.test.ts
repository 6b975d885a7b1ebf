import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotTable, pathForKey } from '@impulse/common';
import { LocalCluster } from '@impulse/local-cluster';
import { rawRequest } from '../support/http.js';
import { httpRequest, rawExchange, type RawAnswer } from '../support/raw-socket.js';
import { temporaryDirectory } from '../support/temporary-directory.js';

const groupIds = ['g1', 'g2', 'g3'];

/**
 * A hostile or careless HTTP client against a real cluster: a gateway in front of 3 shard groups of
 * 3 replicas (LevelDB), spoken to over raw sockets. Request smuggling (CL.TE, TE.CL, obfuscated
 * Transfer-Encoding, duplicate Content-Length, a body on GET and DELETE), pipelining from two
 * clients, request targets that libraries rewrite, oversized headers, and slow clients. At the end,
 * every key written through the gateway is read back from the group that owns its slot, byte for
 * byte, and from no other group.
 */
describe('hostile HTTP clients against a gateway and 3 groups of 3 replicas', () => {
  let cluster: LocalCluster;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  let gateway: string;
  const table = SlotTable.fromGroups(groupIds, 1);
  /** Every write the cluster acknowledged: key → value. */
  const written = new Map<string, Buffer>();
  /** Keys no request may have written (what smuggled requests tried to write). */
  const neverWritten = new Set<string>();

  beforeAll(async () => {
    directory = await temporaryDirectory('hostile-http');
    const limits = ['--header-timeout=1s', '--request-timeout=2s'];
    cluster = await LocalCluster.start({
      groups: groupIds.length,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      logLevel: 'warn',
      gatewayArguments: limits,
      shardNodeArguments: limits,
    });
    gateway = cluster.gatewayUrl;
    for (const groupId of groupIds) await cluster.leaderOf(groupId, 20_000);
  });

  afterAll(async () => {
    await cluster?.stop();
    await directory?.remove();
  });

  async function put(target: string, value: string | Buffer): Promise<RawAnswer> {
    const { answers } = await rawExchange(gateway, httpRequest('PUT', target, { body: value }), {
      answers: 1,
    });
    return answers[0] as RawAnswer;
  }

  async function get(target: string): Promise<RawAnswer> {
    const { answers } = await rawExchange(gateway, httpRequest('GET', target), { answers: 1 });
    return answers[0] as RawAnswer;
  }

  /** A plain GET of a known key from another client, answered right: the gateway still serves. */
  async function expectOthersServed(): Promise<void> {
    const answer = await get(pathForKey('witness'));
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe('witness value');
  }

  it('stores a witness key', async () => {
    expect((await put(pathForKey('witness'), 'witness value')).status).toBe(204);
    written.set('witness', Buffer.from('witness value'));
  });

  it('refuses a body on GET and DELETE, runs no request smuggled in it, and breaks no other client', async () => {
    const smuggled = httpRequest('PUT', pathForKey('smuggled-by-get'), { body: 'yes' });
    neverWritten.add('smuggled-by-get');
    // Many times, so that the gateway's keep-alive connections to the replicas are reused.
    for (let round = 0; round < 20; round++) {
      for (const method of ['GET', 'DELETE']) {
        const { answers } = await rawExchange(
          gateway,
          httpRequest(method, pathForKey('witness'), { body: smuggled }),
          {
            answers: 1,
          },
        );
        expect(answers[0]?.status, method).toBe(400);
        expect(answers[0]?.code, method).toBe('BODY_NOT_ALLOWED');
        expect(answers[0]?.headers['connection'], method).toBe('close');
      }
      await expectOthersServed();
    }
    // A chunked body on a GET is refused the same way.
    const chunked = await rawExchange(
      gateway,
      `GET ${pathForKey('witness')} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      { answers: 1 },
    );
    expect(chunked.answers[0]?.code).toBe('BODY_NOT_ALLOWED');
    expect((await get(pathForKey('smuggled-by-get'))).status).toBe(404);
  });

  it('stores a PUT body that holds a whole HTTP request as a value, and runs nothing in it', async () => {
    const inner = httpRequest('PUT', pathForKey('smuggled-by-put'), { body: 'yes' });
    neverWritten.add('smuggled-by-put');
    expect((await put(pathForKey('carrier'), inner)).status).toBe(204);
    written.set('carrier', inner);
    const answer = await get(pathForKey('carrier'));
    expect(answer.body.equals(inner)).toBe(true);
    expect((await get(pathForKey('smuggled-by-put'))).status).toBe(404);
    await expectOthersServed();
  });

  it('refuses conflicting framing (CL.TE, TE.CL, obfuscated TE, duplicate CL) and runs nothing smuggled', async () => {
    const inner = `PUT ${pathForKey('smuggled-by-framing')} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nyes`;
    neverWritten.add('smuggled-by-framing');
    const target = pathForKey('framing');
    const cases: Record<string, string> = {
      'CL.TE': `PUT ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${inner}`,
      'TE.CL': `PUT ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n${inner}\r\n0\r\n\r\n`,
      'TE: xchunked': `PUT ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${inner}`,
      'TE with a space before the colon': `PUT ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${inner}`,
      'TE: chunked, identity': `PUT ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${inner}`,
      'TE twice': `PUT ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${inner}`,
      'two Content-Lengths': `PUT ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 80\r\n\r\nabc${inner}`,
      'a Content-Length with a sign': `PUT ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc${inner}`,
    };
    for (const [name, request] of Object.entries(cases)) {
      const exchange = await rawExchange(gateway, request, { timeoutMs: 3000 });
      expect(
        exchange.answers.map((answer) => answer.status),
        name,
      ).toEqual([400]);
      expect(exchange.answers[0]?.code, name).toBe('MALFORMED_REQUEST');
      expect(exchange.closed, name).toBe(true);
      await expectOthersServed();
    }
    // The same attacks straight at a replica's client port.
    const replica = cluster.replicas[0];
    for (const [name, request] of Object.entries(cases)) {
      const exchange = await rawExchange(replica?.url ?? '', request, { timeoutMs: 3000 });
      expect(exchange.answers[0]?.code, `${name} at a replica`).toBe('MALFORMED_REQUEST');
    }
    for (const key of ['framing', 'smuggled-by-framing'])
      expect((await get(pathForKey(key))).status).toBe(404);
  });

  it('answers pipelined requests from two clients in order, each its own', async () => {
    const pipeline = (client: string): Buffer[] => [
      httpRequest('PUT', pathForKey(`pipelined/${client}/1`), { body: `${client} one` }),
      httpRequest('GET', pathForKey(`pipelined/${client}/1`)),
      httpRequest('PUT', pathForKey(`pipelined/${client}/2`), { body: `${client} two` }),
      httpRequest('GET', pathForKey('witness')),
      httpRequest('GET', pathForKey(`pipelined/${client}/2`)),
      httpRequest('DELETE', pathForKey(`pipelined/${client}/1`)),
      httpRequest('GET', pathForKey(`pipelined/${client}/1`)),
    ];
    for (let round = 0; round < 5; round++) {
      const [first, second] = await Promise.all(
        ['a', 'b'].map((client) => rawExchange(gateway, Buffer.concat(pipeline(client)), { answers: 7 })),
      );
      for (const [client, exchange] of [
        ['a', first],
        ['b', second],
      ] as const) {
        const answers = exchange?.answers ?? [];
        expect(
          answers.map((answer) => answer.status),
          client,
        ).toEqual([204, 200, 204, 200, 200, 204, 404]);
        expect(answers[1]?.body.toString()).toBe(`${client} one`);
        expect(answers[3]?.body.toString()).toBe('witness value');
        expect(answers[4]?.body.toString()).toBe(`${client} two`);
      }
    }
    for (const client of ['a', 'b']) written.set(`pipelined/${client}/2`, Buffer.from(`${client} two`));
  });

  it('round-trips every key a client can name, each under the key its target names', async () => {
    /** A request target as sent, and the key it names. */
    const targets: [string, string][] = [
      ['/kv/K//x', 'K//x'],
      ['/kv//K', '/K'],
      ['/kv///', '//'],
      ['/kv/K%23frag', 'K#frag'],
      ['/kv/K%5Cx', 'K\\x'],
      ['/kv/K-http:/x', 'K-http:/x'],
      ['/kv/K-http://x', 'K-http://x'],
      ['/kv/https:/x', 'https:/x'],
      ['/kv/a/../b', 'a/../b'],
      ['/kv/..', '..'],
      ['/kv/.', '.'],
      ['/kv/./a', './a'],
      ['/kv/%2E%2E', '..'],
      ['/kv/nul%00byte', 'nul\u0000byte'],
      ['/kv/q%3Fx=1&y', 'q?x=1&y'],
      ['/kv/caf%C3%A9-%E2%82%AC-%F0%9F%98%80', 'café-€-😀'],
      ['/kv/a"b<c>{d}|^`', 'a"b<c>{d}|^`'],
      ["/kv/!$&'()*+,;=:@~", "!$&'()*+,;=:@~"],
      ['/kv/a+b%20c', 'a+b c'],
      ['/kv/%25', '%'],
      [`/kv/${'k'.repeat(1024)}`, 'k'.repeat(1024)],
      [`/kv/${'%C3%A9'.repeat(512)}`, 'é'.repeat(512)],
    ];
    for (const [target, key] of targets) {
      const value = Buffer.from(`value of ${JSON.stringify(key)}`);
      const answer = await put(target, value);
      expect(answer.status, target).toBe(204);
      const read = await get(target);
      expect(read.status, target).toBe(200);
      expect(read.body.equals(value), target).toBe(true);
      // The same key, named the canonical way, is the same key.
      expect((await get(pathForKey(key))).body.equals(value), target).toBe(true);
      written.set(key, value);
    }
  });

  it('refuses targets that cannot name a key unambiguously, and writes nothing', async () => {
    const refused: [string, string][] = [
      ['/kv/K#frag', 'INVALID_TARGET'],
      ['/kv/K\\x', 'INVALID_TARGET'],
      ['http://impulse.test/kv/K', 'INVALID_TARGET'],
      ['*', 'INVALID_TARGET'],
      ['/kv/K?consistncy=stale', 'INVALID_REQUEST'],
      ['/kv/%ZZ', 'INVALID_ENCODING'],
      ['/kv/%C3', 'INVALID_ENCODING'],
      [`/kv/${'k'.repeat(1025)}`, 'INVALID_KEY'],
    ];
    for (const [target, code] of refused) {
      const { answers } = await rawExchange(gateway, httpRequest('PUT', target, { body: 'nope' }), {
        answers: 1,
      });
      expect(answers[0]?.status, target).toBe(400);
      expect(answers[0]?.code, target).toBe(code);
    }
    // Raw bytes that are not ASCII are not a valid request target at all.
    const raw = await rawExchange(
      gateway,
      Buffer.concat([
        Buffer.from('PUT /kv/'),
        Buffer.from('café'),
        Buffer.from(' HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx'),
      ]),
      { answers: 1 },
    );
    expect(raw.answers[0]?.code).toBe('MALFORMED_REQUEST');
    for (const key of ['K', 'K/x', 'Kx']) expect((await get(pathForKey(key))).status, key).toBe(404);
  });

  it('refuses oversized headers and request lines with 431, at the gateway and at a replica', async () => {
    for (const url of [gateway, cluster.replicas[0]?.url ?? '']) {
      const header = await rawExchange(
        url,
        httpRequest('GET', '/healthz', { headers: [`X-Big: ${'a'.repeat(20_000)}`] }),
        {
          answers: 1,
        },
      );
      expect(header.answers[0]?.status, url).toBe(431);
      expect(header.answers[0]?.code, url).toBe('HEADERS_TOO_LARGE');
      const line = await rawExchange(url, httpRequest('GET', `/kv/${'k'.repeat(20_000)}`), { answers: 1 });
      expect(line.answers[0]?.code, url).toBe('HEADERS_TOO_LARGE');
    }
    await expectOthersServed();
  });

  it('cuts slow clients off at the header and request timeouts, at the gateway and at a replica', async () => {
    for (const url of [gateway, cluster.replicas[1]?.url ?? '']) {
      const startedAt = Date.now();
      const [slowHeaders, slowBody, silent] = await Promise.all([
        rawExchange(url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', { timeoutMs: 10_000 }),
        rawExchange(
          url,
          `PUT ${pathForKey('slow-body')} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc`,
          {
            timeoutMs: 10_000,
          },
        ),
        rawExchange(url, Buffer.alloc(0), { timeoutMs: 10_000 }),
      ]);
      for (const [name, exchange] of [
        ['slow headers', slowHeaders],
        ['slow body', slowBody],
        ['silent', silent],
      ] as const) {
        expect(exchange?.answers[0]?.status, `${name} at ${url}`).toBe(408);
        expect(exchange?.answers[0]?.code, `${name} at ${url}`).toBe('REQUEST_TIMEOUT');
        expect(exchange?.closed, `${name} at ${url}`).toBe(true);
      }
      // Cut off within the timeouts (1 s and 2 s) and the checking interval, not Node's 60-300 s.
      expect(Date.now() - startedAt, url).toBeLessThan(5000);
    }
    expect((await get(pathForKey('slow-body'))).status).toBe(404);
    const metrics = (await rawRequest(gateway, '/metrics')).body.toString();
    expect(metrics).toMatch(/impulse_http_refusals_total\{reason="request_timeout"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/impulse_http_refusals_total\{reason="header_timeout"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/impulse_http_refusals_total\{reason="malformed"[^}]*\} [1-9]/);
  });

  it('holds every acknowledged key on the leader of the group its slot maps to, byte for byte, and nowhere else', async () => {
    expect(written.size).toBeGreaterThan(20);
    const leaders = new Map<string, string>();
    for (const groupId of groupIds) leaders.set(groupId, (await cluster.leaderOf(groupId, 20_000)).url);
    for (const [key, value] of written) {
      const owner = table.groupForKey(key);
      const direct = await rawRequest(leaders.get(owner) ?? '', pathForKey(key));
      expect(direct.status, `${JSON.stringify(key)} on ${owner}`).toBe(200);
      expect(direct.body.equals(value), `${JSON.stringify(key)} on ${owner}`).toBe(true);
      for (const other of groupIds.filter((groupId) => groupId !== owner)) {
        const elsewhere = await rawRequest(leaders.get(other) ?? '', `${pathForKey(key)}?consistency=stale`);
        expect(elsewhere.status, `${JSON.stringify(key)} must not be on ${other}`).toBe(404);
      }
    }
    for (const key of neverWritten) {
      for (const groupId of groupIds) {
        const response = await rawRequest(leaders.get(groupId) ?? '', `${pathForKey(key)}?consistency=stale`);
        expect(response.status, `${key} on ${groupId}`).toBe(404);
      }
    }
    // The replicas never saw a key that differs from the one the gateway routed.
    for (const replica of cluster.replicas) {
      const metrics = (await rawRequest(replica.url, '/metrics')).body.toString();
      expect(metrics, replica.replicaId).toMatch(/impulse_kv_slot_mismatches_total\{[^}]*\} 0\n/);
    }
    // A scan over everything answers, with every key once: no copy under another key, anywhere.
    const keys: string[] = [];
    let token: string | null = null;
    do {
      const page = await rawRequest(gateway, `/kv?limit=1000${token === null ? '' : `&continue=${token}`}`);
      expect(page.status, page.body.toString()).toBe(200);
      const body = page.json() as { items: { key: string }[]; next: string | null };
      keys.push(...body.items.map((item) => item.key));
      token = body.next;
    } while (token !== null);
    expect(new Set(keys)).toEqual(new Set(written.keys()));
  });
});
