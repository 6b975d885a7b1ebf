/**
 * A live transport under attack by a raw TCP client: garbage, truncated frames, a huge announced
 * length, wrong handshakes, a wrong proof, lies after a good handshake. Each bad connection is
 * dropped and counted, and the transport keeps serving its real peers.
 */
import { connect } from 'node:net';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  BufferWriter,
  FrameDecoder,
  beginFrame,
  decodeHello,
  encodeAuthFrame,
  encodeHelloFrame,
  encodeMessage,
  finishFrame,
  proofOf,
  protocolVersion,
  type Hello,
} from '../../src/transport/index.js';
import { makeMessage, numberedMessage } from './arbitraries.js';
import {
  clusterId,
  connectAll,
  groupId,
  metricSum,
  startNode,
  stopAll,
  waitFor,
  type TestNode,
} from './harness.js';

let nodes: TestNode[] = [];
let target: TestNode;
let peer: TestNode;
let exchanged = 0;

beforeAll(async () => {
  nodes = [await startNode(1, { limits: { handshakeTimeoutMs: 500 } }), await startNode(2)];
  [target, peer] = nodes as [TestNode, TestNode];
  await connectAll(nodes);
});

afterAll(async () => {
  await stopAll(nodes);
});

/**
 * Connects to the target, writes `bytes`, optionally ends the write side, and resolves when the
 * target closed the connection (with what it answered). Fails if the target keeps it open.
 */
function attack(bytes: Uint8Array, options: { readonly end?: boolean } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: target.transport.port });
    const answered: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the target kept a bad connection open'));
    }, 3000);
    socket.on('data', (chunk: Buffer) => answered.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(answered));
    });
    socket.write(bytes, () => {
      if (options.end === true) {
        socket.end();
      }
    });
  });
}

const diallerNonce = new Uint8Array(32).fill(9);

function helloFrame(overrides: Partial<Hello> = {}): Buffer {
  const writer = new BufferWriter();
  encodeHelloFrame(writer, {
    protocolVersion,
    purpose: 'messages',
    clusterId,
    groupId,
    senderId: 2,
    receiverId: 1,
    nonce: diallerNonce,
    proof: new Uint8Array(0),
    ...overrides,
  });
  return writer.takeBytes();
}

/**
 * Like `attack`, past a whole handshake as peer 2: the hello, then, once the target answered,
 * the proof over the target's nonce (keyed by `secret`: the target has none, so an empty one is
 * right), then `rest`. Resolves when the target closed the connection.
 */
function attackAfterHandshake(
  rest: Uint8Array,
  options: { readonly end?: boolean; readonly secret?: Uint8Array } = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: target.transport.port });
    const decoder = new FrameDecoder(1024 * 1024);
    let authenticated = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the target kept a bad connection open'));
    }, 3000);
    socket.on('data', (chunk: Buffer) => {
      if (authenticated) return;
      decoder.push(chunk);
      const frame = decoder.next();
      if (frame === undefined) return;
      authenticated = true;
      const answer = decodeHello(frame.payload);
      const identity = { clusterId, groupId, purpose: 'messages', diallerId: 2, acceptorId: 1 } as const;
      const writer = new BufferWriter();
      encodeAuthFrame(
        writer,
        proofOf(options.secret ?? new Uint8Array(0), 'dialler', identity, diallerNonce, answer.nonce),
      );
      socket.write(Buffer.concat([writer.takeBytes(), rest]), () => {
        if (options.end === true) socket.end();
      });
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.write(helloFrame());
  });
}

function messagesFrame(messages: Parameters<typeof encodeMessage>[1][]): Buffer {
  const writer = new BufferWriter();
  const start = beginFrame(writer, 'messages');
  for (const message of messages) {
    encodeMessage(writer, message);
  }
  finishFrame(writer, start);
  return writer.takeBytes();
}

async function malformedCount(reason?: string): Promise<number> {
  return metricSum(
    target.registry,
    'impulse_transport_frames_malformed_total',
    reason === undefined ? {} : { reason },
  );
}

/** The real peers still exchange messages both ways. */
async function expectPeersStillWork(): Promise<void> {
  exchanged += 1;
  const sequence = exchanged;
  target.transport.send([numberedMessage(1, 2, sequence)]);
  peer.transport.send([numberedMessage(2, 1, sequence)]);
  await waitFor(
    () =>
      target.received.some((message) => message.index === sequence) &&
      peer.received.some((message) => message.index === sequence),
    5000,
    'the real peers to exchange messages',
  );
}

describe('a live transport fed bad bytes', () => {
  it('drops a connection that sends garbage (an HTTP request)', async () => {
    const before = await malformedCount('tooLarge');
    await attack(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await malformedCount('tooLarge')).toBe(before + 1);
    await expectPeersStillWork();
  });

  it('drops a connection that announces a 2 GiB frame, without buffering it', async () => {
    const before = await malformedCount('tooLarge');
    const header = Buffer.alloc(4 + 1024);
    header.writeUInt32BE(2 * 1024 * 1024 * 1024 - 1);
    await attack(header);
    expect(await malformedCount('tooLarge')).toBe(before + 1);
    expect(target.logLines.some((line) => line.level === 40 && line.reason === 'tooLarge')).toBe(true);
    await expectPeersStillWork();
  });

  it('counts a frame cut short by the end of the connection', async () => {
    const before = await malformedCount('truncated');
    const frame = helloFrame();
    await attack(frame.subarray(0, frame.byteLength - 3), { end: true });
    expect(await malformedCount('truncated')).toBe(before + 1);
    await expectPeersStillWork();
  });

  it('drops a connection whose frame fails its checksum', async () => {
    const before = await malformedCount('checksum');
    const frame = Buffer.from(helloFrame());
    frame[frame.byteLength - 1] = frame[frame.byteLength - 1]! ^ 0x01;
    await attack(frame);
    expect(await malformedCount('checksum')).toBe(before + 1);
    await expectPeersStillWork();
  });

  it('closes a connection that sends no hello in time', async () => {
    await attack(new Uint8Array(0));
    await expectPeersStillWork();
  });

  for (const [reason, hello] of [
    ['groupId', { groupId: 'g2' }],
    ['clusterId', { clusterId: 'another-cluster' }],
    ['receiverId', { receiverId: 3 }],
    ['unknownPeer', { senderId: 9 }],
    ['protocolVersion', { protocolVersion: protocolVersion + 1 }],
  ] as const) {
    it(`refuses a hello with the wrong ${reason}, and logs it`, async () => {
      const refused = (): Promise<number> =>
        metricSum(target.registry, 'impulse_transport_handshakes_refused_total', { reason });
      const before = await refused();
      const answer = await attack(helloFrame(hello));
      expect(answer.byteLength).toBe(0);
      expect(await refused()).toBe(before + 1);
      expect(
        target.logLines.some((line) => line.msg.includes('refused a connection') && line.reason === reason),
      ).toBe(true);
      await expectPeersStillWork();
    });
  }

  it('drops a connection that sends messages before its hello', async () => {
    const before = await malformedCount('kind');
    await attack(messagesFrame([makeMessage({ type: 'MsgHeartbeat', from: 2, to: 1 })]));
    expect(await malformedCount('kind')).toBe(before + 1);
  });

  it('drops a connection that lies about the sender after a good hello, delivering nothing', async () => {
    const before = await malformedCount('protocol');
    const receivedBefore = target.received.length;
    await attackAfterHandshake(messagesFrame([makeMessage({ type: 'MsgHeartbeat', from: 3, to: 1 })]));
    expect(await malformedCount('protocol')).toBe(before + 1);
    expect(target.received.length).toBe(receivedBefore);
    await expectPeersStillWork();
  });

  it('drops a connection that sends an undecodable message after a good hello', async () => {
    const before = await malformedCount('decode');
    const writer = new BufferWriter();
    const start = beginFrame(writer, 'messages');
    writer.writeUint8(0); // MsgHup's tag: local types have no wire tag.
    writer.writeBytes(new Uint8Array(20));
    finishFrame(writer, start);
    await attackAfterHandshake(writer.takeBytes());
    expect(await malformedCount('decode')).toBe(before + 1);
    await expectPeersStillWork();
  });

  it('survives random garbage and random frames after a good hello', async () => {
    const before = await malformedCount();
    let attacks = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.uint8Array({ minLength: 1, maxLength: 3000 }),
        async (afterHello, garbage) => {
          attacks += 1;
          if (afterHello) await attackAfterHandshake(garbage, { end: true });
          else await attack(garbage, { end: true });
        },
      ),
      { numRuns: 25 },
    );
    // Each attack was either counted as malformed or ended cleanly after whole frames: count at
    // least the ones the peer could not have parsed.
    expect(await malformedCount()).toBeGreaterThan(before);
    expect(attacks).toBe(25);
    await expectPeersStillWork();
  });

  it('refuses a peer whose proof is not made with the cluster secret, delivering nothing', async () => {
    const refused = (): Promise<number> =>
      metricSum(target.registry, 'impulse_transport_handshakes_refused_total', { reason: 'authentication' });
    const before = await refused();
    const receivedBefore = target.received.length;
    await attackAfterHandshake(messagesFrame([makeMessage({ type: 'MsgHeartbeat', from: 2, to: 1 })]), {
      secret: Buffer.from('a secret the target does not hold'),
    });
    expect(await refused()).toBe(before + 1);
    expect(target.received.length).toBe(receivedBefore);
    expect(
      target.logLines.some(
        (line) => line.msg.includes('does not hold the cluster secret') && line.reason === 'authentication',
      ),
    ).toBe(true);
    await expectPeersStillWork();
  });

  it('drops a connection that sends messages after its hello but before its proof, delivering nothing', async () => {
    const before = await malformedCount('kind');
    const receivedBefore = target.received.length;
    await attack(
      Buffer.concat([helloFrame(), messagesFrame([makeMessage({ type: 'MsgHeartbeat', from: 2, to: 1 })])]),
    );
    expect(await malformedCount('kind')).toBe(before + 1);
    expect(target.received.length).toBe(receivedBefore);
    await expectPeersStillWork();
  });

  it('keeps a real peer connected through all of it', async () => {
    expect(target.transport.peerStatus(2)?.state).toBe('connected');
    expect(peer.transport.peerStatus(1)?.state).toBe('connected');
    expect(await metricSum(peer.registry, 'impulse_transport_frames_malformed_total')).toBe(0);
  });
});
