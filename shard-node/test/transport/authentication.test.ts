/**
 * Peers prove to each other that they hold the cluster secret (`peer-auth.ts`): transports with
 * the same secret connect and stream snapshots; a transport with another secret, or none, is
 * refused both ways, delivers nothing, and is counted and logged.
 */
import { afterEach, describe, expect, it } from 'vitest';

import type { SnapshotChunk } from '../../src/transport/index.js';
import { numberedMessage } from './arbitraries.js';
import { metricSum, startNode, stopAll, waitFor, type TestNode } from './harness.js';

const secret = Buffer.from('0123456789abcdef0123456789abcdef');

describe('peer authentication', () => {
  let nodes: TestNode[] = [];

  afterEach(async () => {
    await stopAll(nodes);
    nodes = [];
  });

  async function pair(
    first: Uint8Array | undefined,
    second: Uint8Array | undefined,
  ): Promise<[TestNode, TestNode]> {
    const a = await startNode(1, first === undefined ? {} : { secret: first });
    const b = await startNode(2, second === undefined ? {} : { secret: second });
    nodes = [a, b];
    a.transport.addPeer(2, { host: '127.0.0.1', port: b.transport.port });
    b.transport.addPeer(1, { host: '127.0.0.1', port: a.transport.port });
    return [a, b];
  }

  it('connects peers that share the secret, carries messages and snapshot streams', async () => {
    const [a, b] = await pair(secret, Buffer.from(secret));
    await waitFor(
      () =>
        a.transport.peerStatus(2)?.state === 'connected' && b.transport.peerStatus(1)?.state === 'connected',
      5000,
      'the authenticated peers to connect',
    );
    a.transport.send([numberedMessage(1, 2, 41)]);
    await waitFor(() => b.received.some((message) => message.index === 41), 5000, 'the message');
    const chunks: SnapshotChunk[] = [];
    b.onSnapshotChunk = (chunk) => {
      chunks.push(chunk);
    };
    const result = await a.transport.sendSnapshotChunks(2, 'snap-auth', [new Uint8Array([1, 2, 3])]);
    expect(result.byteCount).toBe(3);
    expect(chunks.at(-1)?.last).toBe(true);
  });

  for (const [name, other] of [
    ['another secret', Buffer.from('fedcba9876543210fedcba9876543210')],
    ['no secret', undefined],
  ] as const) {
    it(`refuses a peer with ${name}, both ways, and delivers nothing`, async () => {
      const [a, b] = await pair(secret, other);
      const refusals = async (node: TestNode): Promise<number> =>
        metricSum(node.registry, 'impulse_transport_handshakes_refused_total', { reason: 'authentication' });
      // Each side's dial is refused: by the dialler (the acceptor's proof is wrong) and so never
      // reaches the auth frame, whichever side holds the secret.
      await waitFor(
        () => a.logLines.some((line) => line.reason === 'authentication'),
        5000,
        'a refusal on the side with the secret',
      );
      a.transport.send([numberedMessage(1, 2, 42)]);
      b.transport.send([numberedMessage(2, 1, 43)]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(a.received).toEqual([]);
      expect(b.received).toEqual([]);
      expect((await refusals(a)) + (await refusals(b))).toBeGreaterThanOrEqual(2);
      expect(a.transport.peerStatus(2)?.state).not.toBe('connected');
      expect(b.transport.peerStatus(1)?.state).not.toBe('connected');
      await expect(
        a.transport.sendSnapshotChunks(2, 'snap-refused', [new Uint8Array([1])]),
      ).rejects.toMatchObject({
        code: 'PEER_HANDSHAKE_REJECTED',
      });
    });
  }
});
