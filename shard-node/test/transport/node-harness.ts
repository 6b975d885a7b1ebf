/**
 * Live node transports on loopback for tests: nodes that host the endpoints of several groups'
 * replicas, which record what reaches them.
 */
import { Writable } from 'node:stream';

import { Registry } from '@impulse/common';
import { pino } from 'pino';

import type { Message, NodeId } from '../../src/raft/index.js';
import type { InboundSender, ReplicaTransport } from '../../src/replica/index.js';
import {
  NodeTransport,
  type NodeTransportOptions,
  type PeerAddress,
  type SnapshotAbort,
  type SnapshotChunk,
} from '../../src/transport/index.js';
import { testLimits, waitFor } from './harness.js';

export const clusterId = 'test-cluster';

/** One hosted replica's endpoint, and everything the transport handed it. */
export interface TestEndpoint {
  readonly groupId: string;
  readonly raftId: NodeId;
  readonly transport: ReplicaTransport;
  readonly received: Message[];
  /** The sender the transport named with each message of `received` (same positions). */
  readonly senders: (InboundSender | undefined)[];
  readonly unreachable: NodeId[];
  readonly snapshotMessagesDropped: NodeId[];
  readonly chunks: SnapshotChunk[];
  readonly aborts: SnapshotAbort[];
  /** Set to slow the replica's snapshot handling down (backpressure). */
  onSnapshotChunk?: (chunk: SnapshotChunk) => Promise<void>;
}

export interface TestNode {
  readonly name: string;
  readonly transport: NodeTransport;
  readonly registry: Registry;
  readonly address: PeerAddress;
  readonly endpoints: Map<string, TestEndpoint>;
  readonly logLines: Array<{ level: number; msg: string; [field: string]: unknown }>;
  /** Opens the endpoint of this node's replica of `groupId`, reaching `peers`. */
  open(groupId: string, raftId: NodeId, peers: ReadonlyMap<NodeId, PeerAddress>): Promise<TestEndpoint>;
}

export async function startNode(
  name: string,
  overrides: Partial<NodeTransportOptions> = {},
): Promise<TestNode> {
  const registry = new Registry();
  const logLines: TestNode['logLines'] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logLines.push(JSON.parse(chunk.toString('utf8')) as TestNode['logLines'][number]);
      callback();
    },
  });
  const transport = await NodeTransport.start({
    listenHost: '127.0.0.1',
    listenPort: 0,
    clusterId,
    logger: pino({ level: 'info' }, logStream),
    registry,
    ...overrides,
    limits: { ...testLimits, ...overrides.limits },
  });
  const endpoints = new Map<string, TestEndpoint>();
  return {
    name,
    transport,
    registry,
    address: overrides.advertisedAddress ?? { host: '127.0.0.1', port: transport.port },
    endpoints,
    logLines,
    async open(groupId, raftId, peers) {
      const received: Message[] = [];
      const senders: (InboundSender | undefined)[] = [];
      const unreachable: NodeId[] = [];
      const snapshotMessagesDropped: NodeId[] = [];
      const chunks: SnapshotChunk[] = [];
      const aborts: SnapshotAbort[] = [];
      const endpoint: TestEndpoint = {
        groupId,
        raftId,
        transport: undefined as unknown as ReplicaTransport,
        received,
        senders,
        unreachable,
        snapshotMessagesDropped,
        chunks,
        aborts,
      };
      const opened = await transport.openReplica(groupId, raftId)(peers, {
        onMessages: (messages, from) => {
          received.push(...messages);
          senders.push(...messages.map(() => from));
        },
        onSnapshotChunk: async (chunk) => {
          chunks.push(chunk);
          await endpoint.onSnapshotChunk?.(chunk);
        },
        onSnapshotAborted: (abort) => aborts.push(abort),
        onUnreachable: (peerId) => unreachable.push(peerId),
        onSnapshotMessageDropped: (peerId) => snapshotMessagesDropped.push(peerId),
      });
      (endpoint as { transport: ReplicaTransport }).transport = opened;
      endpoints.set(groupId, endpoint);
      return endpoint;
    },
  };
}

/**
 * Hosts one replica of each group on each node: `raftIds[group][node]` is the Raft id of the
 * group's replica on that node. Every replica reaches the others at their nodes' addresses.
 */
export async function hostGroups(
  nodes: readonly TestNode[],
  raftIds: Readonly<Record<string, readonly NodeId[]>>,
): Promise<void> {
  for (const [groupId, ids] of Object.entries(raftIds)) {
    for (const [position, node] of nodes.entries()) {
      const peers = new Map<NodeId, PeerAddress>();
      for (const [otherPosition, other] of nodes.entries()) {
        if (otherPosition !== position) peers.set(ids[otherPosition]!, other.address);
      }
      await node.open(groupId, ids[position]!, peers);
    }
  }
}

/** Waits until every node's connection to every other node is up. */
export async function untilConnected(nodes: readonly TestNode[]): Promise<void> {
  await waitFor(
    () =>
      nodes.every((node) =>
        nodes.every(
          (other) => other === node || node.transport.connectionStatus(other.address)?.state === 'connected',
        ),
      ),
    5000,
    'every node connection',
  );
}

export async function stopAll(nodes: readonly TestNode[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.transport.stop()));
}
