import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pathForKey } from '@impulse/common';
import {
  LocalCluster,
  ProcessStartError,
  foundedFileName,
  type LocalClusterOptions,
  type ReplicaProcess,
} from '@impulse/local-cluster';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { waitFor } from '../support/wait-for.js';

/**
 * Issue 20, finding 3: "a group re-founded empty". Any empty data directory used to be founded as
 * a new group: with the whole data directory of two of a group's three replicas deleted, the two
 * empty replicas founded the group again at term 1, elected a leader between them, and every
 * acknowledged key answered 404. A group is now founded once (docs/decisions/0009): the launcher
 * passes --bootstrap on a data root's first start only, and a replica with no Raft state that is
 * neither founding nor joining refuses to start.
 */

interface Status {
  role: string;
  appliedIndex: number;
  commitIndex: number;
  keyCount: number;
}

/** A replica's status, asked with the admin token of its cluster. */
async function statusOf(cluster: LocalCluster, replica: ReplicaProcess): Promise<Status> {
  return (
    await rawRequest(replica.url, '/admin/status', { headers: cluster.adminHeaders(), timeoutMs: 2000 })
  ).json() as Status;
}

/** Founding, catching up and promoting take longer than the usual wait on a loaded machine. */
const foundingWaitMs = 30_000;

const keyCount = 60;
const keys = Array.from({ length: keyCount }, (_, index) => `founded-${index}`);
const valueOf = (key: string): string => `value of ${key}`;

/** The first line a refused replica printed on stderr, as the launcher relays it. */
const refusedAsEmpty =
  /^.*g1-r\d exited during start-up \(code 2\): impulse-shard-node: data directory .*g1-r\d holds no Raft state: starting would found group g1 again, with no data\. On the group's first start, pass --bootstrap; a replica that lost its data must be removed from its group \(DELETE \/admin\/members\/g1-r\d on the leader\) and added back under a new replica id with --join \[DATA_DIRECTORY_EMPTY\]$/;

describe('a group is founded once (issue 20, finding 3)', () => {
  let cluster: LocalCluster | undefined;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>> | undefined;

  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
    await directory?.remove();
    directory = undefined;
  });

  /** A first start (founding), the keys written and acknowledged, then a clean stop. */
  async function foundAndFill(): Promise<LocalClusterOptions> {
    directory = await temporaryDirectory('founding');
    const options: LocalClusterOptions = {
      groups: 1,
      replicasPerGroup: 3,
      engine: 'leveldb',
      dataDirectory: directory.path,
      logLevel: 'info',
      // Later starts keep the replicas that start running when others are refused, as npm start does.
      replicaStartFailures: 'tolerate',
      gatewayArguments: ['--request-deadline=3s', '--upstream-timeout=1s'],
    };
    const running = await LocalCluster.start(options);
    cluster = running;
    expect(cluster.bootstrappedReplicas.sort()).toEqual(['g1-r1', 'g1-r2', 'g1-r3']);
    const record = JSON.parse(readFileSync(join(directory.path, foundedFileName), 'utf8')) as {
      replicas: string[];
    };
    expect(record.replicas).toEqual(['g1-r1', 'g1-r2', 'g1-r3']);
    await cluster.leaderOf('g1');
    for (const key of keys) {
      const answer = await rawRequest(cluster.gatewayUrl, pathForKey(key), {
        method: 'PUT',
        body: valueOf(key),
      });
      expect(answer.status, `PUT ${key}: ${answer.body.toString()}`).toBe(204);
    }
    // Every replica holds every key before the stop: an acknowledged write may otherwise be on
    // the leader and one follower only, and a test that deletes two replicas would delete it.
    const leader = await cluster.leaderOf('g1');
    const commitIndex = (await statusOf(running, leader)).commitIndex;
    for (const replica of cluster.group('g1')) {
      await waitFor(
        `${replica.replicaId} to apply every write`,
        async () => {
          const status = await statusOf(running, replica);
          return status.appliedIndex >= commitIndex && status.keyCount === keyCount;
        },
        foundingWaitMs,
      );
    }
    await cluster.stop();
    cluster = undefined;
    return options;
  }

  function wipe(replicaId: string): void {
    rmSync(join(directory?.path ?? '', 'g1', replicaId), { recursive: true });
  }

  function expectRefusedAsEmpty(started: LocalCluster, replicaIds: readonly string[]): void {
    expect(started.bootstrappedReplicas, 'a later start never passes --bootstrap').toEqual([]);
    expect(started.startFailures.map((failure) => failure.replica.replicaId).sort()).toEqual(replicaIds);
    for (const failure of started.startFailures) {
      expect(failure.error).toBeInstanceOf(ProcessStartError);
      const error = failure.error as ProcessStartError;
      expect(error.exitCode, error.message).toBe(2);
      expect(error.startupCode).toBe('DATA_DIRECTORY_EMPTY');
      expect(error.message.split('\n')[0]).toMatch(refusedAsEmpty);
    }
  }

  it('refuses a replica whose data directory was deleted; the other two serve every key, and it is added back under a new id', async () => {
    const options = await foundAndFill();
    wipe('g1-r1');
    cluster = await LocalCluster.start(options);
    expectRefusedAsEmpty(cluster, ['g1-r1']);
    const started = cluster;
    // The two others elect a leader between them (a majority of three).
    await started.leaderOf('g1');
    for (const key of keys) {
      const answer = await rawRequest(started.gatewayUrl, pathForKey(key));
      expect(answer.status, `GET ${key}: ${answer.body.toString()}`).toBe(200);
      expect(answer.body.toString()).toBe(valueOf(key));
    }

    // The repair the refusal names: remove the lost replica, add a new one (a new id) that joins.
    const leader = await started.leaderOf('g1');
    const removed = await rawRequest(leader.url, '/admin/members/g1-r1', {
      method: 'DELETE',
      headers: started.adminHeaders(),
    });
    expect(removed.status, removed.body.toString()).toBe(200);
    await started.retire('g1-r1');
    const newcomer = await started.addReplica('g1');
    expect(newcomer.replicaId).toBe('g1-r4');
    const added = await rawRequest(leader.url, '/admin/members', {
      method: 'POST',
      headers: started.adminHeaders(),
      body: JSON.stringify({
        replicaId: newcomer.replicaId,
        raftId: newcomer.raftId,
        url: newcomer.url,
        peerAddress: `${started.host}:${newcomer.peerPort}`,
      }),
    });
    expect(added.status, added.body.toString()).toBe(200);
    await waitFor(
      'the promotion of the caught-up newcomer',
      async () => {
        const response = await rawRequest(leader.url, `/admin/members/${newcomer.replicaId}/promote`, {
          method: 'POST',
          headers: started.adminHeaders(),
        });
        return response.status === 200;
      },
      foundingWaitMs,
    );
    await waitFor(
      'the newcomer to apply everything',
      async () => {
        const target = (await statusOf(started, leader)).commitIndex;
        return (await statusOf(started, newcomer)).appliedIndex >= target;
      },
      foundingWaitMs,
    );
    for (const key of keys) {
      const answer = await rawRequest(newcomer.url, `${pathForKey(key)}?consistency=stale`);
      expect(answer.status, `stale GET ${key} on ${newcomer.replicaId}`).toBe(200);
      expect(answer.body.toString()).toBe(valueOf(key));
    }
  });

  it('a wiped replica started with --join under its old id takes no snapshot and casts no vote, and says why', async () => {
    const options = await foundAndFill();
    wipe('g1-r1');
    cluster = await LocalCluster.start(options);
    expectRefusedAsEmpty(cluster, ['g1-r1']);
    const started = cluster;
    const lost = started.replica('g1-r1');
    const logBefore = readFileSync(lost.logFile, 'utf8').length;
    // The careless repair: the same id, told to join. Its log is empty, so a vote from it would be
    // "up to date" for any candidate, and could be its second in a term it voted in before.
    await started.restart('g1-r1', ['--join']);
    await waitFor(
      'the refusal of the reused id',
      async () => {
        const ready = await rawRequest(lost.url, '/readyz');
        return ready.status === 503 && errorCodeOf(ready) === 'NOT_READY';
      },
      foundingWaitMs,
    );
    const ready = await rawRequest(lost.url, '/readyz');
    expect(ready.json()).toMatchObject({
      error: {
        message: expect.stringMatching(
          /is a voter of group g1, but started with no Raft log: it lost its data/,
        ) as unknown,
      },
    });
    const line = readFileSync(lost.logFile, 'utf8')
      .slice(logBefore)
      .split('\n')
      .find((text) => text.includes('REPLICA_ID_REUSED'));
    expect(line, 'the refusal log line').toBeDefined();
    expect(JSON.parse(line as string)).toMatchObject({ level: 50, code: 'REPLICA_ID_REUSED' });
    // It holds no log and no state, and the group serves every key on the two others, through
    // leader changes: a transfer makes the other replica campaign, and the lost one's vote is not needed.
    const status = await statusOf(started, lost);
    expect(status).toMatchObject({ appliedIndex: 0 });
    expect((status as unknown as { lastIndex: number }).lastIndex).toBe(0);
    const leader = await started.leaderOf('g1');
    const other = started.group('g1').find((replica) => replica !== lost && replica !== leader);
    if (other === undefined) throw new Error('no other replica');
    const transferred = await rawRequest(leader.url, '/admin/transfer-leadership', {
      method: 'POST',
      headers: started.adminHeaders(),
      body: JSON.stringify({ to: other.replicaId }),
    });
    expect(transferred.status, transferred.body.toString()).toBeLessThan(300);
    await waitFor(
      'the transfer',
      async () => (await statusOf(started, other)).role === 'leader',
      foundingWaitMs,
    );
    for (const key of keys) {
      const answer = await rawRequest(started.gatewayUrl, pathForKey(key));
      expect(answer.status, `GET ${key}: ${answer.body.toString()}`).toBe(200);
      expect(answer.body.toString()).toBe(valueOf(key));
    }
    expect((await statusOf(started, lost)).appliedIndex).toBe(0);
    const voteLines = readFileSync(lost.logFile, 'utf8')
      .slice(logBefore)
      .split('\n')
      .filter((text) => text.includes('raft: cast MsgVote') || text.includes('raft: cast MsgPreVote'));
    expect(voteLines).toEqual([]);
  });

  it('refuses two replicas whose data directories were deleted; the survivor serves no empty group and keeps every key', async () => {
    const options = await foundAndFill();
    wipe('g1-r1');
    wipe('g1-r2');
    cluster = await LocalCluster.start(options);
    expectRefusedAsEmpty(cluster, ['g1-r1', 'g1-r2']);
    const started = cluster;
    const survivor = started.replica('g1-r3');

    // No key answers 404: the group has no majority, so every read fails as unavailable.
    const reads = await Promise.all(keys.map((key) => rawRequest(started.gatewayUrl, pathForKey(key))));
    for (const [index, answer] of reads.entries()) {
      expect([503, 504], `GET ${keys[index]}: ${answer.status} ${answer.body.toString()}`).toContain(
        answer.status,
      );
    }
    const write = await rawRequest(started.gatewayUrl, pathForKey('after-the-loss'), {
      method: 'PUT',
      body: 'nowhere',
    });
    expect([503, 504]).toContain(write.status);

    // The survivor holds every key, and does not lead a group of one.
    const status = await statusOf(started, survivor);
    expect(status.role).not.toBe('leader');
    expect(status.keyCount).toBe(keyCount);
    for (const key of keys) {
      const answer = await rawRequest(survivor.url, `${pathForKey(key)}?consistency=stale`);
      expect(answer.status, `stale GET ${key} on the survivor`).toBe(200);
      expect(answer.body.toString()).toBe(valueOf(key));
    }

    // Adding the lost replicas back under new ids is a membership change, which needs a leader and
    // so a majority: with one voter of three left it is refused, and the survivor's data stays as
    // it is (docs/replication.md, "A replica that lost its data").
    const newcomer = await started.addReplica('g1');
    const added = await rawRequest(survivor.url, '/admin/members', {
      method: 'POST',
      headers: started.adminHeaders(),
      body: JSON.stringify({
        replicaId: newcomer.replicaId,
        raftId: newcomer.raftId,
        url: newcomer.url,
        peerAddress: `${started.host}:${newcomer.peerPort}`,
      }),
    });
    expect(added.status, added.body.toString()).toBe(421);
    expect(errorCodeOf(added)).toBe('NOT_LEADER');
    // Several election timeouts later, still no leader anywhere and every key kept.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    for (const replica of [survivor, newcomer]) {
      expect((await statusOf(started, replica)).role, replica.replicaId).not.toBe('leader');
    }
    expect((await statusOf(started, survivor)).keyCount).toBe(keyCount);
    const again = await rawRequest(started.gatewayUrl, pathForKey(keys[0] as string));
    expect([503, 504]).toContain(again.status);
  });
});
