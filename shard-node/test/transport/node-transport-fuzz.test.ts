/**
 * A live node transport under attack by raw TCP clients, with structured random frames from a
 * seeded generator (a failure names its seed: IMPULSE_NODE_FUZZ_SEED replays it):
 *
 * - an authenticated peer (it holds the cluster secret) that writes `groupMessages` frames: most
 *   well-formed, with runs and coalesced heartbeats for hosted groups, unknown groups and wrong
 *   receivers, and some broken in one place (section kind, group id, run count, a message,
 *   trailing bytes, a second or empty heartbeats section, a heartbeat entry that is not one, frame
 *   kind, checksum, version, length). Every well-formed message is delivered or dropped and
 *   counted; every broken frame closes its connection and is counted;
 * - an unauthenticated peer whose frames are hellos wrong in one field, proofs without the secret,
 *   frames out of place and random bytes. Every connection is refused or dropped, and counted, and
 *   nothing reaches a replica.
 *
 * The node never throws out of a socket callback (vitest would report it), and its real peer keeps
 * exchanging messages with it, in every group, throughout.
 */
import { connect, type Socket } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createSeededRandom, type Message, type MessageType } from '../../src/raft/index.js';
import {
  BufferWriter,
  FrameDecoder,
  beginFrame,
  decodeNodeHello,
  encodeAuthFrame,
  encodeHeartbeatSection,
  encodeHelloFrame,
  encodeMessage,
  encodeNodeHelloFrame,
  finishFrame,
  frameKinds,
  networkMessageTypes,
  nodeProofOf,
  nodeProtocolVersion,
  protocolVersion,
  sectionKinds,
  type FrameKind,
  type NodeHello,
} from '../../src/transport/index.js';
import { makeMessage } from './arbitraries.js';
import { metricSum, waitFor } from './harness.js';
import { clusterId, hostGroups, startNode, stopAll, untilConnected, type TestNode } from './node-harness.js';

const framesPerPeer = 10_000;
const seed = Number(process.env['IMPULSE_NODE_FUZZ_SEED'] ?? 20_260_412);
const secret = Buffer.from('the node fuzz cluster secret, long enough');
/** The address the attacker claims as its own (any well-formed one: the secret is what counts). */
const attackerAddress = '127.0.0.9:7999';
/** Attacks in flight at once: well under the target's `inboundConnectionsMax`. */
const attacksInFlight = 8;

class Random {
  constructor(readonly next: () => number) {}
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  pick<T>(values: readonly T[]): T {
    return values[this.int(values.length)] as T;
  }
  chance(probability: number): boolean {
    return this.next() < probability;
  }
  /** 0 to `max` random bytes. */
  bytes(max: number): Uint8Array {
    return this.exactly(this.int(max + 1));
  }
  exactly(length: number): Uint8Array {
    return Uint8Array.from({ length }, () => this.int(256));
  }
  number(): number {
    return this.pick([0, 1, 2, 3, 127, 128, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER, this.int(1e6)]);
  }
}

let nodes: TestNode[] = [];
let target: TestNode;
let peer: TestNode;
let exchanged = 0;

/** The groups the target hosts (the Raft id of its replica in each), and some it does not. */
const hostedRaftIds = { g1: 1, g2: 4 } as const;
const hostedGroups = Object.keys(hostedRaftIds) as Array<keyof typeof hostedRaftIds>;
const unhostedGroups = ['g3', 'meta', 'group-with.dots_and-dashes'];

beforeAll(async () => {
  nodes = [
    await startNode('target', { secret, limits: { handshakeTimeoutMs: 1000 } }),
    await startNode('peer', { secret }),
  ];
  [target, peer] = nodes as [TestNode, TestNode];
  await hostGroups(nodes, { g1: [1, 2], g2: [4, 5] });
  await untilConnected(nodes);
});

afterAll(async () => {
  await stopAll(nodes);
});

/** The attackers' messages that reached the target's replicas (the real peer's excluded). */
function deliveredToTarget(): number {
  return [...target.endpoints.values()]
    .flatMap((endpoint) => endpoint.received)
    .filter((message) => !isPeerCheck(message)).length;
}

/** The real peer and the target still exchange messages both ways, in every group. */
async function expectPeersStillWork(): Promise<void> {
  exchanged += 1;
  const sequence = exchanged;
  for (const [groupId, targetId, peerId] of [
    ['g1', 1, 2],
    ['g2', 4, 5],
  ] as const) {
    target.endpoints.get(groupId)!.transport.send([heartbeat(targetId, peerId, sequence)]);
    peer.endpoints.get(groupId)!.transport.send([heartbeat(peerId, targetId, sequence)]);
  }
  await waitFor(
    () =>
      [target, peer].every((node) =>
        [...node.endpoints.values()].every((endpoint) =>
          endpoint.received.some((message) => isPeerCheck(message) && message.index === sequence),
        ),
      ),
    5000,
    'the real peers to exchange messages in every group',
  );
  expect(target.transport.connectionStatus(peer.address)?.state).toBe('connected');
  expect(peer.transport.connectionStatus(target.address)?.state).toBe('connected');
}

const peerCheck = Buffer.from('peer-check');

/** The real peers' heartbeats, told apart from the attackers' messages by their context. */
function heartbeat(from: number, to: number, index: number): Message {
  return makeMessage({ type: 'MsgHeartbeat', from, to, term: 7, index, commit: 0, context: peerCheck });
}

function isPeerCheck(message: Message): boolean {
  return Buffer.from(message.context).equals(peerCheck);
}

/** A message with random fields, of a type that crosses the network. */
function randomMessage(random: Random, to: number): Message {
  const type = random.pick(networkMessageTypes) as MessageType;
  return makeMessage({
    type,
    from: random.pick([2, 3, 5, 9, random.int(1e6) + 1]),
    to,
    term: random.number(),
    logTerm: random.number(),
    index: random.number(),
    commit: random.number(),
    reject: random.chance(0.2),
    rejectHint: random.number(),
    context: random.chance(0.3) ? random.bytes(40) : new Uint8Array(0),
    entries: Array.from({ length: random.int(3) }, () => ({
      term: random.number(),
      index: random.number(),
      type: 'normal' as const,
      data: random.bytes(60),
    })),
  });
}

function frameOf(kind: FrameKind, write: (writer: BufferWriter) => void): Buffer {
  const writer = new BufferWriter();
  const start = beginFrame(writer, kind);
  write(writer);
  finishFrame(writer, start);
  return writer.takeBytes();
}

/** What a well-formed frame should do at the target: deliver some messages, drop the others. */
interface WellFormed {
  readonly bytes: Buffer;
  readonly delivered: number;
  readonly dropped: number;
}

/** A heartbeat or response whose every field a coalesced entry carries. */
function randomHeartbeat(random: Random, to: number): Message {
  return makeMessage({
    type: random.pick(['MsgHeartbeat', 'MsgHeartbeatResp'] as const),
    from: random.pick([2, 3, 5, 9]),
    to,
    term: random.number(),
    commit: random.number(),
    index: random.number(),
    context: random.chance(0.3) ? random.bytes(16) : new Uint8Array(0),
  });
}

/**
 * A `groupMessages` frame of 1 to 4 runs, for hosted groups, unknown groups and wrong receivers,
 * and sometimes a section of coalesced heartbeats of such groups too.
 */
function wellFormedFrame(random: Random): WellFormed {
  let delivered = 0;
  let dropped = 0;
  const group = (): string => (random.chance(0.7) ? random.pick(hostedGroups) : random.pick(unhostedGroups));
  /** A receiver in `groupId`: mostly its replica here (delivered), else another id (dropped). */
  const receiverIn = (groupId: string): number => {
    const hostedId = hostedRaftIds[groupId as keyof typeof hostedRaftIds] as number | undefined;
    if (hostedId !== undefined && random.chance(0.85)) {
      delivered += 1;
      return hostedId;
    }
    dropped += 1;
    return random.pick([2, 3, 6, 77]);
  };
  const bytes = frameOf('groupMessages', (writer) => {
    const runs = 1 + random.int(4);
    for (let run = 0; run < runs; run++) {
      const groupId = group();
      const count = 1 + random.int(4);
      writer.writeUint8(sectionKinds.run);
      writer.writeString(groupId);
      writer.writeUint16(count);
      for (let position = 0; position < count; position++) {
        encodeMessage(writer, randomMessage(random, receiverIn(groupId)));
      }
    }
    if (random.chance(0.4)) {
      const entries = Array.from({ length: 1 + random.int(6) }, () => {
        const groupId = group();
        return { groupId, message: randomHeartbeat(random, receiverIn(groupId)) };
      });
      encodeHeartbeatSection(writer, entries);
    }
  });
  return { bytes, delivered, dropped };
}

/** A frame broken in exactly one place: the target must close the connection and count it. */
function brokenFrame(random: Random): Buffer {
  const run = (writer: BufferWriter, groupId: string, count: number, messages: number): void => {
    writer.writeUint8(sectionKinds.run);
    writer.writeString(groupId);
    writer.writeUint16(count);
    for (let position = 0; position < messages; position++) encodeMessage(writer, randomMessage(random, 1));
  };
  const breakage = random.int(14);
  switch (breakage) {
    case 0: // An unknown section kind.
      return frameOf('groupMessages', (writer) => {
        writer.writeUint8(random.pick([0, 2, 3, 255]));
        writer.writeString('g1');
        writer.writeUint16(1);
        encodeMessage(writer, randomMessage(random, 1));
      });
    case 1: // A group id that is empty, too long, or outside the charset.
      return frameOf('groupMessages', (writer) =>
        run(
          writer,
          random.pick(['', 'x'.repeat(65), 'g 1', 'g\n1', 'grüppe', '-leading', '.', 'g1/..']),
          1,
          1,
        ),
      );
    case 2: // An empty run.
      return frameOf('groupMessages', (writer) => run(writer, 'g1', 0, 0));
    case 3: // A run that announces more messages than follow.
      return frameOf('groupMessages', (writer) => run(writer, 'g2', 2 + random.int(60_000), 1));
    case 4: // A message that does not decode (a local type's tag, then junk).
      return frameOf('groupMessages', (writer) => {
        writer.writeUint8(sectionKinds.run);
        writer.writeString('g1');
        writer.writeUint16(1);
        writer.writeUint8(random.pick([0, 1, 10, 11, 12, 19, 99, 255]));
        writer.writeBytes(random.bytes(30));
      });
    case 5: // Trailing bytes after the last run.
      return frameOf('groupMessages', (writer) => {
        run(writer, 'g1', 1, 1);
        writer.writeUint8(sectionKinds.run);
      });
    case 6: // A frame of a kind out of place on a messages connection.
      return frameOf(
        random.pick([
          'hello',
          'nodeHello',
          'messages',
          'snapshotChunk',
          'snapshotAck',
          'auth',
          'snapshotHeader',
        ] as const),
        (writer) => writer.writeBytes(random.bytes(40)),
      );
    case 7: {
      // A flipped bit: the checksum no longer matches.
      const frame = wellFormedFrame(random).bytes;
      const position = 8 + random.int(frame.byteLength - 8);
      frame[position] = frame[position]! ^ (1 << random.int(8));
      return frame;
    }
    case 8: {
      // An unknown frame version or kind nibble (with a matching checksum).
      const writer = new BufferWriter();
      writer.writeUint32(0);
      writer.writeUint32(0);
      writer.writeUint8(
        random.chance(0.5) ? (2 << 4) | frameKinds.groupMessages : (1 << 4) | (9 + random.int(7)),
      );
      writer.writeBytes(random.bytes(20));
      finishFrame(writer, 0);
      return writer.takeBytes();
    }
    case 9: {
      // A length over frameBytesMax (or under a header), then some bytes.
      const header = Buffer.alloc(4 + 64);
      header.writeUInt32BE(random.pick([0, 1, 4, 4 * 1024 * 1024, 2 ** 31, 2 ** 32 - 1]));
      return header;
    }
    case 10: // A good run, then a bad group id: the whole frame is refused, the good run included.
      return frameOf('groupMessages', (writer) => {
        run(writer, 'g1', 1, 1);
        run(writer, random.pick(['', 'g 2', 'x'.repeat(65)]), 1, 1);
      });
    case 11: // Two heartbeats sections in one frame.
      return frameOf('groupMessages', (writer) => {
        const entry = { groupId: 'g1', message: randomHeartbeat(random, 1) };
        encodeHeartbeatSection(writer, [entry]);
        if (random.chance(0.5)) run(writer, 'g2', 1, 1);
        encodeHeartbeatSection(writer, [entry]);
      });
    case 12: // A heartbeats section that is empty, announces more entries than follow, or holds a non-heartbeat.
      return frameOf('groupMessages', (writer) => {
        writer.writeUint8(sectionKinds.heartbeats);
        const shape = random.int(3);
        if (shape === 0) return writer.writeUint16(0);
        writer.writeUint16(shape === 1 ? 2 + random.int(100) : 1);
        writer.writeString('g1');
        writer.writeUint8(shape === 1 ? 8 : random.pick([0, 3, 7, 10, 200]));
        for (let field = 0; field < 5; field++) writer.writeVarint(random.int(100));
        writer.writeLengthPrefixedBytes(new Uint8Array(0));
      });
    default: // A run whose messages end early.
      return frameOf('groupMessages', (writer) => {
        writer.writeUint8(sectionKinds.run);
        writer.writeString('g1');
        writer.writeUint16(1);
        const whole = new BufferWriter();
        encodeMessage(whole, randomMessage(random, 1));
        const bytes = whole.takeBytes();
        writer.writeBytes(bytes.subarray(0, random.int(bytes.byteLength)));
      });
  }
}

/**
 * Opens a connection to the target, runs `script` on it, and resolves once the target closed it
 * (or, for a clean end, once both sides ended). Fails if the target keeps it open too long.
 */
function onConnection(
  script: (socket: Socket, frames: AsyncIterable<Buffer>) => Promise<void>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: target.transport.port });
    const decoder = new FrameDecoder(1024 * 1024);
    const waiting: Array<(frame: Buffer | undefined) => void> = [];
    const frames: Buffer[] = [];
    let closed = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the target kept a connection open'));
    }, 10_000);
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
        const bytes = Buffer.from(frame.payload);
        const waiter = waiting.shift();
        if (waiter === undefined) frames.push(bytes);
        else waiter(bytes);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      clearTimeout(timer);
      for (const waiter of waiting.splice(0)) waiter(undefined);
      resolve();
    });
    const answers: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => ({
        next: () =>
          new Promise((resolveNext) => {
            const queued = frames.shift();
            if (queued !== undefined) return resolveNext({ value: queued, done: false });
            if (closed) return resolveNext({ value: undefined, done: true });
            waiting.push((frame) =>
              resolveNext(
                frame === undefined ? { value: undefined, done: true } : { value: frame, done: false },
              ),
            );
          }),
      }),
    };
    socket.once('connect', () => {
      script(socket, answers).catch((error: unknown) => {
        socket.destroy();
        reject(error instanceof Error ? error : new Error(String(error)));
      });
    });
  });
}

function write(socket: Socket, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => socket.write(bytes, () => resolve()));
}

function nodeHelloFrame(overrides: Partial<NodeHello>, nonce: Uint8Array): Buffer {
  const writer = new BufferWriter();
  encodeNodeHelloFrame(writer, {
    protocolVersion: nodeProtocolVersion,
    purpose: 'messages',
    clusterId,
    senderAddress: attackerAddress,
    receiverAddress: target.transport.address,
    nonce,
    proof: new Uint8Array(0),
    ...overrides,
  });
  return writer.takeBytes();
}

/** Runs `attack` `count` times, `attacksInFlight` at a time. */
async function inParallel(count: number, attack: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: attacksInFlight }, async () => {
      while (next < count) {
        const index = next++;
        await attack(index);
      }
    }),
  );
}

describe('a node transport fed structured random frames', () => {
  it(`survives ${framesPerPeer} frames from an authenticated peer, delivering or counting every message`, async () => {
    const random = new Random(createSeededRandom(seed));
    const malformedBefore = await metricSum(target.registry, 'impulse_transport_frames_malformed_total');
    const droppedBefore = await metricSum(
      target.registry,
      'impulse_transport_inbound_messages_dropped_total',
    );
    const deliveredBefore = deliveredToTarget();
    let framesWritten = 0;
    let broken = 0;
    let delivered = 0;
    let dropped = 0;
    let connections = 0;
    while (framesWritten < framesPerPeer) {
      // One connection: a handshake with the secret, well-formed frames, and perhaps one broken
      // frame last (after it the target closes the connection, so nothing would be read).
      const plan: WellFormed[] = [];
      const length = 1 + random.int(40);
      for (let position = 0; position < length; position++) plan.push(wellFormedFrame(random));
      const breaks = random.chance(0.5);
      const last = breaks ? brokenFrame(random) : undefined;
      framesWritten += plan.length + (breaks ? 1 : 0);
      broken += breaks ? 1 : 0;
      for (const frame of plan) {
        delivered += frame.delivered;
        dropped += frame.dropped;
      }
      connections += 1;
      await onConnection(async (socket, answers) => {
        const nonce = random.exactly(32);
        await write(socket, nodeHelloFrame({}, nonce));
        const iterator = answers[Symbol.asyncIterator]();
        const answer = await iterator.next();
        if (answer.done === true) throw new Error('the target refused an authenticated hello');
        const hello = decodeNodeHello(answer.value);
        const identity = {
          clusterId,
          purpose: 'messages' as const,
          diallerAddress: attackerAddress,
          acceptorAddress: target.transport.address,
        };
        const auth = new BufferWriter();
        encodeAuthFrame(auth, nodeProofOf(secret, 'dialler', identity, nonce, hello.nonce));
        await write(socket, Buffer.concat([auth.takeBytes(), ...plan.map((frame) => frame.bytes)]));
        if (last === undefined) socket.end();
        else await write(socket, last);
      });
      if (connections % 100 === 0) await expectPeersStillWork();
    }
    expect(framesWritten).toBeGreaterThanOrEqual(framesPerPeer);
    await expect
      .poll(() => metricSum(target.registry, 'impulse_transport_frames_malformed_total'), { timeout: 5000 })
      .toBe(malformedBefore + broken);
    await expect
      .poll(() => metricSum(target.registry, 'impulse_transport_inbound_messages_dropped_total'))
      .toBe(droppedBefore + dropped);
    expect(deliveredToTarget() - deliveredBefore).toBe(delivered);
    expect(await metricSum(target.registry, 'impulse_transport_handshakes_refused_total')).toBe(0);
    await expectPeersStillWork();
    console.info(
      `node fuzz (seed ${seed}): authenticated peer: ${framesWritten} frames on ${connections} connections, ${broken} broken, ${delivered} messages delivered, ${dropped} dropped and counted`,
    );
  });

  it(`refuses ${framesPerPeer} frames from an unauthenticated peer, delivering nothing`, async () => {
    const random = new Random(createSeededRandom(seed + 1));
    const counted = async (): Promise<number> =>
      (await metricSum(target.registry, 'impulse_transport_frames_malformed_total')) +
      (await metricSum(target.registry, 'impulse_transport_handshakes_refused_total'));
    const before = await counted();
    const deliveredBefore = deliveredToTarget();
    let framesWritten = 0;
    const attacks: Array<() => Buffer[]> = [
      // A hello wrong in one field (the target refuses it without answering).
      () => [
        nodeHelloFrame(
          random.pick<Partial<NodeHello>>([
            { clusterId: 'another-cluster' },
            { receiverAddress: '127.0.0.1:1' },
            { receiverAddress: `localhost:${target.transport.port}` },
            { protocolVersion: nodeProtocolVersion + 1 + random.int(5) },
          ]),
          random.exactly(32),
        ),
      ],
      // A hello that does not decode: a bad address, nonce or proof length, a bad purpose.
      () => [
        random.pick([
          () =>
            nodeHelloFrame(
              { senderAddress: random.pick(['no-port', 'a b:1', ':', 'x'.repeat(300) + ':1']) },
              new Uint8Array(32),
            ),
          () => nodeHelloFrame({}, new Uint8Array(random.pick([0, 16, 31, 33]))),
          () => nodeHelloFrame({ proof: new Uint8Array(random.pick([1, 31, 64])) }, new Uint8Array(32)),
          () =>
            frameOf('nodeHello', (writer) => {
              writer.writeVarint(nodeProtocolVersion);
              writer.writeUint8(random.pick([0, 3, 255]));
              writer.writeBytes(random.bytes(60));
            }),
        ])(),
      ],
      // A good hello, then a proof made without the secret (or messages instead of a proof).
      () => [
        nodeHelloFrame({}, new Uint8Array(32).fill(7)),
        random.chance(0.7)
          ? (() => {
              const writer = new BufferWriter();
              encodeAuthFrame(writer, random.exactly(32));
              return writer.takeBytes();
            })()
          : wellFormedFrame(random).bytes,
      ],
      // A replica transport's hello, which a node does not speak.
      () => {
        const writer = new BufferWriter();
        encodeHelloFrame(writer, {
          protocolVersion,
          purpose: 'messages',
          clusterId,
          groupId: 'g1',
          senderId: 2,
          receiverId: 1,
          nonce: new Uint8Array(32),
          proof: new Uint8Array(0),
        });
        return [writer.takeBytes()];
      },
      // Messages, chunks or proofs with no hello at all.
      () => [random.chance(0.5) ? wellFormedFrame(random).bytes : brokenFrame(random)],
      // Random bytes (at least one: a connection that says nothing only times out).
      () => [Buffer.from(random.exactly(1 + random.int(2000)))],
    ];
    let connections = 0;
    const planned: Buffer[][] = [];
    while (framesWritten < framesPerPeer) {
      const frames = random.pick(attacks)();
      framesWritten += frames.length;
      planned.push(frames);
    }
    await inParallel(planned.length, async (index) => {
      connections += 1;
      await onConnection(async (socket) => {
        await write(socket, Buffer.concat(planned[index]!));
        socket.end();
      });
      if (index % 1000 === 0) await expectPeersStillWork();
    });
    // Every connection ended with exactly one refusal or one malformed frame.
    await expect.poll(counted, { timeout: 5000 }).toBe(before + planned.length);
    expect(deliveredToTarget()).toBe(deliveredBefore);
    await expectPeersStillWork();
    console.info(
      `node fuzz (seed ${seed + 1}): unauthenticated peer: ${framesWritten} frames on ${connections} connections, all refused or dropped and counted`,
    );
  });
});
