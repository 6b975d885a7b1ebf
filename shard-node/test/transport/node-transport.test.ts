/**
 * Node transports on loopback, each hosting the endpoints of several groups' replicas: one
 * connection per node pair carries every group's messages, one frame per round, to the right
 * replica; drops reach the replica that sent; endpoints come and go without disturbing the others.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { Message, MessageType, NodeId } from '../../src/raft/index.js';
import { addressKey, type PeerAddress } from '../../src/transport/index.js';
import { makeMessage } from './arbitraries.js';
import { metricSum, waitFor } from './harness.js';
import {
  hostGroups,
  startNode,
  stopAll,
  untilConnected,
  type TestEndpoint,
  type TestNode,
} from './node-harness.js';

/** A heartbeat that says which group sent it (in its context) and its place in a sequence (index). */
function tagged(groupId: string, from: NodeId, to: NodeId, sequence: number): Message {
  return makeMessage({
    type: 'MsgHeartbeat',
    from,
    to,
    term: 1,
    index: sequence,
    context: Buffer.from(groupId),
  });
}

function groupOf(message: Message): string {
  return Buffer.from(message.context).toString('utf8');
}

function endpoint(node: TestNode, groupId: string): TestEndpoint {
  const found = node.endpoints.get(groupId);
  if (found === undefined) throw new Error(`${node.name} hosts no ${groupId}`);
  return found;
}

/** The Raft ids of each group's replicas on nodes A, B and C: different in each group. */
const raftIds = { g1: [1, 2, 3], g2: [2, 3, 1], g3: [3, 1, 2] } as const;

function framesSent(from: TestNode, to: TestNode): Promise<number> {
  return metricSum(from.registry, 'impulse_transport_frames_sent_total', {
    peer: addressKey(to.address),
    kind: 'groupMessages',
  });
}

describe('node transport on loopback', () => {
  let nodes: TestNode[] = [];
  let a: TestNode;
  let b: TestNode;
  let c: TestNode;

  beforeEach(async () => {
    nodes = [await startNode('A'), await startNode('B'), await startNode('C')];
    [a, b, c] = nodes as [TestNode, TestNode, TestNode];
    await hostGroups(nodes, raftIds);
    await untilConnected(nodes);
  });

  afterEach(async () => {
    await stopAll(nodes);
  });

  it('carries the messages of 3 groups between 3 nodes to the right replicas, in order', async () => {
    const perPair = 200;
    for (let sequence = 1; sequence <= perPair; sequence++) {
      for (const [groupId, ids] of Object.entries(raftIds)) {
        for (const [position, node] of nodes.entries()) {
          const self = ids[position]!;
          const messages = ids.filter((id) => id !== self).map((to) => tagged(groupId, self, to, sequence));
          endpoint(node, groupId).transport.send(messages);
        }
      }
      // Some rounds apart, so that the messages of a pair travel in many frames.
      if (sequence % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const expected = perPair * 2;
    await waitFor(
      () => nodes.every((node) => [...node.endpoints.values()].every((e) => e.received.length === expected)),
      10_000,
      'every replica to receive from both of its peers',
    );
    for (const [groupId, ids] of Object.entries(raftIds)) {
      for (const [position, node] of nodes.entries()) {
        const received = endpoint(node, groupId).received;
        expect(received.every((message) => groupOf(message) === groupId)).toBe(true);
        expect(received.every((message) => message.to === ids[position])).toBe(true);
        // Each with the address of the node that sent it, as its hello proved it.
        const senderNodes = endpoint(node, groupId).senders.map((sender) =>
          nodes.find(
            (other) => sender !== undefined && addressKey(other.address) === addressKey(sender.address),
          ),
        );
        expect(senderNodes.map((sender) => sender?.endpoints.get(groupId)?.raftId)).toEqual(
          received.map((message) => message.from),
        );
        for (const from of ids.filter((id) => id !== ids[position])) {
          const sequences = received
            .filter((message) => message.from === from)
            .map((message) => message.index);
          expect(sequences).toEqual(Array.from({ length: perPair }, (_, index) => index + 1));
        }
        expect(
          await metricSum(node.registry, 'impulse_transport_messages_received_total', { group: groupId }),
        ).toBe(expected);
      }
    }
    for (const node of nodes) {
      expect(await metricSum(node.registry, 'impulse_transport_inbound_messages_dropped_total')).toBe(0);
      expect(await metricSum(node.registry, 'impulse_transport_messages_dropped_total')).toBe(0);
    }
  });

  it('sends the messages of every group for a node in one frame per round', async () => {
    const toB = await framesSent(a, b);
    const toC = await framesSent(a, c);
    const receivedFromA = await metricSum(b.registry, 'impulse_transport_frames_received_total', {
      peer: addressKey(a.address),
      kind: 'groupMessages',
    });
    // One event-loop turn: every group on A sends to its peers on B and C, several messages each.
    for (const [groupId, ids] of Object.entries(raftIds)) {
      const self = ids[0];
      for (let sequence = 1; sequence <= 5; sequence++) {
        endpoint(a, groupId).transport.send([
          tagged(groupId, self, ids[1], sequence),
          tagged(groupId, self, ids[2], sequence),
        ]);
      }
    }
    await waitFor(
      () => [b, c].every((node) => [...node.endpoints.values()].every((e) => e.received.length === 5)),
      5000,
      'the round to arrive',
    );
    expect(await framesSent(a, b)).toBe(toB + 1);
    expect(await framesSent(a, c)).toBe(toC + 1);
    expect(
      await metricSum(b.registry, 'impulse_transport_frames_received_total', {
        peer: addressKey(a.address),
        kind: 'groupMessages',
      }),
    ).toBe(receivedFromA + 1);
  });

  it('counts every message sent and received by peer, group and type: exact on each scrape, never back', async () => {
    // The series each scrape must show, by their labels as /metrics writes them: A's sent, then
    // B's and C's received (only A's replicas send in this test).
    const expected = [new Map<string, number>(), new Map<string, number>(), new Map<string, number>()];
    const add = (series: Map<string, number>, peer: TestNode, groupId: string, type: string): void => {
      const labels = `{peer="${addressKey(peer.address)}",group="${groupId}",type="${type}"}`;
      series.set(labels, (series.get(labels) ?? 0) + 1);
    };
    const receivedCount = (node: TestNode): number =>
      [...node.endpoints.values()].reduce((sum, e) => sum + e.received.length, 0);
    /** One round of A's replicas, each send a [group, type, receiving node]; waits for them all. */
    const round = async (
      sends: ReadonlyArray<readonly [keyof typeof raftIds, MessageType, TestNode]>,
    ): Promise<void> => {
      const awaited = [b, c].map(receivedCount);
      for (const [groupId, type, to] of sends) {
        const ids = raftIds[groupId];
        const position = nodes.indexOf(to);
        endpoint(a, groupId).transport.send([
          makeMessage({ type, from: ids[0], to: ids[position]!, term: 1 }),
        ]);
        add(expected[0]!, to, groupId, type);
        add(expected[position]!, a, groupId, type);
        awaited[position - 1]! += 1;
      }
      await waitFor(
        () => [b, c].every((node, index) => receivedCount(node) === awaited[index]),
        5000,
        'the round to arrive',
      );
    };
    /** Every series of `name` on `node`'s /metrics page, by its labels as written there. */
    const scrape = async (node: TestNode, name: string): Promise<Map<string, number>> => {
      const series = new Map<string, number>();
      for (const line of (await node.registry.metrics()).split('\n')) {
        if (!line.startsWith(`${name}{`)) continue;
        const space = line.lastIndexOf(' ');
        series.set(line.slice(name.length, space), Number(line.slice(space + 1)));
      }
      return series;
    };
    const scrapeAll = async (): Promise<Map<string, number>[]> => [
      await scrape(a, 'impulse_transport_messages_sent_total'),
      await scrape(b, 'impulse_transport_messages_received_total'),
      await scrape(c, 'impulse_transport_messages_received_total'),
    ];

    // Heartbeats travel coalesced, the other types in runs; each message counts once for its group.
    await round([
      ['g1', 'MsgApp', b],
      ['g1', 'MsgApp', b],
      ['g1', 'MsgApp', c],
      ['g1', 'MsgHeartbeat', b],
      ['g1', 'MsgHeartbeat', c],
      ['g2', 'MsgHeartbeat', b],
      ['g2', 'MsgVote', b],
      ['g2', 'MsgVote', c],
    ]);
    const first = await scrapeAll();
    expect(first).toEqual(expected);
    expect(first[0]!.get(`{peer="${addressKey(b.address)}",group="g1",type="MsgApp"}`)).toBe(2);
    // A scrape without new messages reads the same values.
    expect(await scrapeAll()).toEqual(first);

    await round([
      ['g1', 'MsgApp', b],
      ['g2', 'MsgHeartbeat', b],
      ['g2', 'MsgHeartbeat', c],
      ['g3', 'MsgTimeoutNow', c],
    ]);
    const second = await scrapeAll();
    expect(second).toEqual(expected);
    expect(second[0]!.get(`{peer="${addressKey(b.address)}",group="g1",type="MsgApp"}`)).toBe(3);
    for (const [position, series] of first.entries()) {
      for (const [labels, value] of series) {
        expect(second[position]!.get(labels)).toBeGreaterThanOrEqual(value);
      }
    }
    // A replica that closes its endpoint keeps its series and their totals, as it always did.
    await endpoint(a, 'g2').transport.stop();
    expect(await scrapeAll()).toEqual(second);
  });

  it('coalesces the heartbeats of a round for a node into one, and the responses back, losslessly', async () => {
    const counter = (
      from: TestNode,
      to: TestNode,
      what: 'heartbeats' | 'heartbeat_entries',
    ): Promise<number> =>
      metricSum(from.registry, `impulse_transport_coalesced_${what}_sent_total`, {
        peer: addressKey(to.address),
      });
    const before = {
      ab: await counter(a, b, 'heartbeats'),
      abEntries: await counter(a, b, 'heartbeat_entries'),
      ac: await counter(a, c, 'heartbeats'),
      ba: await counter(b, a, 'heartbeats'),
      baEntries: await counter(b, a, 'heartbeat_entries'),
    };
    // One tick on A, which leads all three groups: a heartbeat per group to each follower, each
    // with its own term, commit, lease stamp and ReadIndex context.
    const heartbeats = new Map<string, Message>();
    for (const [position, [groupId, ids]] of Object.entries(raftIds).entries()) {
      const toB = makeMessage({
        type: 'MsgHeartbeat',
        from: ids[0],
        to: ids[1],
        term: 3 + position,
        commit: 100 + position,
        index: 40 + position,
        context: new Uint8Array(Buffer.from(`read-${groupId}`)),
      });
      heartbeats.set(groupId, toB);
      endpoint(a, groupId).transport.send([toB, { ...toB, to: ids[2], commit: 7 }]);
    }
    await waitFor(() =>
      [b, c].every((node) => [...node.endpoints.values()].every((e) => e.received.length === 1)),
    );
    expect(await counter(a, b, 'heartbeats')).toBe(before.ab + 1);
    expect(await counter(a, b, 'heartbeat_entries')).toBe(before.abEntries + 3);
    expect(await counter(a, c, 'heartbeats')).toBe(before.ac + 1);
    for (const groupId of Object.keys(raftIds)) {
      expect(endpoint(b, groupId).received).toEqual([heartbeats.get(groupId)]);
    }
    // B's replicas answer in one round: one coalesced response goes back to A.
    for (const groupId of Object.keys(raftIds)) {
      const heartbeat = heartbeats.get(groupId)!;
      endpoint(b, groupId).transport.send([
        makeMessage({
          type: 'MsgHeartbeatResp',
          from: heartbeat.to,
          to: heartbeat.from,
          term: heartbeat.term,
          index: heartbeat.index,
          context: heartbeat.context,
        }),
      ]);
    }
    await waitFor(() => [...a.endpoints.values()].every((e) => e.received.length === 1));
    expect(await counter(b, a, 'heartbeats')).toBe(before.ba + 1);
    expect(await counter(b, a, 'heartbeat_entries')).toBe(before.baEntries + 3);
    for (const groupId of Object.keys(raftIds)) {
      const [response] = endpoint(a, groupId).received;
      expect(response).toMatchObject({ type: 'MsgHeartbeatResp', index: heartbeats.get(groupId)!.index });
      expect(Buffer.from(response!.context).toString()).toBe(`read-${groupId}`);
    }
  });

  it('reports a drop to the replica that sent the message, and to no other', async () => {
    const g1 = endpoint(a, 'g1');
    const g2 = endpoint(a, 'g2');
    // Raft id 9 is no peer of g1: dropped, counted, reported to g1 only (a MsgSnap also as such).
    g1.transport.send([
      makeMessage({ type: 'MsgApp', from: 1, to: 9, term: 1 }),
      makeMessage({ type: 'MsgSnap', from: 1, to: 9, term: 1 }),
    ]);
    await waitFor(() => g1.unreachable.includes(9) && g1.snapshotMessagesDropped.includes(9));
    expect(g2.unreachable).toEqual([]);
    expect(
      await metricSum(a.registry, 'impulse_transport_messages_dropped_total', {
        group: 'g1',
        reason: 'unknownPeer',
      }),
    ).toBe(2);
    // Too large for any frame: dropped at the flush, reported to its sender only.
    const huge = makeMessage({
      type: 'MsgApp',
      from: 2,
      to: 3,
      term: 1,
      entries: [{ term: 1, index: 1, type: 'normal', data: new Uint8Array(5 * 1024 * 1024) }],
    });
    g2.transport.send([huge, tagged('g2', 2, 3, 77)]);
    await waitFor(() => g2.unreachable.includes(3));
    await waitFor(() => endpoint(b, 'g2').received.some((message) => message.index === 77));
    expect(g1.unreachable).toEqual([9]);
    expect(
      await metricSum(a.registry, 'impulse_transport_messages_dropped_total', {
        group: 'g2',
        reason: 'tooLarge',
      }),
    ).toBe(1);
  });

  it("keeps the other groups' traffic when one replica closes its endpoint, and takes the group back", async () => {
    await endpoint(a, 'g1').transport.stop();
    expect(a.transport.hostedGroups().sort()).toEqual(['g2', 'g3']);
    // B's g1 still sends to A's g1: counted as a group not hosted here.
    endpoint(b, 'g1').transport.send([tagged('g1', 2, 1, 1)]);
    await expect
      .poll(() =>
        metricSum(a.registry, 'impulse_transport_inbound_messages_dropped_total', { reason: 'unknownGroup' }),
      )
      .toBe(1);
    // The connections A shares with B and C stay up, and carry the other groups both ways.
    expect(a.transport.connectionStatus(b.address)?.state).toBe('connected');
    endpoint(a, 'g2').transport.send([tagged('g2', 2, 3, 1)]);
    endpoint(b, 'g3').transport.send([tagged('g3', 1, 3, 1)]);
    await waitFor(
      () => endpoint(b, 'g2').received.length === 1 && endpoint(a, 'g3').received.length === 1,
      5000,
      'the other groups to keep flowing',
    );
    // A new replica of g1 opens on A and is reached again.
    const reopened = await a.open(
      'g1',
      1,
      new Map<NodeId, PeerAddress>([
        [2, b.address],
        [3, c.address],
      ]),
    );
    endpoint(b, 'g1').transport.send([tagged('g1', 2, 1, 2)]);
    await waitFor(() => reopened.received.some((message) => message.index === 2));
    reopened.transport.send([tagged('g1', 1, 2, 3)]);
    await waitFor(() => endpoint(b, 'g1').received.some((message) => message.index === 3));
  });

  it('drops and counts messages for a group not hosted here, or for another replica of the group', async () => {
    // A hosts a fourth group whose peer is on B, where that group is not hosted.
    const g4 = await a.open('g4', 1, new Map([[2, b.address]]));
    g4.transport.send([tagged('g4', 1, 2, 1), tagged('g4', 1, 2, 2)]);
    // A's g1 believes its peer 3 is on B (where g1's replica is raft id 2).
    endpoint(a, 'g1').transport.removePeer(3);
    endpoint(a, 'g1').transport.addPeer(3, b.address);
    endpoint(a, 'g1').transport.send([tagged('g1', 1, 3, 1), tagged('g1', 1, 2, 2)]);
    await waitFor(() => endpoint(b, 'g1').received.some((message) => message.index === 2));
    await expect
      .poll(() =>
        metricSum(b.registry, 'impulse_transport_inbound_messages_dropped_total', {
          peer: addressKey(a.address),
          reason: 'unknownGroup',
        }),
      )
      .toBe(2);
    expect(
      await metricSum(b.registry, 'impulse_transport_inbound_messages_dropped_total', {
        reason: 'wrongReceiver',
      }),
    ).toBe(1);
    expect(endpoint(b, 'g1').received.map((message) => message.index)).toEqual([2]);
    expect(b.logLines.some((line) => line.msg.includes('no replica here takes'))).toBe(true);
    // The group never becomes a metric label on the receiving side.
    const received = await b.registry.getSingleMetric('impulse_transport_messages_received_total')!.get();
    expect(received.values.some((value) => value.labels['group'] === 'g4')).toBe(false);
  });

  it('streams snapshots of two groups at once, each to its replica', async () => {
    const streamBytes = 3 * 1024 * 1024;
    const data = (seed: number): Uint8Array => {
      const bytes = new Uint8Array(streamBytes);
      for (let offset = 0; offset < streamBytes; offset++) bytes[offset] = (offset * seed + seed) & 0xff;
      return bytes;
    };
    const payloads = { g1: data(7), g2: data(13) };
    async function* chunksOf(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
      for (let offset = 0; offset < bytes.byteLength; offset += 256 * 1024) {
        yield bytes.subarray(offset, offset + 256 * 1024);
      }
    }
    // The receivers are slow, so both streams are open at the same time.
    for (const groupId of ['g1', 'g2']) {
      endpoint(b, groupId).onSnapshotChunk = () => new Promise((resolve) => setTimeout(resolve, 2));
    }
    const results = await Promise.all([
      endpoint(a, 'g1').transport.sendSnapshotChunks(2, 'snap-g1', chunksOf(payloads.g1)),
      endpoint(a, 'g2').transport.sendSnapshotChunks(3, 'snap-g2', chunksOf(payloads.g2)),
    ]);
    expect(results).toHaveLength(2);
    for (const [groupId, from, snapshotId] of [
      ['g1', 1, 'snap-g1'],
      ['g2', 2, 'snap-g2'],
    ] as const) {
      const chunks = endpoint(b, groupId).chunks;
      expect(chunks.every((chunk) => chunk.from === from && chunk.snapshotId === snapshotId)).toBe(true);
      expect(chunks.at(-1)?.last).toBe(true);
      expect(Buffer.concat(chunks.map((chunk) => chunk.bytes)).equals(Buffer.from(payloads[groupId]))).toBe(
        true,
      );
    }
    expect(endpoint(b, 'g3').chunks).toEqual([]);
    expect(
      await metricSum(b.registry, 'impulse_transport_snapshot_streams_total', {
        direction: 'received',
        result: 'success',
      }),
    ).toBe(2);
  });

  it('refuses a snapshot stream for a group not hosted here, and ends streams to a replica that stops', async () => {
    const g5 = await a.open('g5', 1, new Map([[2, b.address]]));
    await expect(g5.transport.sendSnapshotChunks(2, 'snap-g5', (async function* () {})())).rejects.toThrow();
    expect(
      await metricSum(b.registry, 'impulse_transport_snapshot_streams_refused_total', {
        reason: 'unknownGroup',
      }),
    ).toBe(1);
    // A stream in flight to B's g1 ends, reported to that replica, when it closes its endpoint.
    const receiver = endpoint(b, 'g1');
    let release: () => void = () => {};
    receiver.onSnapshotChunk = () => new Promise((resolve) => (release = resolve));
    async function* slowChunks(): AsyncGenerator<Uint8Array> {
      for (let count = 0; count < 100; count++) yield new Uint8Array(64 * 1024);
    }
    const sending = endpoint(a, 'g1').transport.sendSnapshotChunks(2, 'snap-cut', slowChunks());
    await waitFor(() => receiver.chunks.length > 0);
    await receiver.transport.stop();
    release();
    await expect(sending).rejects.toThrow();
    expect(receiver.aborts).toEqual([expect.objectContaining({ from: 1, snapshotId: 'snap-cut' })]);
    // B's other replicas still take messages.
    endpoint(a, 'g2').transport.send([tagged('g2', 2, 3, 5)]);
    await waitFor(() => endpoint(b, 'g2').received.some((message) => message.index === 5));
  });

  it('follows a member to another node (updatePeer)', async () => {
    // A's g1 learns that its peer 2 now lives on C, where g1's replica is Raft id 3.
    endpoint(a, 'g1').transport.updatePeer(2, c.address);
    endpoint(a, 'g1').transport.send([tagged('g1', 1, 2, 1), tagged('g1', 1, 3, 2)]);
    await waitFor(() => endpoint(c, 'g1').received.some((message) => message.index === 2));
    await expect
      .poll(() =>
        metricSum(c.registry, 'impulse_transport_inbound_messages_dropped_total', {
          reason: 'wrongReceiver',
        }),
      )
      .toBe(1);
    expect(endpoint(b, 'g1').received).toEqual([]);
    // B is still needed by g2 and g3: its connection stays.
    expect(a.transport.connectionStatus(b.address)?.state).toBe('connected');
  });

  it('closes its connection to a node once no hosted replica has a peer there', async () => {
    endpoint(a, 'g1').transport.removePeer(raftIds.g1[2]);
    endpoint(a, 'g2').transport.removePeer(raftIds.g2[2]);
    expect(a.transport.connectionStatus(c.address)?.state).toBe('connected');
    endpoint(a, 'g3').transport.removePeer(raftIds.g3[2]);
    expect(a.transport.connectionStatus(c.address)).toBeUndefined();
    expect(a.transport.connectionStatus(b.address)?.state).toBe('connected');
    // C's own connection to A is C's: it stays, and A's replicas still take what C sends.
    endpoint(c, 'g1').transport.send([tagged('g1', 3, 1, 9)]);
    await waitFor(() => endpoint(a, 'g1').received.some((message) => message.index === 9));
  });

  it('registers its metrics once, and treats misuse as programmer errors', async () => {
    // Four replicas opened on A already; another registry collision would have thrown.
    expect(
      a.registry.getMetricsAsArray().filter((metric) => metric.name.startsWith('impulse_transport_')),
    ).not.toHaveLength(0);
    expect(() => a.transport.openReplica('bad group', 1)).toThrow(/assertion failed/);
    expect(() => a.transport.openReplica('g9', 0)).toThrow(/assertion failed/);
    await expect(a.open('g1', 1, new Map())).rejects.toThrow(/no live replica/);
    expect(() => endpoint(a, 'g1').transport.send([tagged('g1', 2, 3, 1)])).toThrow(/from this replica/);
    expect(() => endpoint(a, 'g1').transport.send([makeMessage({ type: 'MsgHup', from: 1, to: 2 })])).toThrow(
      /local message/,
    );
  });
});

describe('node transport with many groups', () => {
  it('carries the messages of 50 groups between two nodes in one frame per round', async () => {
    const nodes = [await startNode('A'), await startNode('B')];
    const [a, b] = nodes as [TestNode, TestNode];
    try {
      const groups = Array.from({ length: 50 }, (_, index) => `group-${index}`);
      await hostGroups(nodes, Object.fromEntries(groups.map((groupId) => [groupId, [1, 2]])));
      await untilConnected(nodes);
      const before = await framesSent(a, b);
      for (const groupId of groups) {
        endpoint(a, groupId).transport.send([tagged(groupId, 1, 2, 1), tagged(groupId, 1, 2, 2)]);
      }
      await waitFor(
        () => groups.every((groupId) => endpoint(b, groupId).received.length === 2),
        5000,
        'every group to receive its messages',
      );
      expect(await framesSent(a, b)).toBe(before + 1);
      for (const groupId of groups) {
        expect(endpoint(b, groupId).received.map((message) => [groupOf(message), message.index])).toEqual([
          [groupId, 1],
          [groupId, 2],
        ]);
      }
    } finally {
      await stopAll(nodes);
    }
  });
});

describe('node transport without coalescing', () => {
  it('sends one heartbeat per group, and still takes coalesced heartbeats from its peers', async () => {
    const plain = await startNode('plain', { coalesceHeartbeats: false });
    const coalescing = await startNode('coalescing');
    try {
      await hostGroups([plain, coalescing], { g1: [1, 2], g2: [1, 2] });
      await untilConnected([plain, coalescing]);
      for (const groupId of ['g1', 'g2']) {
        endpoint(plain, groupId).transport.send([
          makeMessage({ type: 'MsgHeartbeat', from: 1, to: 2, term: 1 }),
        ]);
        endpoint(coalescing, groupId).transport.send([
          makeMessage({ type: 'MsgHeartbeat', from: 2, to: 1, term: 1 }),
        ]);
      }
      await waitFor(() =>
        [plain, coalescing].every((node) =>
          [...node.endpoints.values()].every((e) => e.received.length === 1),
        ),
      );
      expect(await metricSum(plain.registry, 'impulse_transport_coalesced_heartbeats_sent_total')).toBe(0);
      expect(await metricSum(coalescing.registry, 'impulse_transport_coalesced_heartbeats_sent_total')).toBe(
        1,
      );
    } finally {
      await stopAll([plain, coalescing]);
    }
  });
});

describe('node authentication', () => {
  async function pair(
    optionsA: Parameters<typeof startNode>[1],
    optionsB: Parameters<typeof startNode>[1],
    addressOfB?: (b: TestNode) => PeerAddress,
  ): Promise<[TestNode, TestNode]> {
    const a = await startNode('A', optionsA);
    const b = await startNode('B', optionsB);
    await a.open('g1', 1, new Map([[2, addressOfB?.(b) ?? b.address]]));
    await b.open('g1', 2, new Map([[1, a.address]]));
    return [a, b];
  }

  async function refused(node: TestNode, reason: string): Promise<number> {
    return metricSum(node.registry, 'impulse_transport_handshakes_refused_total', { reason });
  }

  it('connects nodes that share the secret, and carries messages and snapshot streams', async () => {
    const secret = Buffer.from('a cluster secret of enough bytes');
    const [a, b] = await pair({ secret }, { secret });
    try {
      await untilConnected([a, b]);
      endpoint(a, 'g1').transport.send([tagged('g1', 1, 2, 1)]);
      await waitFor(() => endpoint(b, 'g1').received.length === 1);
      await endpoint(b, 'g1').transport.sendSnapshotChunks(
        1,
        'snap',
        (async function* () {
          yield new Uint8Array([1, 2, 3]);
        })(),
      );
      expect(endpoint(a, 'g1').chunks.map((chunk) => chunk.bytes.byteLength)).toEqual([3, 0]);
    } finally {
      await stopAll([a, b]);
    }
  });

  for (const [name, secretB] of [
    ['another secret', Buffer.from('another secret, also long enough')],
    ['no secret', undefined],
  ] as const) {
    it(`refuses a node with ${name}, both ways, and delivers nothing`, async () => {
      const [a, b] = await pair(
        { secret: Buffer.from('a cluster secret of enough bytes') },
        secretB === undefined ? {} : { secret: secretB },
      );
      try {
        await expect.poll(() => refused(a, 'authentication'), { timeout: 5000 }).toBeGreaterThan(0);
        await expect.poll(() => refused(b, 'authentication'), { timeout: 5000 }).toBeGreaterThan(0);
        endpoint(a, 'g1').transport.send([tagged('g1', 1, 2, 1)]);
        endpoint(b, 'g1').transport.send([tagged('g1', 2, 1, 1)]);
        await expect(
          endpoint(b, 'g1').transport.sendSnapshotChunks(1, 'snap', (async function* () {})()),
        ).rejects.toThrow();
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(endpoint(a, 'g1').received).toEqual([]);
        expect(endpoint(b, 'g1').received).toEqual([]);
        expect(endpoint(a, 'g1').chunks).toEqual([]);
        expect(a.transport.connectionStatus(b.address)?.state).not.toBe('connected');
      } finally {
        await stopAll([a, b]);
      }
    });
  }

  it('refuses a node of another cluster', async () => {
    const [a, b] = await pair({}, { clusterId: 'another-cluster' });
    try {
      await expect.poll(() => refused(b, 'clusterId'), { timeout: 5000 }).toBeGreaterThan(0);
      await expect.poll(() => refused(a, 'clusterId'), { timeout: 5000 }).toBeGreaterThan(0);
      expect(a.transport.connectionStatus(b.address)?.state).not.toBe('connected');
    } finally {
      await stopAll([a, b]);
    }
  });

  it('refuses a dialler that names another address for it than the one it advertises', async () => {
    const [a, b] = await pair({}, {}, (node) => ({ host: 'localhost', port: node.transport.port }));
    try {
      await expect.poll(() => refused(b, 'receiverAddress'), { timeout: 5000 }).toBeGreaterThan(0);
      expect(b.logLines.some((line) => line.reason === 'receiverAddress')).toBe(true);
      expect(a.transport.connectionStatus({ host: 'localhost', port: b.transport.port })?.state).not.toBe(
        'connected',
      );
    } finally {
      await stopAll([a, b]);
    }
  });
});
