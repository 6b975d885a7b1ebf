import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, keyBytesMaxUpperBound, valueBytesMaxUpperBound } from '@impulse/common';
import { parseShardNodeConfig } from '../src/config.js';
import { checkShardNodeConfig } from '../src/config-checks.js';
import type { Replica } from '../src/replica/index.js';
import { encodeCommand, encodeSnapshotChunks, snapshotChunkBytesTarget } from '../src/state-machine/index.js';
import {
  BufferWriter,
  beginFrame,
  defaultTransportLimits,
  encodeMessage,
  finishFrame,
} from '../src/transport/index.js';
import { snapshotChunkOverheadBytesMax } from '../src/transport/snapshot-chunk.js';
import { largestValueBytes, valueBytesBounds } from '../src/value-limit.js';
import {
  freePorts,
  memberSpec,
  servingLeader,
  startReplica,
  untilLeading,
  waitFor,
  writeToGroup,
} from './replica/harness.js';

/** A key of exactly `bytes` bytes of UTF-8. */
function keyOf(bytes: number, mark: string): string {
  return `${mark}-`.padEnd(bytes, 'k');
}

/** Issue 11, item 2: the largest value is derived from the frame and record limits it travels in. */
describe('the largest value a group carries', () => {
  it('is bounded by the transport frame, a snapshot chunk and a log record, each with the longest key', () => {
    const bounds = valueBytesBounds(keyBytesMaxUpperBound);
    expect(largestValueBytes(keyBytesMaxUpperBound)).toBe(
      Math.min(bounds.frame, bounds.snapshotRecord, bounds.logRecord),
    );
    expect(bounds.frame).toBeLessThan(defaultTransportLimits.frameBytesMax - keyBytesMaxUpperBound);
    // The cluster-wide bound every process checks holds for the longest key, within 1 KiB.
    expect(valueBytesMaxUpperBound).toBeLessThanOrEqual(largestValueBytes(keyBytesMaxUpperBound));
    expect(valueBytesMaxUpperBound).toBeGreaterThan(largestValueBytes(keyBytesMaxUpperBound) - 1024);
  });

  it('fits a put of the largest value and longest key in one frame, as the leader sends it', () => {
    const key = keyOf(keyBytesMaxUpperBound, 'frame');
    const data = encodeCommand({
      operation: 'put',
      requestId: Buffer.alloc(64, 'r'),
      key,
      value: Buffer.alloc(largestValueBytes(keyBytesMaxUpperBound)),
    });
    const writer = new BufferWriter();
    const start = beginFrame(writer, 'messages');
    encodeMessage(writer, {
      type: 'MsgApp',
      from: 1,
      to: 2,
      term: Number.MAX_SAFE_INTEGER,
      logTerm: Number.MAX_SAFE_INTEGER,
      index: Number.MAX_SAFE_INTEGER,
      commit: Number.MAX_SAFE_INTEGER,
      reject: false,
      rejectHint: 0,
      context: new Uint8Array(0),
      entries: [{ type: 'normal', term: Number.MAX_SAFE_INTEGER, index: Number.MAX_SAFE_INTEGER, data }],
    });
    expect(finishFrame(writer, start)).toBeLessThanOrEqual(defaultTransportLimits.frameBytesMax);
  });

  it('cuts snapshot chunks so that a record as large as a frame allows travels in one chunk', async () => {
    const pieceBytesMax = defaultTransportLimits.frameBytesMax - snapshotChunkOverheadBytesMax;
    async function* records(): AsyncGenerator<{ key: Buffer; value: Buffer }> {
      yield { key: Buffer.from('d-small'), value: Buffer.alloc(100) };
      yield { key: Buffer.from('d-large'), value: Buffer.alloc(pieceBytesMax - 8 - 7) };
      yield { key: Buffer.from('d-small-2'), value: Buffer.alloc(snapshotChunkBytesTarget - 20) };
      yield { key: Buffer.from('d-small-3'), value: Buffer.alloc(100) };
    }
    const chunks: Buffer[] = [];
    for await (const chunk of encodeSnapshotChunks(records())) chunks.push(chunk);
    expect(chunks.map((chunk) => chunk.byteLength)).toEqual([
      8 + 7 + 100,
      pieceBytesMax,
      8 + 9 + snapshotChunkBytesTarget - 20,
      8 + 9 + 100,
    ]);
  });

  it('refuses at start-up a --value-bytes-max the group cannot carry, saying what it may be', () => {
    const largest = largestValueBytes(1024);
    const check = (value: number): ShardNodeConfigCheck =>
      check0(parseShardNodeConfig({ argv: [`--value-bytes-max=${value}`], env: {} }));
    expect(check(largest)).toBeUndefined();
    const refusal = check(largest + 1);
    expect(refusal).toBeInstanceOf(ConfigError);
    expect(refusal?.message).toContain(
      `--value-bytes-max (${largest + 1} bytes) is over the largest value a group can replicate with keys of up to 1024 bytes: ${largest} bytes`,
    );
    expect(refusal?.message).toContain(`Set it to at most ${largest} bytes`);
  });

  it('refuses at start-up a --key-bytes-max longer than a write command carries', () => {
    expect(check0(parseShardNodeConfig({ argv: ['--key-bytes-max=65535'], env: {} }))).toBeUndefined();
    expect(check0(parseShardNodeConfig({ argv: ['--key-bytes-max=65536'], env: {} }))?.message).toContain(
      '--key-bytes-max (65536 bytes) is over the longest key a write can carry: 65535 bytes',
    );
  });
});

type ShardNodeConfigCheck = ConfigError | undefined;
function check0(config: ReturnType<typeof parseShardNodeConfig>): ShardNodeConfigCheck {
  try {
    checkShardNodeConfig(config);
    return undefined;
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
}

/**
 * A group of three that receives values as large as the cluster allows, under the longest keys: by
 * replication to every follower, and by a snapshot to a follower that fell behind.
 */
describe('a group receiving the largest allowed value', () => {
  let root: string;
  const running = new Map<number, Replica>();

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-largest-value-'));
  });
  afterEach(async () => {
    for (const replica of running.values()) await replica.stop();
    running.clear();
    await rm(root, { recursive: true, force: true });
  });

  it('replicates it to every replica, and sends it in a snapshot to one that fell behind', async () => {
    const ports = await freePorts(3);
    const members = ports.map((port, position) => memberSpec(position + 1, port));
    const start = async (raftId: number): Promise<Replica> => {
      const self = members[raftId - 1]!;
      const replica = await startReplica(self, members, join(root, self.replicaId), {
        snapshotEntries: 10,
        snapshotCatchUpEntries: 2,
      });
      running.set(raftId, replica);
      return replica;
    };
    for (const member of members) await start(member.raftId);
    const leader = await waitFor('a leader', () =>
      [...running.values()].find((replica) => replica.status().role === 'leader'),
    );
    await untilLeading(leader);
    const value = (mark: number): Buffer => Buffer.alloc(valueBytesMaxUpperBound, mark);
    const largeKeys = [0, 1, 2].map((mark) => keyOf(keyBytesMaxUpperBound, `large-${mark}`));
    const write = (key: string, bytes: Buffer): Promise<void> => writeToGroup(running, key, bytes);
    await write(largeKeys[0]!, value(0));
    const committed = (await servingLeader(running)).status().commitIndex;
    // Acknowledged by a majority; every follower gets it too.
    for (const replica of running.values()) {
      await waitFor('the value on every replica', () =>
        replica.status().appliedIndex >= committed ? true : undefined,
      );
      expect((await replica.read(largeKeys[0]!, 'stale'))?.equals(value(0))).toBe(true);
    }

    const leading = await servingLeader(running);
    const followerId = [...running.keys()].find((raftId) => running.get(raftId) !== leading)!;
    await running.get(followerId)!.stop();
    running.delete(followerId);
    await write(largeKeys[1]!, value(1));
    await write(largeKeys[2]!, value(2));
    // Small keys sort before the large ones, so that a snapshot chunk holds some before a large one.
    for (let index = 0; index < 30; index++) await write(`a-small-${index}`, Buffer.from(`v-${index}`));
    expect(
      (await servingLeader(running)).status().firstIndex,
      'the leader compacted its log',
    ).toBeGreaterThan(10);
    // Past the transport's one-second buffer, the follower can only catch up by snapshot.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const target = (await servingLeader(running)).status().commitIndex;
    const follower = await start(followerId);
    await waitFor('the follower caught up by snapshot', () => {
      const status = follower.status();
      return status.appliedIndex >= target && status.snapshotIndex > 10 ? true : undefined;
    });
    for (const [position, key] of largeKeys.entries())
      expect((await follower.read(key, 'stale'))?.equals(value(position)), key.slice(0, 10)).toBe(true);
    expect((await follower.read('a-small-29', 'stale'))?.toString()).toBe('v-29');
  });
});
