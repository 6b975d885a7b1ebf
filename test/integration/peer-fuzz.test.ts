import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathForKey } from '@impulse/common';
import { LocalCluster, type ReplicaProcess } from '@impulse/local-cluster';
import {
  BufferWriter,
  FrameDecoder,
  beginFrame,
  decodeHello,
  encodeAuthFrame,
  encodeHelloFrame,
  encodeMessage,
  finishFrame,
  networkMessageTypes,
  proofOf,
  protocolVersion,
  type Message,
  type RaftEntry,
} from '@impulse/shard-node';
import { rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';

/**
 * Issue 11, item 6: hostile peers. A real group of 3 (with the cluster secret `npm start` makes)
 * and a client that speaks the peer protocol to g1-r1, claiming to be g1-r3:
 *
 * - without the secret, every connection is refused at the handshake, and the group serves on
 *   through 10,000 messages written at it;
 * - with the secret (a member gone bad), 10,000 well-formed messages with random fields, some
 *   plausible against r1's log (its own term and indexes), some absurd: r1 never exits, drops what
 *   contradicts itself or its log (counted), keeps answering, and the group serves afterwards.
 *
 * The messages come from a seeded generator: a failure names its seed.
 */

const messagesPerCase = 10_000;
const messagesPerFrame = 100;
const seed = Number(process.env['IMPULSE_PEER_FUZZ_SEED'] ?? 20_261_207);

/** A small seeded generator (mulberry32), so that a failing run can be replayed. */
function generator(start: number): () => number {
  let state = start >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Status {
  term: number;
  lastIndex: number;
  commitIndex: number;
}

/** Messages from `from` to `to`: random fields, half of them near `status` (plausible), half anywhere. */
function randomMessages(
  random: () => number,
  count: number,
  from: number,
  to: number,
  status: Status,
): Message[] {
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;
  const near = (value: number): number => Math.max(0, value + Math.floor(random() * 7) - 3);
  const anywhere = (): number =>
    pick([0, 1, 2, 127, 128, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER - 8, Math.floor(random() * 1e6)]);
  const number = (plausible: number): number => (random() < 0.5 ? near(plausible) : anywhere());
  const bytes = (max: number): Uint8Array =>
    Uint8Array.from({ length: Math.floor(random() * max) }, () => Math.floor(random() * 256));
  const messages: Message[] = [];
  for (let count_ = 0; count_ < count; count_++) {
    const type = pick(networkMessageTypes);
    const term = number(status.term);
    const index = number(status.lastIndex);
    const entries: RaftEntry[] = [];
    if (type === 'MsgApp' && random() < 0.7) {
      const consistent = random() < 0.6;
      const entryCount = Math.floor(random() * 4);
      for (let position = 0; position < entryCount; position++) {
        entries.push({
          index: consistent ? index + 1 + position : anywhere(),
          term: consistent ? term : anywhere(),
          type: pick(['normal', 'normal', 'confChange', 'confChangeV2'] as const),
          data: bytes(40),
        });
      }
    }
    const snapshot =
      type === 'MsgSnap' || random() < 0.05
        ? {
            metadata: {
              index: number(status.commitIndex),
              term: number(status.term),
              confState: {
                voters: random() < 0.5 ? [1, 2, 3] : [Math.floor(random() * 9)],
                learners: [],
                votersOutgoing: [],
                learnersNext: [],
                autoLeave: false,
              },
            },
            data: bytes(20),
          }
        : undefined;
    messages.push({
      type,
      from,
      to,
      term,
      logTerm: number(status.term),
      index,
      entries,
      commit: number(status.commitIndex),
      reject: random() < 0.3,
      rejectHint: number(status.lastIndex),
      context: bytes(16),
      ...(snapshot === undefined ? {} : { snapshot }),
    });
  }
  return messages;
}

/**
 * A peer connection to `replica` as raft id `senderId`: the hello, the acceptor's answer, the
 * proof keyed by `secret`. Answers the socket (open, or closed by the replica).
 */
async function connectAsPeer(
  replica: ReplicaProcess,
  senderId: number,
  secret: Uint8Array,
): Promise<{ socket: Socket; answered: boolean }> {
  const socket = connect({ host: '127.0.0.1', port: replica.peerPort });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const nonce = Uint8Array.from({ length: 32 }, (_, index) => (index * 7 + senderId) & 0xff);
  const writer = new BufferWriter();
  encodeHelloFrame(writer, {
    protocolVersion,
    purpose: 'messages',
    clusterId: 'impulse',
    groupId: replica.groupId,
    senderId,
    receiverId: replica.raftId,
    nonce,
    proof: new Uint8Array(0),
  });
  socket.write(writer.takeBytes());
  const decoder = new FrameDecoder(1024 * 1024);
  const answer = await new Promise<Uint8Array | undefined>((resolve) => {
    const onData = (chunk: Buffer): void => {
      decoder.push(chunk);
      const frame = decoder.next();
      if (frame === undefined) return;
      socket.off('data', onData);
      resolve(frame.payload);
    };
    socket.on('data', onData);
    socket.once('close', () => resolve(undefined));
  });
  if (answer === undefined) return { socket, answered: false };
  const hello = decodeHello(answer);
  const identity = {
    clusterId: 'impulse',
    groupId: replica.groupId,
    purpose: 'messages',
    diallerId: senderId,
    acceptorId: replica.raftId,
  } as const;
  encodeAuthFrame(writer, proofOf(secret, 'dialler', identity, nonce, hello.nonce));
  socket.write(writer.takeBytes());
  return { socket, answered: true };
}

function messagesFrame(messages: readonly Message[]): Buffer {
  const writer = new BufferWriter();
  const start = beginFrame(writer, 'messages');
  for (const message of messages) {
    try {
      encodeMessage(writer, message);
    } catch (error) {
      throw new Error(`cannot encode ${JSON.stringify(message)}`, { cause: error });
    }
  }
  finishFrame(writer, start);
  return writer.takeBytes();
}

function metricValue(text: string, name: string, labels = ''): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels !== '' && !line.includes(labels)) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

describe('hostile peers (issue 11, item 6)', () => {
  let cluster: LocalCluster;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  let target: ReplicaProcess;
  let written = 0;

  beforeAll(async () => {
    directory = await temporaryDirectory('peer-fuzz');
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      logLevel: 'info',
      readyTimeoutMs: 10_000,
    });
    await cluster.leaderOf('g1');
    target = cluster.replica('g1-r1');
  });

  afterAll(async () => {
    await cluster.stop();
    await directory.remove();
  });

  /** Every replica process is alive, and the target answers HTTP. */
  async function expectAlive(): Promise<void> {
    for (const replica of cluster.group('g1')) {
      expect(replica.child?.exitCode ?? null, `${replica.replicaId} exited`).toBeNull();
      expect(replica.child?.signalCode ?? null, `${replica.replicaId} was killed`).toBeNull();
    }
    expect((await rawRequest(target.url, '/healthz')).status).toBe(200);
  }

  /** A write through the gateway, acknowledged, and read back. */
  async function expectGroupServes(timeoutMs = 20_000): Promise<void> {
    const key = `fuzz-${written++}`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const put = await rawRequest(cluster.gatewayUrl, pathForKey(key), { method: 'PUT', body: key });
      if (put.status === 204) break;
      if (Date.now() > deadline) throw new Error(`the group did not serve a write: ${put.status}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect((await rawRequest(cluster.gatewayUrl, pathForKey(key))).body.toString()).toBe(key);
  }

  it('refuses every connection without the cluster secret, and serves on through 10,000 messages', async () => {
    const refusedBefore = metricValue(
      (await rawRequest(target.url, '/metrics')).body.toString(),
      'impulse_transport_handshakes_refused_total',
      'reason="authentication"',
    );
    const random = generator(seed);
    const status = (
      await rawRequest(target.url, '/admin/status', { headers: cluster.adminHeaders() })
    ).json() as Status;
    const wrongSecret = Buffer.from('not the cluster secret, not at all');
    const connections = messagesPerCase / 500;
    for (let attempt = 0; attempt < connections; attempt++) {
      const { socket, answered } = await connectAsPeer(target, 3, wrongSecret);
      // The acceptor answers the hello (it proves itself first), then refuses the wrong proof.
      expect(answered).toBe(true);
      for (let frame = 0; frame < 500 / messagesPerFrame; frame++)
        socket.write(messagesFrame(randomMessages(random, messagesPerFrame, 3, 1, status)));
      if (!socket.closed) await new Promise((resolve) => socket.once('close', resolve));
      if (attempt % 5 === 0) await expectGroupServes(5_000);
    }
    const refusedAfter = metricValue(
      (await rawRequest(target.url, '/metrics')).body.toString(),
      'impulse_transport_handshakes_refused_total',
      'reason="authentication"',
    );
    expect(refusedAfter - refusedBefore).toBe(connections);
    await expectAlive();
    await expectGroupServes();
  });

  it('survives 10,000 random well-formed messages from a member that holds the secret', async () => {
    const secret = await readFile(cluster.clusterSecretPath);
    const random = generator(seed + 1);
    let sent = 0;
    while (sent < messagesPerCase) {
      const { socket, answered } = await connectAsPeer(target, 3, secret.subarray(0, secret.length - 1));
      expect(answered, 'the target answered the hello').toBe(true);
      // Messages near the target's own state reach deeper than absurd ones: read it afresh.
      const status = (
        await rawRequest(target.url, '/admin/status', { headers: cluster.adminHeaders() })
      ).json() as Status;
      for (let frame = 0; frame < 10 && sent < messagesPerCase; frame++) {
        socket.write(messagesFrame(randomMessages(random, messagesPerFrame, 3, 1, status)));
        sent += messagesPerFrame;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      socket.destroy();
      await expectAlive();
    }
    const metrics = (await rawRequest(target.url, '/metrics')).body.toString();
    // The host's checks were exercised: messages contradicting themselves or the log were dropped.
    for (const reason of ['implausible', 'inconsistentEntries', 'beyondLog', 'localOnly'])
      expect(
        metricValue(metrics, 'impulse_replica_peer_messages_refused_total', `reason="${reason}"`),
        reason,
      ).toBeGreaterThan(0);
    // Nothing failed the connection's own checks (they were well-formed, from the right peer).
    expect(metricValue(metrics, 'impulse_transport_frames_malformed_total')).toBe(0);
    await expectAlive();
    // The real r3 takes its connection back; the group (a majority is r2 and r3) serves.
    await expectGroupServes(30_000);
    await expectAlive();
  });
});
