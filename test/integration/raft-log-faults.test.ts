import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathForKey } from '@impulse/common';
import { LocalCluster, ProcessStartError, type ReplicaProcess } from '@impulse/local-cluster';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { waitFor } from '../support/wait-for.js';

/**
 * Issue 20, the Raft-log part of the storage-fault suite. A real group of 3 replicas on LevelDB
 * behind the gateway, with small log segments (so that every replica holds several) and small
 * snapshots (so that compaction deletes the oldest ones, as in production). Each case writes keys
 * through the gateway, stops every replica cleanly (SIGTERM), damages the Raft log of one replica
 * (`<data dir>/raft/`), and starts them again. What the log does about each damage is fixed by
 * `shard-node/src/raft-log/README.md` ("Recovery rules"), and asserted exactly:
 *
 * - damage anywhere but at the end of the newest segment is refused at start: the replica exits 1,
 *   its first line on stderr names the file and the offset (`RaftLogError` RAFT_LOG_CORRUPT, which
 *   the process reports as the start-up code DATA_DIRECTORY_DAMAGED, with what to do), and it is brought back by the documented
 *   procedure (docs/replication.md, "A replica that lost its data"): removed on the leader, wiped,
 *   started again under a new id with --join, added, promoted. The newcomer receives the leader's
 *   snapshot, and its stale reads hold every acknowledged value byte for byte;
 * - damage at the end of the newest segment (a torn tail) is truncated with a warning, and the
 *   replica serves again by itself.
 *
 * Either way no read path (linearizable GET and a scan through the gateway, stale GET and stale
 * scan on every replica that answers) gives a wrong value or misses an acknowledged write, and the
 * group serves on its healthy replicas meanwhile.
 *
 * The cases share one cluster and run in order: each replaces the replica it refuses, so the next
 * case damages a newer replica (one whose log starts at the leader's snapshot).
 */

const segmentBytesMax = 8 * 1024;
const shardNodeArguments = [
  `--raft-log-segment-bytes-max=${segmentBytesMax}`,
  '--snapshot-entries=400',
  '--snapshot-catch-up-entries=200',
];
/** Keys written before each case: about three segments' worth of entries. */
const keysPerCase = 150;
/** Segments the damaged replica holds at least: an oldest, a sealed one between, and the newest. */
const segmentsMin = 4;
const requestConcurrency = 16;
/**
 * The replica that is never replaced: the gateway was started knowing g1-r1 to g1-r3 only, and
 * finds newer replicas through the leader hints of one it knows.
 */
const keeper = 'g1-r3';

/** Runs `work` over `items` with `requestConcurrency` workers. */
async function forEachConcurrently<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: requestConcurrency }, worker));
}

// ---------------------------------------------------------------------------------------------
// The segment files, read as shard-node/src/raft-log/README.md describes them.

const RECORD_HEADER_BYTES = 16;
const RecordType = { checkpoint: 1, entries: 2, hardState: 3 } as const;

interface LogRecord {
  /** Where the record's header starts. */
  readonly offset: number;
  readonly type: number;
  readonly payloadBytes: number;
  /** Where the next record starts. */
  readonly end: number;
  /** For an entries record: the index of its first entry. */
  readonly firstIndex: number | undefined;
}

interface Segment {
  readonly file: string;
  readonly sequence: number;
  readonly sizeBytes: number;
  readonly records: LogRecord[];
}

/**
 * The segments of a replica's log. `stopped`: the replica was stopped cleanly, so every segment
 * holds whole records only (of a running replica, the newest may end inside a record being written).
 */
async function segmentsOf(replica: ReplicaProcess, stopped: boolean): Promise<Segment[]> {
  const directory = join(replica.dataDirectory, 'raft');
  const names = (await readdir(directory)).filter((name) => /^[0-9a-f]{16}-[0-9a-f]{16}\.log$/.test(name));
  const segments: Segment[] = [];
  for (const name of names.sort()) {
    const file = join(directory, name);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (error) {
      // A running replica's compaction may delete a segment between the listing and the read.
      if (!stopped && (error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    const records: LogRecord[] = [];
    let offset = 0;
    while (offset + RECORD_HEADER_BYTES <= bytes.length) {
      const payloadBytes = bytes.readUInt32LE(offset);
      const type = bytes[offset + 4] as number;
      const payload = offset + RECORD_HEADER_BYTES;
      const end = payload + payloadBytes;
      if (end > bytes.length) break;
      const firstIndex =
        type === RecordType.entries
          ? bytes.readUInt32LE(payload) + bytes.readUInt32LE(payload + 4) * 2 ** 32
          : undefined;
      records.push({ offset, type, payloadBytes, end, firstIndex });
      offset = end;
    }
    if (stopped) expect(offset, `${file} ends inside a record`).toBe(bytes.length);
    segments.push({
      file,
      sequence: Number.parseInt(name.slice(0, 16), 16),
      sizeBytes: bytes.length,
      records,
    });
  }
  return segments;
}

/** The entries record in the middle of a segment, followed by at least one other record. */
function middleEntriesRecord(segment: Segment): LogRecord {
  const candidates = segment.records.filter(
    (record) => record.type === RecordType.entries && record.end < segment.sizeBytes,
  );
  const record = candidates[candidates.length >> 1];
  if (record === undefined) throw new Error(`${segment.file} holds no entries record before its last`);
  return record;
}

/** The byte in the middle of a record's payload: inside an entry's command, typically a value. */
function middleOfPayload(record: LogRecord): number {
  return record.offset + RECORD_HEADER_BYTES + (record.payloadBytes >> 1);
}

async function flipByte(file: string, position: number): Promise<void> {
  const bytes = await readFile(file);
  bytes[position] = (bytes[position] as number) ^ 0x01;
  await writeFile(file, bytes);
}

// ---------------------------------------------------------------------------------------------

interface Status {
  role: string;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  snapshotIndex: number;
  voters: number[];
  learners: number[];
  storageFault: unknown;
  keyCount: number | null;
}

/** A replica's status, asked with the admin token of its cluster. */
async function statusOf(cluster: LocalCluster, replica: ReplicaProcess): Promise<Status> {
  return (
    await rawRequest(replica.url, '/admin/status', { headers: cluster.adminHeaders(), timeoutMs: 2000 })
  ).json() as Status;
}

interface ScanPage {
  items: { key: string; value: string; encoding?: string }[];
  next: string | null;
}

function valueOfItem(item: ScanPage['items'][number]): Buffer {
  return item.encoding === 'base64' ? Buffer.from(item.value, 'base64') : Buffer.from(item.value, 'utf8');
}

/** A JSON log line of a replica, as pino writes it. */
type LogLine = Record<string, unknown> & { level: number; msg: string };

describe('raft log faults on one replica of a group (issue 20)', () => {
  let cluster: LocalCluster;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;
  /** Every write the cluster acknowledged, key → value bytes. */
  const acknowledged = new Map<string, Buffer>();
  let writeRound = 0;

  beforeAll(async () => {
    directory = await temporaryDirectory('raft-log-faults');
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      logLevel: 'info',
      readyTimeoutMs: 8000,
      shardNodeArguments,
    });
    await cluster.leaderOf('g1');
  });

  afterAll(async () => {
    await cluster?.stop();
    await directory?.remove();
  });

  /**
   * `count` fresh keys with random binary values, written through the gateway; all acknowledged.
   * A `503 GROUP_UNAVAILABLE` is retried (the same value: a put is idempotent) for up to 10 s: the
   * gateway knows only the founders' addresses from its cluster configuration, and after the
   * earlier cases replaced founders it can take an election to find the group's leader again.
   */
  async function writeKeys(count: number): Promise<void> {
    const round = writeRound++;
    const keys = Array.from({ length: count }, (_, index) => `w${round}-${String(index).padStart(4, '0')}`);
    await forEachConcurrently(keys, async (key) => {
      const value = randomBytes(16 + (key.length % 7) * 10);
      const deadline = Date.now() + 10_000;
      let response = await rawRequest(cluster.gatewayUrl, pathForKey(key), { method: 'PUT', body: value });
      while (
        response.status === 503 &&
        errorCodeOf(response) === 'GROUP_UNAVAILABLE' &&
        Date.now() < deadline
      ) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        response = await rawRequest(cluster.gatewayUrl, pathForKey(key), { method: 'PUT', body: value });
      }
      expect(response.status, `PUT ${key}: ${response.body.toString()}`).toBe(204);
      acknowledged.set(key, value);
    });
  }

  /** Every replica has applied everything the leader committed (so a clean stop loses nothing). */
  async function waitForEveryReplicaToApply(): Promise<void> {
    const leader = await cluster.leaderOf('g1');
    const commitIndex = (await statusOf(cluster, leader)).commitIndex;
    for (const replica of cluster.group('g1')) {
      await waitFor(`${replica.replicaId} to apply up to ${commitIndex}`, async () => {
        return (await statusOf(cluster, replica)).appliedIndex >= commitIndex;
      });
    }
  }

  /**
   * Writes one key at a time until the newest segment of `replica` holds at least three entries
   * records and has room left for what a stop and a start append, so that "a record in the middle
   * of the newest segment" exists, and the segment is still the newest after the restart.
   */
  async function fillNewestSegment(replica: ReplicaProcess): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      const segments = await segmentsOf(replica, false);
      const newest = segments[segments.length - 1] as Segment;
      const entries = newest.records.filter((record) => record.type === RecordType.entries).length;
      if (entries >= 3 && newest.sizeBytes < segmentBytesMax - 2048) return;
      await writeKeys(1);
    }
    throw new Error(`the newest segment of ${replica.replicaId} never held three entries records`);
  }

  /** SIGTERM to every running replica of the group, as a clean stop; the gateway stays. */
  async function stopGroup(): Promise<void> {
    await Promise.all(
      cluster.group('g1').map(async (replica) => {
        const child = replica.child;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        cluster.signal(replica.replicaId, 'SIGTERM');
        await exited;
      }),
    );
  }

  /** The size of a replica's log file now, so that the lines of its next start can be read. */
  async function logSize(replica: ReplicaProcess): Promise<number> {
    try {
      return (await stat(replica.logFile)).size;
    } catch {
      return 0;
    }
  }

  async function logLinesSince(replica: ReplicaProcess, offset: number): Promise<LogLine[]> {
    const text = (await readFile(replica.logFile)).subarray(offset).toString('utf8');
    return text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  }

  /**
   * Starts every replica of the group again; answers how the damaged one's start ended (undefined
   * when it started) and where its log lines of this start begin.
   */
  async function startGroup(
    damaged: ReplicaProcess,
  ): Promise<{ failure: ProcessStartError | undefined; logOffset: number }> {
    const logOffset = await logSize(damaged);
    const healthy = cluster.group('g1').filter((replica) => replica !== damaged);
    const [failure] = await Promise.all([
      cluster.restart(damaged.replicaId).then(
        () => undefined,
        (error: unknown) => {
          if (error instanceof ProcessStartError) return error;
          throw error;
        },
      ),
      ...healthy.map((replica) => cluster.restart(replica.replicaId)),
    ]);
    return { failure, logOffset };
  }

  /**
   * The refusal the log's recovery gives for damage it does not take for a torn tail: exit 1, the
   * first line on stderr naming the file and the offset, and the same cause in the JSON log.
   */
  async function expectRefused(
    damaged: ReplicaProcess,
    start: { failure: ProcessStartError | undefined; logOffset: number },
    expected: { file: string; offset: number; reason: string },
  ): Promise<void> {
    const failure = start.failure;
    expect(failure, `${damaged.replicaId} started on a damaged log`).toBeInstanceOf(ProcessStartError);
    const error = failure as ProcessStartError;
    const cause =
      `raft-log: ${expected.file} is corrupt at offset ${expected.offset}: ${expected.reason}. ` +
      `The votes and entries this replica acknowledged cannot be trusted, so it must not take part again under its id: ` +
      `remove it from its group (DELETE /admin/members/${damaged.replicaId} on the leader), wipe ${damaged.dataDirectory}, ` +
      `and add it back under a new replica id with --join`;
    expect(error.exitCode, error.message).toBe(1);
    expect(error.startupCode).toBe('DATA_DIRECTORY_DAMAGED');
    expect(error.stderr.split('\n')[0]).toBe(`impulse-shard-node: ${cause} [DATA_DIRECTORY_DAMAGED]`);
    expect(error.message.split('\n')[0]).toBe(
      `${damaged.replicaId} exited during start-up (code 1): impulse-shard-node: ${cause} [DATA_DIRECTORY_DAMAGED]`,
    );
    const fatal = (await logLinesSince(damaged, start.logOffset)).filter((line) => line.level === 60);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({
      msg: 'shard-node: failed to start',
      code: 'DATA_DIRECTORY_DAMAGED',
      err: { type: 'StartupError' },
    });
    // pino's error serializer appends the cause's message (the log's own) after the refusal's.
    expect(String((fatal[0] as unknown as { err: { message: string } }).err.message).startsWith(cause)).toBe(
      true,
    );
  }

  /** The warning of a torn tail truncated at open, and nothing refused. */
  async function expectTornTailRepaired(
    damaged: ReplicaProcess,
    start: { failure: ProcessStartError | undefined; logOffset: number },
    expected: { file: string; offset: number; droppedBytes: number; reason: string },
  ): Promise<LogLine[]> {
    expect(start.failure?.message).toBeUndefined();
    const lines = await logLinesSince(damaged, start.logOffset);
    const torn = lines.filter((line) => line.msg === 'raft-log: truncated a torn tail');
    expect(torn).toHaveLength(1);
    expect(torn[0]).toMatchObject({
      level: 40,
      component: 'raft-log',
      file: expected.file,
      offsetBytes: expected.offset,
      droppedBytes: expected.droppedBytes,
      reason: expected.reason,
    });
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);
    return lines;
  }

  /** A linearizable GET of every acknowledged key and one scan, through the gateway. */
  async function expectEveryKeyThroughGateway(): Promise<void> {
    const wrong: string[] = [];
    await forEachConcurrently([...acknowledged.keys()], async (key) => {
      const response = await rawRequest(cluster.gatewayUrl, pathForKey(key));
      if (response.status !== 200 || !response.body.equals(acknowledged.get(key) as Buffer)) {
        wrong.push(`GET ${key}: ${response.status} ${response.body.toString('hex').slice(0, 80)}`);
      }
    });
    expect(wrong).toEqual([]);
    expect(await scanOf(cluster.gatewayUrl, '')).toEqual(expectedScan());
  }

  /** Every acknowledged key, in byte order, as a scan must give it: `key=hex of the value`. */
  function expectedScan(): string[] {
    const keys = [...acknowledged.keys()].sort((left, right) =>
      Buffer.compare(Buffer.from(left), Buffer.from(right)),
    );
    return keys.map((key) => `${key}=${(acknowledged.get(key) as Buffer).toString('hex')}`);
  }

  /** A whole scan, page by page (`query` is added to each page's query), as `key=hex of the value`. */
  async function scanOf(baseUrl: string, query: string): Promise<string[]> {
    const items: string[] = [];
    let token: string | null = null;
    do {
      const target: string = `/kv?limit=500${query}${token === null ? '' : `&continue=${token}`}`;
      const response = await rawRequest(baseUrl, target);
      expect(response.status, `${baseUrl}${target}: ${response.body.toString()}`).toBe(200);
      const page = response.json() as ScanPage;
      for (const item of page.items) items.push(`${item.key}=${valueOfItem(item).toString('hex')}`);
      token = page.next;
    } while (token !== null);
    return items;
  }

  /** A replica's own read paths, stale: every acknowledged key with its exact bytes, nothing else. */
  async function expectStaleReadsOn(replica: ReplicaProcess): Promise<void> {
    const wrong: string[] = [];
    await forEachConcurrently([...acknowledged.keys()], async (key) => {
      const response = await rawRequest(replica.url, `${pathForKey(key)}?consistency=stale`);
      if (response.status !== 200 || !response.body.equals(acknowledged.get(key) as Buffer)) {
        wrong.push(`stale GET ${key}: ${response.status} ${response.body.toString('hex').slice(0, 80)}`);
      }
    });
    expect(wrong, `stale reads on ${replica.replicaId}`).toEqual([]);
    expect(await scanOf(replica.url, '&consistency=stale'), `stale scan on ${replica.replicaId}`).toEqual(
      expectedScan(),
    );
  }

  /** Every running replica of the group, once it has applied what the leader committed. */
  async function expectStaleReadsOnEveryRunningReplica(): Promise<void> {
    await waitForEveryRunningReplicaToApply();
    for (const replica of runningReplicas()) await expectStaleReadsOn(replica);
  }

  function runningReplicas(): ReplicaProcess[] {
    return cluster
      .group('g1')
      .filter(
        (replica) =>
          replica.child !== undefined && replica.child.exitCode === null && replica.child.signalCode === null,
      );
  }

  async function waitForEveryRunningReplicaToApply(): Promise<void> {
    const leader = await cluster.leaderOf('g1');
    const commitIndex = (await statusOf(cluster, leader)).commitIndex;
    for (const replica of runningReplicas()) {
      await waitFor(`${replica.replicaId} to apply up to ${commitIndex}`, async () => {
        return (await statusOf(cluster, replica)).appliedIndex >= commitIndex;
      });
    }
  }

  /** The group elects a leader among its healthy replicas and takes new writes. */
  async function expectGroupServesWithout(damaged: ReplicaProcess): Promise<void> {
    const leader = await cluster.leaderOf('g1', 15_000, [damaged.replicaId]);
    expect(leader.replicaId).not.toBe(damaged.replicaId);
    await writeKeys(20);
    await expectEveryKeyThroughGateway();
  }

  /**
   * docs/replication.md, "A replica that lost its data": on the leader DELETE the old member, wipe
   * its data directory, start a new replica with --join under a new id, POST /admin/members, and
   * promote it once it caught up. The newcomer receives the leader's snapshot: its stale reads and
   * stale scan must hold every acknowledged value, byte for byte.
   */
  async function replace(damaged: ReplicaProcess): Promise<ReplicaProcess> {
    const leader = await cluster.leaderOf('g1', 15_000, [damaged.replicaId]);
    const leaderLogOffset = await logSize(leader);
    const removed = await rawRequest(leader.url, `/admin/members/${damaged.replicaId}`, {
      headers: cluster.adminHeaders(),
      method: 'DELETE',
    });
    expect(removed.status, removed.body.toString()).toBe(200);
    await cluster.retire(damaged.replicaId);
    await rm(damaged.dataDirectory, { recursive: true, force: true });
    const newcomer = await cluster.addReplica('g1');
    expect(newcomer.raftId).toBeGreaterThan(damaged.raftId);
    const added = await rawRequest(leader.url, '/admin/members', {
      headers: cluster.adminHeaders(),
      method: 'POST',
      body: JSON.stringify({
        replicaId: newcomer.replicaId,
        raftId: newcomer.raftId,
        url: newcomer.url,
        peerAddress: `${cluster.host}:${newcomer.peerPort}`,
      }),
    });
    expect(added.status, added.body.toString()).toBe(200);
    await waitFor(`the promotion of ${newcomer.replicaId}`, async () => {
      const response = await rawRequest(leader.url, `/admin/members/${newcomer.replicaId}/promote`, {
        headers: cluster.adminHeaders(),
        method: 'POST',
      });
      return response.status === 200;
    });
    await waitFor(`${newcomer.replicaId} to apply everything`, async () => {
      const target = (await statusOf(cluster, leader)).commitIndex;
      return (await statusOf(cluster, newcomer)).appliedIndex >= target;
    });
    const status = await statusOf(cluster, newcomer);
    expect(status.voters).toContain(newcomer.raftId);
    expect(status.voters).not.toContain(damaged.raftId);
    // It caught up from the leader's snapshot, not from entries: its log starts after one.
    expect(status.snapshotIndex).toBeGreaterThan(1);
    const metrics = (await rawRequest(newcomer.url, '/metrics')).body.toString();
    const installed = /^impulse_raft_snapshots_installed_total(?:\{[^}]*\})? (\d+)$/m.exec(metrics);
    expect(Number(installed?.[1] ?? 0), 'snapshots installed by the newcomer').toBeGreaterThanOrEqual(1);
    const sent = (await logLinesSince(leader, leaderLogOffset)).filter(
      (line) => line.msg === 'replica: sending snapshot' && line['to'] === newcomer.raftId,
    );
    expect(sent.length).toBeGreaterThanOrEqual(1);
    await expectStaleReadsOn(newcomer);
    return newcomer;
  }

  /**
   * The common script of a case: keys written and applied everywhere, a clean stop, the damage,
   * a start. Answers what `damage` returned and how the start went.
   */
  async function stopDamageStart<T>(
    damaged: ReplicaProcess,
    damage: (segments: Segment[]) => Promise<T>,
  ): Promise<{ damage: T; start: { failure: ProcessStartError | undefined; logOffset: number } }> {
    await writeKeys(keysPerCase);
    // A replica that joined in the previous case may hold fewer segments: a few more keys.
    for (let round = 0; (await segmentsOf(damaged, false)).length < segmentsMin; round++) {
      if (round === 10) throw new Error(`${damaged.replicaId} never held ${segmentsMin} segments`);
      await writeKeys(50);
    }
    await fillNewestSegment(damaged);
    await waitForEveryReplicaToApply();
    await stopGroup();
    const segments = await segmentsOf(damaged, true);
    expect(segments.length, `segments of ${damaged.replicaId}`).toBeGreaterThanOrEqual(segmentsMin);
    const done = await damage(segments);
    return { damage: done, start: await startGroup(damaged) };
  }

  /**
   * The replica a case damages: the oldest member but the keeper. A replaced replica leaves the
   * group, so each case damages a newer one (a founder first, then the newcomers of earlier cases,
   * whose logs start at the snapshot they received).
   */
  function oldestReplaceable(): ReplicaProcess {
    const candidates = cluster.group('g1').filter((replica) => replica.replicaId !== keeper);
    const oldest = candidates.sort((left, right) => left.raftId - right.raftId)[0];
    if (oldest === undefined) throw new Error('no replica to damage');
    return oldest;
  }

  /** After a refused start: nothing wrong anywhere, the group serves, the replica replaced. */
  async function expectRefusedThenReplaced(damaged: ReplicaProcess): Promise<void> {
    await expectGroupServesWithout(damaged);
    await expectStaleReadsOnEveryRunningReplica();
    await replace(damaged);
    // The replacement changed the group's membership; the gateway still finds and reads everything.
    expect(await scanOf(cluster.gatewayUrl, '')).toEqual(expectedScan());
  }

  /** After a repaired tail: the replica serves again by itself, nothing wrong anywhere. */
  async function expectBackByItself(damaged: ReplicaProcess): Promise<void> {
    await cluster.leaderOf('g1', 15_000);
    await expectEveryKeyThroughGateway();
    await writeKeys(20);
    await expectStaleReadsOnEveryRunningReplica();
    const status = await statusOf(cluster, damaged);
    expect(status.storageFault).toBeNull();
    expect(status.voters).toContain(damaged.raftId);
    expect((await rawRequest(damaged.url, '/readyz')).status).toBe(200);
  }

  it('1. a flipped byte in a record of a sealed segment: start refused naming the file, group serves, replica replaced', async () => {
    const damaged = oldestReplaceable();
    const { damage, start } = await stopDamageStart(damaged, async (segments) => {
      // A sealed segment that is neither the oldest nor the newest.
      const segment = segments[segments.length >> 1] as Segment;
      const record = middleEntriesRecord(segment);
      await flipByte(segment.file, middleOfPayload(record));
      return { file: segment.file, offset: record.offset };
    });
    await expectRefused(damaged, start, { ...damage, reason: 'record payload checksum mismatch' });
    await expectRefusedThenReplaced(damaged);
  });

  it('2a. a flipped byte in the last record of the newest segment: truncated as a torn tail, the replica serves by itself', async () => {
    const damaged = oldestReplaceable();
    const { damage, start } = await stopDamageStart(damaged, async (segments) => {
      const newest = segments[segments.length - 1] as Segment;
      const last = newest.records[newest.records.length - 1] as LogRecord;
      await flipByte(newest.file, middleOfPayload(last));
      return { file: newest.file, offset: last.offset, droppedBytes: newest.sizeBytes - last.offset };
    });
    await expectTornTailRepaired(damaged, start, { ...damage, reason: 'record payload checksum mismatch' });
    await expectBackByItself(damaged);
  });

  it('2b. a flipped byte in a record in the middle of the newest segment: start refused (a valid record follows), replica replaced', async () => {
    const damaged = oldestReplaceable();
    const { damage, start } = await stopDamageStart(damaged, async (segments) => {
      const newest = segments[segments.length - 1] as Segment;
      const record = middleEntriesRecord(newest);
      await flipByte(newest.file, middleOfPayload(record));
      return { file: newest.file, offset: record.offset, next: record.end };
    });
    await expectRefused(damaged, start, {
      file: damage.file,
      offset: damage.offset,
      reason: `record payload checksum mismatch, and a valid record follows at offset ${damage.next}`,
    });
    await expectRefusedThenReplaced(damaged);
  });

  it('3a. the newest segment cut in the middle of a record: truncated as a torn tail, the replica serves by itself', async () => {
    const damaged = cluster.replica(keeper);
    const { damage, start } = await stopDamageStart(damaged, async (segments) => {
      const newest = segments[segments.length - 1] as Segment;
      // A record in the middle, so that the cut also drops the entries records after it.
      const record = middleEntriesRecord(newest);
      const cut = middleOfPayload(record);
      await truncate(newest.file, cut);
      return { file: newest.file, offset: record.offset, droppedBytes: cut - record.offset };
    });
    const lines = await expectTornTailRepaired(damaged, start, {
      ...damage,
      reason: 'the file ends inside a record payload',
    });
    // The entries cut off were applied already: the state machine is ahead of the shortened log,
    // which start-up repairs by recording a snapshot at the applied index.
    expect(
      lines.find((line) => line.msg.startsWith('replica: the state machine is ahead of the log')),
    ).toMatchObject({
      level: 40,
      msg: 'replica: the state machine is ahead of the log (interrupted snapshot install); repairing the log',
    });
    await expectBackByItself(damaged);
  });

  it('3b. a sealed segment cut in the middle of a record: start refused naming the file, replica replaced', async () => {
    const damaged = oldestReplaceable();
    const { damage, start } = await stopDamageStart(damaged, async (segments) => {
      const segment = segments[segments.length >> 1] as Segment;
      const record = middleEntriesRecord(segment);
      await truncate(segment.file, middleOfPayload(record));
      return { file: segment.file, offset: record.offset };
    });
    await expectRefused(damaged, start, { ...damage, reason: 'the file ends inside a record payload' });
    await expectRefusedThenReplaced(damaged);
  });

  it('4a. a deleted sealed segment in the middle: start refused naming the next segment, replica replaced', async () => {
    const damaged = oldestReplaceable();
    const { damage, start } = await stopDamageStart(damaged, async (segments) => {
      const position = segments.length >> 1;
      const segment = segments[position] as Segment;
      await unlink(segment.file);
      return { file: (segments[position + 1] as Segment).file, sequence: segment.sequence };
    });
    await expectRefused(damaged, start, {
      file: damage.file,
      offset: 0,
      reason: `segment ${damage.sequence} is missing before it`,
    });
    await expectRefusedThenReplaced(damaged);
  });

  it('4c. the newest segment deleted: start refused (NEWEST names a later one), replica replaced', async () => {
    const damaged = oldestReplaceable();
    const { damage, start } = await stopDamageStart(damaged, async (segments) => {
      const newest = segments.at(-1) as Segment;
      await unlink(newest.file);
      return { newest: newest.sequence, left: (segments.at(-2) as Segment).sequence };
    });
    await expectRefused(damaged, start, {
      file: join(damaged.dataDirectory, 'raft', 'NEWEST'),
      offset: 0,
      reason: `it names segment ${damage.newest} as the newest made durable, but the newest left is segment ${damage.left}: the segments after it were lost (the log ends before entries this replica may have acknowledged)`,
    });
    await expectRefusedThenReplaced(damaged);
  });

  it('4b. a deleted first segment: start refused (entries missing before the next one), replica replaced', async () => {
    const damaged = oldestReplaceable();
    const { damage, start } = await stopDamageStart(damaged, async (segments) => {
      const [first, second] = segments as [Segment, Segment];
      await unlink(first.file);
      const firstEntries = second.records.find((record) => record.type === RecordType.entries);
      return { file: second.file, firstIndex: firstEntries?.firstIndex };
    });
    await expectRefused(damaged, start, {
      file: damage.file,
      offset: 0,
      reason: `the entries before index ${String(damage.firstIndex)} are missing (a deleted or lost segment)`,
    });
    await expectRefusedThenReplaced(damaged);
  });
});
