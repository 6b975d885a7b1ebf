import type * as FileSystem from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Replica } from '../../src/replica/index.js';
import { RaftLogStore } from '../../src/raft-log/index.js';
import { ReplicaStateMachine } from '../../src/state-machine/index.js';
import { LevelDbEngine } from '../../src/storage/index.js';
import { PowerLossEngine } from '../state-machine/power-loss-engine.js';
import type { MemberSpec } from '../../src/replica/index.js';
import {
  freePorts,
  memberSpec,
  silentLogger,
  startReplica,
  untilLeading,
  waitFor,
  writeToGroup,
} from './harness.js';

/** Every path fsynced through `node:fs/promises`, in order (see the mock below). */
const fsynced = vi.hoisted(() => [] as string[]);

// Records each fsync with the path its handle was opened on: which directories were made durable
// shows nowhere else short of cutting the power.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FileSystem>();
  const open: typeof actual.open = async (...args) => {
    const handle = await actual.open(...args);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      fsynced.push(String(args[0]));
      await sync();
    };
    return handle;
  };
  return { ...actual, default: { ...actual, open }, open };
});

/**
 * Issue 11, item 1: what a replica has made durable before its Raft log is compacted behind the
 * state machine. Batches are applied to the engine without fsync (the log can replay them); once
 * the log is compacted it no longer can, so the engine must have been made durable first.
 */
const confStateOf = (members: readonly MemberSpec[]) => ({
  voters: members.map((member) => member.raftId),
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

describe('durability before compaction', () => {
  let directory: string;
  const running: Replica[] = [];

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-durability-'));
    fsynced.length = 0;
  });
  afterEach(async () => {
    for (const replica of running.splice(0)) await replica.stop();
    await rm(directory, { recursive: true, force: true });
  });

  /** A group of one on LevelDB whose engine knows what a power cut would leave of it. */
  async function startWatched(): Promise<{ replica: Replica; engine: () => PowerLossEngine }> {
    const self = memberSpec(1);
    let engine: PowerLossEngine | undefined;
    const replica = await startReplica(self, [self], directory, {
      wrapEngine: (inner) => (engine = new PowerLossEngine(inner)),
    });
    running.push(replica);
    await untilLeading(replica);
    return { replica, engine: () => engine as PowerLossEngine };
  }

  async function writeKeys(replica: Replica, count: number): Promise<void> {
    for (let index = 0; index < count; index++) {
      await replica.write({
        operation: 'put',
        requestId: Buffer.from(`request-${index}`),
        key: `key-${index}`,
        value: Buffer.from(`value-${index}`),
      });
    }
  }

  /**
   * Stops the replica, cuts the power (the engine keeps what it made durable, nothing else; the
   * Raft log fsyncs every write before acknowledging it, so it keeps everything), restarts it and
   * reads every key written.
   */
  async function expectEveryKeyAfterPowerCut(replica: Replica, survivor: PowerLossEngine, count: number) {
    await replica.stop();
    running.splice(0);
    const generation = join(directory, 'state', 'sm-000001');
    await rm(generation, { recursive: true, force: true });
    const rebuilt = await LevelDbEngine.open({ directory: generation, sync: true });
    await rebuilt.batch(
      [...survivor.durable].map(([key, value]) => ({ type: 'put', key: Buffer.from(key, 'latin1'), value })),
    );
    await rebuilt.close();

    const self = memberSpec(1);
    const restarted = await startReplica(self, [self], directory);
    running.push(restarted);
    expect(restarted.fault).toBeUndefined();
    await untilLeading(restarted);
    for (let index = 0; index < count; index++) {
      const value = await restarted.read(`key-${index}`, 'linearizable');
      expect(value?.toString(), `key-${index}`).toBe(`value-${index}`);
    }
  }

  it('loses no applied write in a power cut after the log was compacted (the engine synced first)', async () => {
    const { replica, engine } = await startWatched();
    const written = 100;
    await writeKeys(replica, written);
    // The premise: the log was compacted, so it cannot replay the early writes any more.
    expect(replica.status().firstIndex).toBeGreaterThan(50);
    await expectEveryKeyAfterPowerCut(replica, engine(), written);
  });

  it('syncs the engine before a compaction the node asks for too (compactNow), and never past the applied index', async () => {
    const { replica, engine } = await startWatched();
    // Fewer than snapshotEntries (20): the replica would not compact on its own.
    const written = 10;
    await writeKeys(replica, written);
    const { appliedIndex, lastIndex, firstIndex } = replica.status();
    expect(firstIndex).toBe(2);
    expect(appliedIndex).toBe(lastIndex);
    await expect(replica.compactNow(appliedIndex + 1)).resolves.toBe('behind');
    expect(replica.status().firstIndex).toBe(2);
    await expect(replica.compactNow(appliedIndex - 2)).resolves.toBe('compacted');
    // Through the index asked, though the snapshotCatchUpEntries (5) would keep it; the snapshot
    // is at the applied index.
    expect(replica.status()).toMatchObject({ snapshotIndex: appliedIndex, firstIndex: appliedIndex - 1 });
    await expect(replica.compactNow(appliedIndex)).resolves.toBe('compacted');
    expect(replica.status().firstIndex).toBe(appliedIndex + 1);
    await expectEveryKeyAfterPowerCut(replica, engine(), written);
  });

  it('raises a commit index that a crash left behind the state machine, so a compaction never lies past it', async () => {
    const members = (await freePorts(3)).map((port, position) => memberSpec(position + 1, port));
    const group = new Map<number, Replica>();
    const folder = (raftId: number): string => join(directory, `r${raftId}`);
    for (const member of members)
      group.set(member.raftId, await startReplica(member, members, folder(member.raftId)));
    running.push(...group.values());
    for (let index = 0; index < 10; index++)
      await writeToGroup(group, `key-${index}`, Buffer.from(`value-${index}`));
    const first = group.get(1) as Replica;
    await waitFor('replica 1 applied every write', () =>
      first.status().appliedIndex >= 11 ? true : undefined,
    );
    for (const replica of running.splice(0)) await replica.stop();
    // A commit index alone is written without an fsync: a crash can lose it while the state
    // machine keeps what it applied. Here replica 1's commit is set back as such a crash leaves it.
    const log = await RaftLogStore.open({
      directory: join(folder(1), 'raft'),
      confState: confStateOf(members),
    });
    await log.setHardState({ ...log.hardState(), commit: 3 });
    await log.close();

    // Replica 1 alone: no election can commit anything, so what it starts with is what it keeps.
    const alone = await startReplica(members[0] as MemberSpec, members, folder(1));
    running.push(alone);
    const restarted = alone.status();
    expect(restarted.appliedIndex).toBeGreaterThanOrEqual(11);
    expect(restarted.commitIndex).toBe(restarted.appliedIndex);
    // A compaction at the applied index, then a restart: the snapshot is not past the commit.
    await expect(alone.compactNow(restarted.appliedIndex)).resolves.toBe('compacted');
    await alone.stop();
    running.splice(0);
    const again = await startReplica(members[0] as MemberSpec, members, folder(1));
    running.push(again);
    expect(again.status()).toMatchObject({
      snapshotIndex: restarted.appliedIndex,
      commitIndex: restarted.appliedIndex,
    });
  });

  it('fsyncs the folders that hold the state directory and each engine generation it creates', async () => {
    const state = join(directory, 'replica', 'state');
    const stateMachine = await ReplicaStateMachine.open({
      directory: state,
      engine: 'leveldb',
      logger: silentLogger,
    });
    try {
      // The data directory holds `state/`, which holds the generation `sm-000001`.
      expect(fsynced).toEqual(expect.arrayContaining([join(directory, 'replica'), state]));
      fsynced.length = 0;
      const install = await stateMachine.beginInstall();
      await install.abort();
      expect(fsynced).toContain(state);
    } finally {
      await stateMachine.close();
    }
  });
});
