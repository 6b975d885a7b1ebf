import { EventEmitter, once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultNetwork, type FaultNetworkOptions, type LinkFault } from '../src/chaos/fault-network.js';

const host = '127.0.0.1';

// Every socket event, network event and injected call announces itself here, so that a test can
// wait for a condition to become true instead of sleeping for a guessed time. Counters in stats()
// change without an event of their own, so waits also look again every few milliseconds.
const changes = new EventEmitter();
changes.setMaxListeners(0);
const announceChange = (): boolean => changes.emit('change');
const recheckIntervalMs = 5;

function waitUntil(condition: () => boolean, description: string, timeoutMs = 1500): Promise<void> {
  if (condition()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!condition()) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting until ${description}`));
    }, timeoutMs);
    const recheck = setInterval(check, recheckIntervalMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      clearInterval(recheck);
      changes.off('change', check);
    };
    changes.on('change', check);
  });
}

/** Absence cannot be awaited: this is how long a test gives bytes that must not arrive to show up. */
const settleMs = 60;
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, settleMs));

/** One end of a TCP connection in a test, recording everything it receives. */
class Peer {
  text = '';
  ended = false;
  closed = false;
  errorCode: string | undefined;
  readonly arrivalsMs: number[] = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('latin1');
      this.arrivalsMs.push(performance.now());
      announceChange();
    });
    socket.on('end', () => {
      this.ended = true;
      announceChange();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.errorCode = error.code;
      announceChange();
    });
    socket.on('close', () => {
      this.closed = true;
      announceChange();
    });
  }

  write(text: string): void {
    this.socket.write(text);
  }

  until(condition: (peer: Peer) => boolean, description: string): Promise<void> {
    return waitUntil(() => condition(this), description);
  }

  untilText(text: string): Promise<void> {
    return this.until((peer) => peer.text === text, `the peer received ${JSON.stringify(text)}`);
  }

  untilClosed(): Promise<void> {
    return this.until((peer) => peer.closed, 'the peer closed');
  }
}

/** A replica's real peer listener, standing in: it records each connection it accepts. */
interface Upstream {
  readonly port: number;
  readonly server: Server;
  readonly peers: Peer[];
  /** Waits for the `count`-th connection (1-based) and returns it. */
  peer(count: number): Promise<Peer>;
}

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startUpstream(): Promise<Upstream> {
  const peers: Peer[] = [];
  const server = createServer((socket) => {
    peers.push(new Peer(socket));
    announceChange();
  });
  server.listen(0, host);
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const peer of peers) peer.socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    peers,
    peer: async (count) => {
      await waitUntil(() => peers.length >= count, `upstream accepted ${count} connection(s)`);
      const peer = peers[count - 1];
      if (peer === undefined) throw new Error('unreachable: the wait above guarantees the peer');
      return peer;
    },
  };
}

/** The identification the tests use: the dialler's first line is `HELLO <id>`. */
const identifyCalls: Buffer[] = [];
function identifyHello(firstBytes: Buffer): string | null | undefined {
  identifyCalls.push(Buffer.from(firstBytes));
  announceChange();
  const newline = firstBytes.indexOf('\n');
  if (newline < 0) return undefined;
  const match = /^HELLO (\S+)$/.exec(firstBytes.subarray(0, newline).toString('latin1'));
  return match?.[1] ?? null;
}

function createNetwork(options: Partial<FaultNetworkOptions> = {}): FaultNetwork {
  identifyCalls.length = 0;
  const network = FaultNetwork.create({
    host,
    identifyDialler: identifyHello,
    onEvent: announceChange,
    ...options,
  });
  cleanups.push(() => network.close());
  return network;
}

async function dial(port: number, greeting?: string): Promise<Peer> {
  const socket = connect({ host, port });
  const peer = new Peer(socket);
  cleanups.push(() => void socket.destroy());
  await once(socket, 'connect');
  if (greeting !== undefined) peer.write(greeting);
  return peer;
}

/**
 * A connection dialled by `from` through a proxy to `upstream`, past identification: the
 * upstream has received the greeting, so later faults act on an open, identified connection.
 */
async function establish(
  from: string,
  proxyPort: number,
  upstream: Upstream,
): Promise<{ client: Peer; server: Peer }> {
  const client = await dial(proxyPort, `HELLO ${from}\n`);
  const server = await upstream.peer(upstream.peers.length + 1);
  await server.untilText(`HELLO ${from}\n`);
  return { client, server };
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('FaultNetwork', () => {
  it('forwards bytes both ways and passes a half-close on in each direction', async () => {
    const upstream = await startUpstream();
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const { client, server } = await establish('a', proxyPort, upstream);

    client.write('ping');
    await server.untilText('HELLO a\nping');
    server.write('pong');
    await client.untilText('pong');
    expect(network.stats()).toMatchObject({
      connectionsAccepted: 1,
      connectionsOpen: 1,
      bytesForwarded: 'HELLO a\nping'.length + 'pong'.length,
      bytesDiscarded: 0,
    });

    client.socket.end();
    await server.until((peer) => peer.ended, 'the upstream saw the end');
    await Promise.all([client.untilClosed(), server.untilClosed()]);
    await waitUntil(() => network.stats().connectionsOpen === 0, 'the connection is forgotten');
  });

  it('waits for more bytes while the dialler cannot be named yet', async () => {
    const upstream = await startUpstream();
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const client = await dial(proxyPort, 'HEL');
    await waitUntil(() => identifyCalls.length === 1, 'identifyDialler was asked once');
    // No upstream connection may exist before the dialler, and so the link's fault, is known.
    expect(upstream.peers).toHaveLength(0);
    client.write('LO a\nrest');
    const server = await upstream.peer(1);
    await server.untilText('HELLO a\nrest');
  });

  it('blackholes one direction only, and destroys a connection that lost bytes when it clears', async () => {
    const upstreamA = await startUpstream();
    const upstreamB = await startUpstream();
    const network = createNetwork();
    const proxyA = await network.addNode('a', { host, port: upstreamA.port });
    const proxyB = await network.addNode('b', { host, port: upstreamB.port });
    const aToB = await establish('a', proxyB, upstreamB);
    const bToA = await establish('b', proxyA, upstreamA);

    network.setLinkFault('a', 'b', { kind: 'blackhole' });
    // a's bytes to b are lost on the connection a dialled and on the one b dialled.
    aToB.client.write('lost1');
    bToA.server.write('lost2');
    await waitUntil(() => network.stats().bytesDiscarded === 10, 'the proxy discarded both writes');
    // b's bytes to a still flow, both ways round.
    aToB.server.write('reply1');
    bToA.client.write('reply2');
    await aToB.client.untilText('reply1');
    await bToA.server.untilText('HELLO b\nreply2');
    expect(aToB.server.text).toBe('HELLO a\n');
    expect(bToA.client.text).toBe('');
    expect(aToB.client.closed || bToA.client.closed).toBe(false);

    network.setLinkFault('a', 'b', undefined);
    await Promise.all([aToB.client.untilClosed(), aToB.server.untilClosed()]);
    await Promise.all([bToA.client.untilClosed(), bToA.server.untilClosed()]);
    expect(network.stats()).toMatchObject({ connectionsBrokenByBlackhole: 2, connectionsOpen: 0 });
  });

  it('keeps a connection whose blackhole discarded nothing', async () => {
    const upstream = await startUpstream();
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const { client, server } = await establish('a', proxyPort, upstream);

    network.setLinkFault('b', 'a', { kind: 'blackhole' });
    client.write('still');
    await server.untilText('HELLO a\nstill');
    network.setLinkFault('b', 'a', undefined);
    server.write('fine');
    await client.untilText('fine');
    expect(client.closed).toBe(false);
    expect(network.stats().connectionsBrokenByBlackhole).toBe(0);
  });

  it('stalls one direction and delivers the held bytes in order when healed', async () => {
    const upstream = await startUpstream();
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const { client, server } = await establish('a', proxyPort, upstream);

    network.setLinkFault('a', 'b', { kind: 'stall' });
    client.write('one,');
    client.write('two,');
    client.write('three');
    server.write('other way');
    await client.untilText('other way');
    await settle();
    expect(server.text).toBe('HELLO a\n');

    network.heal();
    await server.untilText('HELLO a\none,two,three');
    expect(client.closed).toBe(false);
    expect(network.stats().bytesDiscarded).toBe(0);
  });

  it('stalls by not reading, so backpressure reaches the dialler, and loses nothing', async () => {
    const upstream = await startUpstream();
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const { client, server } = await establish('a', proxyPort, upstream);

    network.setLinkFault('a', 'b', { kind: 'stall' });
    const payload = Buffer.alloc(8 * 1024 * 1024, 'stalled-bytes/');
    client.socket.write(payload);
    await settle();
    // Had the proxy kept reading into memory, the dialler's socket would have drained by now.
    expect(client.socket.writableLength).toBeGreaterThan(0);
    expect(server.text).toBe('HELLO a\n');

    network.heal();
    const expected = `HELLO a\n${payload.toString('latin1')}`;
    await server.until((peer) => peer.text.length >= expected.length, 'the whole payload arrived');
    expect(server.text === expected).toBe(true);
  });

  it('holds even the greeting of a connection opened during a stall', async () => {
    const upstream = await startUpstream();
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    network.setLinkFault('a', 'b', { kind: 'stall' });
    const client = await dial(proxyPort, 'HELLO a\nfirst');
    const server = await upstream.peer(1);
    await settle();
    expect(server.text).toBe('');

    network.setLinkFault('a', 'b', undefined);
    await server.untilText('HELLO a\nfirst');
    client.write(',second');
    await server.untilText('HELLO a\nfirst,second');
  });

  it('delays each chunk by at least delayMs and keeps their order despite jitter', async () => {
    const upstream = await startUpstream();
    // Falling jitter would let later chunks overtake earlier ones if order were not enforced.
    const jitters = [0.99, 0.5, 0.01, 0];
    let randomCalls = 0;
    const random = (): number => {
      const value = jitters[randomCalls % jitters.length] ?? 0;
      randomCalls += 1;
      announceChange();
      return value;
    };
    const network = createNetwork({ random });
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const { client, server } = await establish('a', proxyPort, upstream);
    expect(randomCalls).toBe(0);

    const delayMs = 150;
    network.setLinkFault('a', 'b', { kind: 'delay', delayMs, jitterMs: 60 });
    const writtenAtMs: number[] = [];
    for (const [index, text] of ['A', 'B', 'C', 'D'].entries()) {
      writtenAtMs.push(performance.now());
      client.write(text);
      // Waiting for the proxy to draw jitter for this chunk keeps the chunks from coalescing.
      await waitUntil(() => randomCalls === index + 1, `the proxy read chunk ${text}`);
    }
    await server.untilText('HELLO a\nABCD');
    const firstWrittenAtMs = writtenAtMs[0] ?? 0;
    const firstArrivedAtMs = server.arrivalsMs[1] ?? 0;
    expect(firstArrivedAtMs - firstWrittenAtMs).toBeGreaterThanOrEqual(delayMs);
    const lastWrittenAtMs = writtenAtMs[3] ?? 0;
    const lastArrivedAtMs = server.arrivalsMs.at(-1) ?? 0;
    expect(lastArrivedAtMs - lastWrittenAtMs).toBeGreaterThanOrEqual(delayMs);

    // The other direction has no fault and is not delayed.
    const repliedAtMs = performance.now();
    server.write('quick');
    await client.untilText('quick');
    expect(performance.now() - repliedAtMs).toBeLessThan(delayMs);
  });

  it('pauses the source instead of queueing more than delayQueueBytesMax, losing nothing', async () => {
    const upstream = await startUpstream();
    const network = createNetwork({ delayQueueBytesMax: 4096 });
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const { client, server } = await establish('a', proxyPort, upstream);
    network.setLinkFault('a', 'b', { kind: 'delay', delayMs: 2 });

    const payload = Array.from({ length: 256 * 1024 }, (_, index) => String.fromCharCode(97 + (index % 26)));
    client.write(payload.join(''));
    await server.until((peer) => peer.text.length >= 8 + payload.length, 'the whole payload arrived');
    expect(server.text).toBe(`HELLO a\n${payload.join('')}`);
  });

  it('resets open connections on either direction of the link, and new ones as they are named', async () => {
    const upstream = await startUpstream();
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const { client, server } = await establish('a', proxyPort, upstream);

    network.setLinkFault('b', 'a', { kind: 'reset' });
    await Promise.all([client.untilClosed(), server.untilClosed()]);
    expect(client.errorCode).toBe('ECONNRESET');
    expect(network.stats().connectionsReset).toBe(1);

    const refused = await dial(proxyPort, 'HELLO a\nhello?');
    await refused.untilClosed();
    expect(network.stats().connectionsReset).toBe(2);
    expect(upstream.peers).toHaveLength(1);

    // A connection between other nodes is not on the link.
    const bystander = await establish('c', proxyPort, upstream);
    expect(bystander.client.closed).toBe(false);

    network.setLinkFault('b', 'a', undefined);
    await establish('a', proxyPort, upstream);
    expect(network.stats()).toMatchObject({ connectionsReset: 2, connectionsOpen: 2 });
  });

  it('partitions, isolates and heals by setting link faults both ways', async () => {
    const upstreamB = await startUpstream();
    const upstreamC = await startUpstream();
    const network = createNetwork();
    await network.addNode('a', { host, port: await freePort() });
    const proxyB = await network.addNode('b', { host, port: upstreamB.port });
    const proxyC = await network.addNode('c', { host, port: upstreamC.port });
    const aToB = await establish('a', proxyB, upstreamB);
    const bToC = await establish('b', proxyC, upstreamC);

    network.partition([['a'], ['b', 'c']]);
    const links = (): string[] =>
      network
        .activeFaults()
        .map(({ from, to, fault }) => `${from}->${to}:${fault.kind}`)
        .sort();
    expect(links()).toEqual(['a->b:blackhole', 'a->c:blackhole', 'b->a:blackhole', 'c->a:blackhole']);
    aToB.client.write('cut');
    bToC.client.write('same side');
    await bToC.server.untilText('HELLO b\nsame side');
    await waitUntil(() => network.stats().bytesDiscarded === 3, 'the cut bytes were discarded');

    network.isolate('c', { kind: 'stall' });
    expect(links()).toEqual([
      'a->b:blackhole',
      'a->c:stall',
      'b->a:blackhole',
      'b->c:stall',
      'c->a:stall',
      'c->b:stall',
    ]);
    bToC.client.write(' held');
    await settle();
    expect(bToC.server.text).toBe('HELLO b\nsame side');

    network.heal();
    expect(network.activeFaults()).toEqual([]);
    await bToC.server.untilText('HELLO b\nsame side held');
    await aToB.client.untilClosed();
    expect(() => network.partition([['a', 'b'], ['b']])).toThrow(/more than one side/);
  });

  it('destroys and counts a connection whose dialler cannot be named', async () => {
    const upstream = await startUpstream();
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const client = await dial(proxyPort, 'GARBAGE\n');
    await client.untilClosed();
    expect(network.stats()).toMatchObject({ connectionsUnidentified: 1, connectionsOpen: 0 });
    expect(upstream.peers).toHaveLength(0);
  });

  it('gives up on a dialler not named within identifyBytesMax bytes', async () => {
    const upstream = await startUpstream();
    const network = createNetwork({ identifyBytesMax: 16 });
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const client = await dial(proxyPort, 'HELLO a-very-long-name-without-a-newline');
    await client.untilClosed();
    expect(network.stats().connectionsUnidentified).toBe(1);
    expect(Math.max(...identifyCalls.map((bytes) => bytes.length))).toBe(16);
    expect(upstream.peers).toHaveLength(0);
  });

  it('gives up on a dialler silent for identifyTimeoutMs', async () => {
    const upstream = await startUpstream();
    const network = createNetwork({ identifyTimeoutMs: 50 });
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    const client = await dial(proxyPort);
    await client.untilClosed();
    expect(network.stats().connectionsUnidentified).toBe(1);
  });

  it('survives a refused upstream, destroying the connection and counting the error', async () => {
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: await freePort() });
    const client = await dial(proxyPort, 'HELLO a\n');
    await client.untilClosed();
    expect(network.stats()).toMatchObject({ socketErrors: 1, connectionsOpen: 0 });

    // The proxy keeps serving after the error.
    const again = await dial(proxyPort, 'HELLO a\n');
    await again.untilClosed();
    expect(network.stats().socketErrors).toBe(2);
  });

  it('retargets a node, destroying its connections, and removes a node', async () => {
    const first = await startUpstream();
    const second = await startUpstream();
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: first.port });
    const old = await establish('a', proxyPort, first);

    network.retarget('b', { host, port: second.port });
    await Promise.all([old.client.untilClosed(), old.server.untilClosed()]);
    await establish('a', proxyPort, second);

    await network.removeNode('b');
    await expect(dial(proxyPort, 'HELLO a\n')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(network.stats().connectionsOpen).toBe(0);
    expect(() => network.retarget('b', { host, port: second.port })).toThrow(/unknown node/);
  });

  it('rejects a malformed delay fault', () => {
    const network = createNetwork();
    const fault: LinkFault = { kind: 'delay', delayMs: -1 };
    expect(() => network.setLinkFault('a', 'b', fault)).toThrow(RangeError);
    expect(network.activeFaults()).toEqual([]);
  });

  it('closes idempotently, leaving no listener and no connection behind', async () => {
    const upstream = await startUpstream();
    // Listeners closed by earlier tests leave the resource list one loop turn after their close
    // callback, so the count is taken once they are gone.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const serversBefore = countResources('TCPServerWrap');
    const network = createNetwork();
    const proxyPort = await network.addNode('b', { host, port: upstream.port });
    await network.addNode('c', { host, port: upstream.port });
    expect(countResources('TCPServerWrap')).toBe(serversBefore + 2);
    const open = await establish('a', proxyPort, upstream);
    // Bytes held in a long delay must be dropped, and their timer cleared, by close().
    network.setLinkFault('a', 'b', { kind: 'delay', delayMs: 10_000 });
    open.client.write('never');

    const closing = network.close();
    expect(network.close()).toBe(closing);
    await closing;
    await network.close();
    await Promise.all([open.client.untilClosed(), open.server.untilClosed()]);
    expect(open.server.text).toBe('HELLO a\n');
    expect(network.stats().connectionsOpen).toBe(0);
    await waitUntil(
      () => countResources('TCPServerWrap') === serversBefore,
      'the proxy listeners left the list of active resources',
    );
    await expect(dial(proxyPort, 'HELLO a\n')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(network.addNode('d', { host, port: upstream.port })).rejects.toThrow(/after close/);
  });
});

function countResources(kind: string): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === kind).length;
}
