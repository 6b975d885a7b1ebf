import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { afterEach, describe, expect, it } from 'vitest';

import type { Message } from '../../src/raft/index.js';
import { TransportError } from '../../src/transport/index.js';
import { makeMessage, numberedMessage, sequenceOf } from './arbitraries.js';
import { connectAll, metricSum, startNode, stopAll, waitFor, type TestNode } from './harness.js';

let nodes: TestNode[] = [];

afterEach(async () => {
  await stopAll(nodes);
  nodes = [];
});

async function startNodes(
  count: number,
  overrides: Parameters<typeof startNode>[1] = {},
): Promise<TestNode[]> {
  nodes = await Promise.all(Array.from({ length: count }, (_, index) => startNode(index + 1, overrides)));
  await connectAll(nodes);
  return nodes;
}

describe('peer transport on loopback', () => {
  it('exchanges thousands of messages between two replicas, in order, many per frame', async () => {
    const [a, b] = await startNodes(2);
    const count = 5000;
    // Several turns, each sending message by message as a host loop would for a Ready.
    for (let sent = 0; sent < count; sent += 500) {
      for (let sequence = sent; sequence < sent + 500; sequence++) {
        a!.transport.send([numberedMessage(1, 2, sequence)]);
        b!.transport.send([numberedMessage(2, 1, sequence)]);
      }
      await nextTurn();
    }
    await waitFor(() => a!.received.length === count && b!.received.length === count, 10_000, 'delivery');
    expect(b!.received.map(sequenceOf)).toEqual(Array.from({ length: count }, (_, index) => index));
    expect(a!.received.map(sequenceOf)).toEqual(Array.from({ length: count }, (_, index) => index));
    expect(b!.received[7]).toEqual(numberedMessage(1, 2, 7));

    const framesSent = await metricSum(a!.registry, 'impulse_transport_frames_sent_total', {
      kind: 'messages',
    });
    const messagesSent = await metricSum(a!.registry, 'impulse_transport_messages_sent_total', {
      type: 'MsgApp',
    });
    const messagesReceived = await metricSum(b!.registry, 'impulse_transport_messages_received_total', {
      peer: '1',
    });
    expect(messagesSent).toBe(count);
    expect(messagesReceived).toBe(count);
    expect(framesSent).toBeGreaterThan(0);
    expect(framesSent).toBeLessThan(count / 50);
    // Every frame between the two is counted once on each side (hellos both ways included).
    expect(await metricSum(a!.registry, 'impulse_transport_bytes_sent_total', { peer: '2' })).toBe(
      await metricSum(b!.registry, 'impulse_transport_bytes_received_total', { peer: '1' }),
    );
    expect(await metricSum(a!.registry, 'impulse_transport_connection_state', { peer: '2' })).toBe(2);
    expect(await metricSum(a!.registry, 'impulse_transport_frames_malformed_total')).toBe(0);
  });

  it('exchanges messages among three replicas, each pair in order', async () => {
    const trio = await startNodes(3);
    const perPair = 1500;
    for (let sequence = 0; sequence < perPair; sequence++) {
      for (const node of trio) {
        node.transport.send(
          trio
            .filter((other) => other !== node)
            .map((other) => numberedMessage(node.id, other.id, sequence, 64)),
        );
      }
      if (sequence % 100 === 99) {
        await nextTurn();
      }
    }
    await waitFor(() => trio.every((node) => node.received.length === 2 * perPair), 10_000, 'delivery');
    for (const node of trio) {
      for (const other of trio.filter((candidate) => candidate !== node)) {
        const fromOther = node.receivedFrom.get(other.id)!;
        expect(fromOther.map(sequenceOf)).toEqual(Array.from({ length: perPair }, (_, index) => index));
        expect(fromOther.every((message) => message.from === other.id && message.to === node.id)).toBe(true);
      }
      const frames = await metricSum(node.registry, 'impulse_transport_frames_sent_total', {
        kind: 'messages',
      });
      expect(frames).toBeLessThan(2 * perPair);
    }
  });

  it('splits a large backlog into frames no larger than frameBytesMax', async () => {
    const frameBytesMax = 64 * 1024;
    const [a, b] = await startNodes(2, { limits: { frameBytesMax } });
    // 200 messages of 4 KiB: about 800 KiB, so at least 13 frames.
    a!.transport.send(Array.from({ length: 200 }, (_, sequence) => numberedMessage(1, 2, sequence, 4096)));
    await waitFor(() => b!.received.length === 200, 5000, 'delivery');
    expect(b!.received.map(sequenceOf)).toEqual(Array.from({ length: 200 }, (_, index) => index));
    const frames = await metricSum(a!.registry, 'impulse_transport_frames_sent_total', { kind: 'messages' });
    const bytes = await metricSum(a!.registry, 'impulse_transport_bytes_sent_total', { peer: '2' });
    expect(frames).toBeGreaterThanOrEqual(13);
    expect(bytes / frames).toBeLessThanOrEqual(frameBytesMax);
  });

  it('drops a single message larger than a frame, counts it and reports the snapshot', async () => {
    const snapshotDrops: Message[] = [];
    const [a, b] = await startNodes(2, {
      limits: { frameBytesMax: 16 * 1024 },
      onSnapshotMessageDropped: (_peerId, message) => snapshotDrops.push(message),
    });
    const huge = makeMessage({
      type: 'MsgSnap',
      from: 1,
      to: 2,
      snapshot: {
        metadata: {
          index: 10,
          term: 2,
          confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
        },
        data: new Uint8Array(32 * 1024),
      },
    });
    a!.transport.send([huge, numberedMessage(1, 2, 1)]);
    await waitFor(() => b!.received.length === 1 && snapshotDrops.length === 1, 5000, 'delivery and drop');
    expect(sequenceOf(b!.received[0]!)).toBe(1);
    expect(a!.unreachable).toEqual([2]);
    expect(
      await metricSum(a!.registry, 'impulse_transport_messages_dropped_total', {
        type: 'MsgSnap',
        reason: 'tooLarge',
      }),
    ).toBe(1);
  });

  it('refuses local message types and messages not from this replica (programmer errors)', async () => {
    const [a] = await startNodes(2);
    expect(() => a!.transport.send([makeMessage({ type: 'MsgHup', from: 1, to: 2 })])).toThrow(
      /local message/,
    );
    expect(() => a!.transport.send([makeMessage({ type: 'MsgApp', from: 3, to: 2 })])).toThrow(
      /from this replica/,
    );
  });

  it('drops and reports messages to an unknown peer', async () => {
    const [a] = await startNodes(2);
    a!.transport.send([numberedMessage(1, 9, 0)]);
    await waitFor(() => a!.unreachable.includes(9));
    expect(
      await metricSum(a!.registry, 'impulse_transport_messages_dropped_total', {
        peer: '9',
        reason: 'unknownPeer',
      }),
    ).toBe(1);
  });

  it('stops delivering to a removed peer and refuses its connections', async () => {
    const [a, b] = await startNodes(2);
    b!.transport.removePeer(1);
    expect(b!.transport.peerStatus(1)).toBeUndefined();
    // A keeps redialling B, which now refuses it as an unknown peer.
    await waitFor(
      () =>
        b!.logLines.some(
          (line) => line.msg.includes('refused a connection') && line.reason === 'unknownPeer',
        ),
      5000,
      'refusal',
    );
    expect(
      await metricSum(b!.registry, 'impulse_transport_handshakes_refused_total', { reason: 'unknownPeer' }),
    ).toBeGreaterThan(0);
    a!.transport.send([numberedMessage(1, 2, 0)]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(b!.received).toEqual([]);
  });

  it('follows a peer to a new address (updatePeer)', async () => {
    const [a, b] = await startNodes(2);
    const oldPort = b!.transport.port;
    await b!.transport.stop();
    b!.transport = (
      await startNode(2, { peers: new Map([[1, { host: '127.0.0.1', port: a!.transport.port }]]) })
    ).transport;
    expect(b!.transport.port).not.toBe(oldPort);
    a!.transport.updatePeer(2, { host: '127.0.0.1', port: b!.transport.port });
    await waitFor(() => a!.transport.peerStatus(2)?.state === 'connected');
  });

  it('is stopped idempotently and drops what is sent afterwards', async () => {
    const [a] = await startNodes(2);
    await Promise.all([a!.transport.stop(), a!.transport.stop()]);
    await a!.transport.stop();
    a!.transport.send([numberedMessage(1, 2, 0)]);
    await expect(a!.transport.sendSnapshotChunks(2, 's', [])).rejects.toMatchObject({
      code: 'TRANSPORT_STOPPED',
    });
  });
});

describe('reconnection', () => {
  it('drops and reports messages while a peer is down, stays bounded, and resumes when it is back', async () => {
    const [a, b] = await startNodes(2, { limits: { sendQueueMessagesMax: 100, disconnectedBufferMs: 500 } });
    a!.transport.send([numberedMessage(1, 2, 0)]);
    await waitFor(() => b!.received.length === 1);

    await b!.transport.stop();
    await waitFor(() => a!.transport.peerStatus(2)?.state !== 'connected', 5000, 'disconnection');
    // A burst while down: the queue holds at most 100, the rest is dropped at once.
    a!.transport.send(Array.from({ length: 1000 }, (_, index) => numberedMessage(1, 2, 1 + index)));
    expect(a!.transport.peerStatus(2)!.queuedMessages).toBeLessThanOrEqual(100);
    await waitFor(() => a!.unreachable.includes(2), 2000, 'onUnreachable');
    // After the disconnected buffer (500 ms) the queue is dropped too, and new messages at once.
    await waitFor(() => a!.transport.peerStatus(2)!.queuedMessages === 0, 2000, 'queue drop');
    a!.transport.send([numberedMessage(1, 2, 5000)]);
    expect(a!.transport.peerStatus(2)!.queuedMessages).toBe(0);
    const dropped = await metricSum(a!.registry, 'impulse_transport_messages_dropped_total', { peer: '2' });
    expect(dropped).toBe(1001);
    expect(
      await metricSum(a!.registry, 'impulse_transport_messages_dropped_total', { reason: 'queueFull' }),
    ).toBeGreaterThan(0);
    expect(
      await metricSum(a!.registry, 'impulse_transport_messages_dropped_total', { reason: 'disconnected' }),
    ).toBeGreaterThan(0);

    // Back on the same port: A redials with backoff and delivery resumes.
    await b!.restart();
    await waitFor(() => a!.transport.peerStatus(2)?.state === 'connected', 5000, 'reconnection');
    a!.transport.send([numberedMessage(1, 2, 7000)]);
    await waitFor(() => b!.received.length === 2, 5000, 'delivery after reconnection');
    expect(sequenceOf(b!.received[1]!)).toBe(7000);
    expect(await metricSum(a!.registry, 'impulse_transport_reconnects_total', { peer: '2' })).toBeGreaterThan(
      0,
    );
    // And the other direction too (B's outbound connection to A is new).
    await waitFor(() => b!.transport.peerStatus(1)?.state === 'connected');
    b!.transport.send([numberedMessage(2, 1, 1)]);
    await waitFor(() => a!.received.length === 1);
  });

  it('buffers messages sent just before the connection is up', async () => {
    const a = await startNode(1);
    const b = await startNode(2);
    nodes = [a, b];
    a.transport.addPeer(2, { host: '127.0.0.1', port: b.transport.port });
    b.transport.addPeer(1, { host: '127.0.0.1', port: a.transport.port });
    a.transport.send([numberedMessage(1, 2, 0)]);
    await waitFor(() => b.received.length === 1, 2000, 'delivery');
    expect(a.unreachable).toEqual([]);
  });
});

describe('snapshot streams', () => {
  it('streams 20 MiB in order, byte-identical, with backpressure', async () => {
    const [a, b] = await startNodes(2);
    const totalBytes = 20 * 1024 * 1024;
    const chunkBytes = 64 * 1024;
    let producedBytes = 0;
    let consumedBytes = 0;
    let aheadBytesMax = 0;
    const sentHash = createHash('sha256');
    const receivedHash = createHash('sha256');
    const sequences: number[] = [];
    b!.onSnapshotChunk = async (chunk) => {
      expect(chunk.from).toBe(1);
      expect(chunk.snapshotId).toBe('snap-7');
      sequences.push(chunk.sequence);
      receivedHash.update(chunk.bytes);
      consumedBytes += chunk.bytes.byteLength;
      // A slow disk now and then.
      if (chunk.sequence % 40 === 0) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    async function* produce(): AsyncGenerator<Uint8Array> {
      let seed = 1;
      for (let offset = 0; offset < totalBytes; offset += chunkBytes) {
        const chunk = new Uint8Array(chunkBytes);
        for (let index = 0; index < chunkBytes; index += 4) {
          seed = (seed * 1_103_515_245 + 12_345) >>> 0;
          chunk[index] = seed & 0xff;
          chunk[index + 1] = (seed >>> 8) & 0xff;
        }
        sentHash.update(chunk);
        producedBytes += chunk.byteLength;
        aheadBytesMax = Math.max(aheadBytesMax, producedBytes - consumedBytes);
        yield chunk;
      }
    }
    const result = await a!.transport.sendSnapshotChunks(2, 'snap-7', produce());
    expect(result).toEqual({ chunkCount: totalBytes / chunkBytes + 1, byteCount: totalBytes });
    expect(consumedBytes).toBe(totalBytes);
    expect(receivedHash.digest('hex')).toBe(sentHash.digest('hex'));
    expect(sequences).toEqual(Array.from({ length: totalBytes / chunkBytes + 1 }, (_, index) => index));
    // Backpressure: the producer never ran far ahead of the consumer (socket buffers only).
    expect(aheadBytesMax).toBeLessThan(totalBytes / 2);
    expect(
      await metricSum(b!.registry, 'impulse_transport_snapshot_streams_total', { result: 'success' }),
    ).toBe(1);
    expect(
      await metricSum(a!.registry, 'impulse_transport_snapshot_bytes_total', { direction: 'sent' }),
    ).toBe(totalBytes);
  });

  it('reports a stream cut short on both sides, and keeps messages flowing meanwhile', async () => {
    const [a, b] = await startNodes(2);
    let release: () => void = () => {};
    let handlerEntered = false;
    b!.onSnapshotChunk = () =>
      new Promise<void>((resolve) => {
        handlerEntered = true;
        release = resolve;
      });
    const controller = new AbortController();
    const sending = a!.transport.sendSnapshotChunks(
      2,
      'snap-8',
      [new Uint8Array(1000), new Uint8Array(1000)],
      {
        signal: controller.signal,
      },
    );
    await waitFor(() => handlerEntered, 2000, 'the first chunk');
    // Heartbeats still pass while the snapshot handler holds its stream.
    a!.transport.send([makeMessage({ type: 'MsgHeartbeat', from: 1, to: 2, term: 1 })]);
    await waitFor(() => b!.received.length === 1);
    controller.abort();
    await expect(sending).rejects.toBeInstanceOf(TransportError);
    await waitFor(() => b!.snapshotAborts.length === 1, 2000, 'abort');
    expect(b!.snapshotAborts[0]).toMatchObject({ from: 1, snapshotId: 'snap-8' });
    release();
  });

  it('rejects a stream to a replica that takes no snapshots, or to an unknown peer', async () => {
    const [a] = await startNodes(2, { acceptSnapshots: false });
    await expect(a!.transport.sendSnapshotChunks(2, 's', [new Uint8Array(10)])).rejects.toBeInstanceOf(
      TransportError,
    );
    await expect(a!.transport.sendSnapshotChunks(5, 's', [])).rejects.toMatchObject({ code: 'PEER_UNKNOWN' });
  });
});
