/**
 * Live transports on loopback for tests: start, wire together, wait, read metrics, stop.
 */
import { Writable } from 'node:stream';

import { Registry } from '@impulse/common';
import { pino } from 'pino';

import type { Message, NodeId } from '../../src/raft/index.js';
import {
  PeerTransport,
  type PeerTransportOptions,
  type SnapshotAbort,
  type SnapshotChunk,
  type TransportLimits,
} from '../../src/transport/index.js';

export const clusterId = 'test-cluster';
export const groupId = 'g1';

/** Fast reconnects and a short disconnected buffer keep the tests quick. */
export const testLimits: Partial<TransportLimits> = {
  reconnectDelayMsMin: 10,
  reconnectDelayMsMax: 100,
  disconnectedBufferMs: 200,
  handshakeTimeoutMs: 2000,
};

export interface TestNode {
  readonly id: NodeId;
  transport: PeerTransport;
  readonly registry: Registry;
  readonly received: Message[];
  readonly receivedFrom: Map<NodeId, Message[]>;
  readonly unreachable: NodeId[];
  readonly logLines: Array<{ level: number; msg: string; [field: string]: unknown }>;
  onSnapshotChunk?: (chunk: SnapshotChunk) => void | Promise<void>;
  readonly snapshotAborts: SnapshotAbort[];
  /** The peers this node was given, kept to restart it with the same ones. */
  readonly peers: Map<NodeId, { host: string; port: number }>;
  /** Restarts the transport on the same port, with the same peers. */
  restart(): Promise<void>;
}

export async function startNode(
  id: NodeId,
  overrides: Partial<PeerTransportOptions> & { readonly acceptSnapshots?: boolean } = {},
): Promise<TestNode> {
  const { acceptSnapshots = true, ...options } = overrides;
  const registry = new Registry();
  const logLines: TestNode['logLines'] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logLines.push(JSON.parse(chunk.toString('utf8')) as TestNode['logLines'][number]);
      callback();
    },
  });
  const logger = pino({ level: 'info' }, logStream);
  const received: Message[] = [];
  const receivedFrom = new Map<NodeId, Message[]>();
  const unreachable: NodeId[] = [];
  const snapshotAborts: SnapshotAbort[] = [];
  const peers = new Map<NodeId, { host: string; port: number }>(overrides.peers ?? []);
  const node: TestNode = {
    id,
    transport: undefined as unknown as PeerTransport,
    registry,
    received,
    receivedFrom,
    unreachable,
    logLines,
    snapshotAborts,
    peers,
    async restart() {
      const port = node.transport.port;
      await node.transport.stop();
      registry.clear();
      node.transport = await start(port, peers);
    },
  };
  const start = (
    port: number,
    initialPeers: Map<NodeId, { host: string; port: number }>,
  ): Promise<PeerTransport> =>
    PeerTransport.start({
      listenHost: '127.0.0.1',
      listenPort: port,
      selfId: id,
      clusterId,
      groupId,
      peers: initialPeers,
      onMessages(messages, from) {
        received.push(...messages);
        let list = receivedFrom.get(from);
        if (list === undefined) {
          list = [];
          receivedFrom.set(from, list);
        }
        list.push(...messages);
      },
      ...(acceptSnapshots
        ? { onSnapshotChunk: (chunk: SnapshotChunk) => node.onSnapshotChunk?.(chunk) }
        : {}),
      onSnapshotAborted: (abort) => snapshotAborts.push(abort),
      onUnreachable: (peerId) => unreachable.push(peerId),
      logger,
      registry,
      ...options,
      limits: { ...testLimits, ...options.limits },
    });
  node.transport = await start(options.listenPort ?? 0, peers);
  return node;
}

/** Makes every node a peer of every other one, and waits until all are connected. */
export async function connectAll(nodes: readonly TestNode[]): Promise<void> {
  for (const node of nodes) {
    for (const other of nodes) {
      if (other !== node) {
        const address = { host: '127.0.0.1', port: other.transport.port };
        node.transport.addPeer(other.id, address);
        node.peers.set(other.id, address);
      }
    }
  }
  await waitFor(() =>
    nodes.every((node) =>
      nodes.every((other) => other === node || node.transport.peerStatus(other.id)?.state === 'connected'),
    ),
  );
}

export async function stopAll(nodes: readonly TestNode[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.transport.stop()));
}

/** Polls `condition` until it holds; fails after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The sum of a metric's values whose labels include `labels`. */
export async function metricSum(
  registry: Registry,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) {
    throw new Error(`no metric ${name}`);
  }
  const { values } = await metric.get();
  return values
    .filter((value) =>
      Object.entries(labels).every(([label, expected]) => String(value.labels[label]) === expected),
    )
    .reduce((sum, value) => sum + value.value, 0);
}
