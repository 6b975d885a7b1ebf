import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@impulse/common';
import type { ConfState, Entry } from '../../src/raft/index.js';
import { ReplicaStateMachine, encodeCommand } from '../../src/state-machine/index.js';
import { transferSnapshot } from './snapshot-transfer.js';
import { NodeEngine, type NodeEngineObserver } from '../../src/storage/index.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const noConfStates = new Map<number, ConfState>();

function put(index: number, key: string, value: string, term = 1): Entry {
  return {
    index,
    term,
    type: 'normal',
    data: encodeCommand({ operation: 'put', requestId: Buffer.alloc(0), key, value: Buffer.from(value) }),
  };
}

/**
 * The state machines of a node's groups share the node's engine (decision 0019): each generation
 * is a prefix of it, and `GENERATION` in the state machine's folder names the live one.
 */
describe('state machine generations in a node engine', () => {
  let root: string;
  let engine: NodeEngine;
  const writes: number[] = [];
  const observer: NodeEngineObserver = { onWrite: (batches) => writes.push(batches), onFlush: () => {} };
  const opened: ReplicaStateMachine[] = [];

  const open = async (group: string, options: { folders?: boolean } = {}): Promise<ReplicaStateMachine> => {
    const stateMachine = await ReplicaStateMachine.open({
      directory: join(root, group),
      engine: 'leveldb',
      logger,
      ...(options.folders === true ? {} : { generationSpace: engine.space(group) }),
    });
    opened.push(stateMachine);
    return stateMachine;
  };

  const close = async (stateMachine: ReplicaStateMachine): Promise<void> => {
    opened.splice(opened.indexOf(stateMachine), 1);
    await stateMachine.close();
  };

  const pointer = async (group: string): Promise<string> =>
    (await readFile(join(root, group, 'GENERATION'))).toString('utf8');

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-node-engine-sm-'));
    engine = await NodeEngine.open({ directory: join(root, 'engine'), observer });
    writes.length = 0;
  });
  afterEach(async () => {
    for (const stateMachine of opened.splice(0)) await stateMachine.close();
    await engine.close();
    await rm(root, { recursive: true, force: true });
  });

  it("applies the batches of several groups in one round as one LevelDB write, each group's state its own", async () => {
    const groups = await Promise.all(['g1', 'g2', 'g3'].map((group) => open(group)));
    writes.length = 0;
    await Promise.all(
      groups.map((stateMachine, index) => stateMachine.apply([put(1, 'k', `v${index}`)], noConfStates)),
    );
    expect(writes).toEqual([3]);
    for (const [index, stateMachine] of groups.entries()) {
      expect((await stateMachine.get('k'))?.toString()).toBe(`v${index}`);
      expect(stateMachine.appliedIndex).toBe(1);
    }
    expect(await engine.storedGroups()).toEqual(['g1', 'g2', 'g3']);
  });

  it('installs a snapshot as the next generation and deletes the previous one; a restart finds it', async () => {
    const leader = await open('g1');
    await leader.apply([put(1, 'new', 'new', 2), put(2, 'newer', 'newer', 2)], noConfStates);
    const follower = await open('g2');
    await follower.apply([put(1, 'stale', 'stale')], noConfStates);
    expect(await pointer('g2')).toBe('1\n');
    await transferSnapshot(leader, follower);
    expect(await pointer('g2')).toBe('2\n');
    expect(await engine.space('g2').generations()).toEqual([2]);
    expect(await follower.get('stale')).toBeUndefined();
    expect((await readdir(join(root, 'g2'))).filter((name) => name.startsWith('sm-'))).toEqual([]);
    await close(follower);
    const reopened = await open('g2');
    expect(reopened.appliedIndex).toBe(2);
    expect((await reopened.get('newer'))?.toString()).toBe('newer');
  });

  it('keeps the old state when a crash interrupts an install, and deletes the half-built generation', async () => {
    const leader = await open('g1');
    await leader.apply([put(1, 'new', 'new')], noConfStates);
    const follower = await open('g2');
    await follower.apply([put(1, 'old', 'old')], noConfStates);
    const snapshot = await leader.openSnapshot();
    const install = await follower.beginInstall();
    for await (const chunk of snapshot.chunks()) await install.write(chunk);
    await snapshot.close();
    expect(await engine.space('g2').generations()).toEqual([1, 2]);
    // The process dies before install() (nor is the install aborted): GENERATION still names
    // generation 1.
    await close(follower);
    const reopened = await open('g2');
    expect((await reopened.get('old'))?.toString()).toBe('old');
    expect(await reopened.get('new')).toBeUndefined();
    expect(await engine.space('g2').generations()).toEqual([1]);
  });

  it('deletes the generation of an abandoned install', async () => {
    const leader = await open('g1');
    await leader.apply([put(1, 'new', 'new')], noConfStates);
    const follower = await open('g2');
    const snapshot = await leader.openSnapshot();
    const install = await follower.beginInstall();
    for await (const chunk of snapshot.chunks()) await install.write(chunk);
    await snapshot.close();
    expect(await engine.space('g2').generations()).toEqual([1, 2]);
    await install.abort();
    // In the background; closing waits for it.
    await close(follower);
    expect(await engine.space('g2').generations()).toEqual([1]);
  });

  it('deletes what an earlier replica of the group left when a new state machine is created', async () => {
    const earlier = await open('g1');
    await earlier.apply([put(1, 'left', 'behind')], noConfStates);
    await close(earlier);
    // The replica's folder is removed (the replica left this node), its keys not yet.
    await rm(join(root, 'g1'), { recursive: true, force: true });
    const fresh = await open('g1');
    expect(fresh.appliedIndex).toBe(0);
    expect(await fresh.get('left')).toBeUndefined();
    expect(fresh.fault).toBeUndefined();
  });

  it('opens faulted (lost) when GENERATION names a generation that has no keys', async () => {
    const stateMachine = await open('g1');
    await stateMachine.apply([put(1, 'k', 'v')], noConfStates);
    await close(stateMachine);
    await writeFile(join(root, 'g1', 'GENERATION'), '3\n');
    const reopened = await open('g1');
    expect(reopened.fault?.kind).toBe('lost');
    expect(reopened.fault?.message).toMatch(/generation 3/);
    expect(await engine.space('g1').generations()).toEqual([]);
  });

  it('refuses to open in folders a state machine that lives in the node engine (the move is one-way)', async () => {
    await close(await open('g1'));
    await expect(open('g1', { folders: true })).rejects.toMatchObject({
      code: 'DATA_DIRECTORY_FORMAT_UNSUPPORTED',
    });
  });

  it('refuses a corrupt GENERATION', async () => {
    await close(await open('g1'));
    await writeFile(join(root, 'g1', 'GENERATION'), 'sm-000001\n');
    await expect(open('g1')).rejects.toThrow(/GENERATION is corrupt/);
  });

  it('moves a state machine kept in folders (decision 0011) into the node engine, once', async () => {
    const leader = await open('g1');
    const entries: Entry[] = [];
    for (let index = 1; index <= 2500; index++) entries.push(put(index, `key-${index}`, `value-${index}`));
    await leader.apply(entries, noConfStates);
    const inFolders = await open('g2', { folders: true });
    await inFolders.apply([put(1, 'gone', 'gone')], noConfStates);
    // An install makes generation 2, named by CURRENT: the move must follow the pointer.
    await transferSnapshot(leader, inFolders);
    await close(inFolders);
    expect((await readdir(join(root, 'g2'))).sort()).toEqual(['CURRENT', 'sm-000002']);
    // A crash during an earlier move left part of a copy, and no GENERATION.
    await engine.space('g2').engineOf(1).put(Buffer.from('d:partial'), Buffer.from('x'));

    const moved = await open('g2');
    expect(moved.fault).toBeUndefined();
    expect(moved.appliedIndex).toBe(2500);
    expect((await moved.get('key-2500'))?.toString()).toBe('value-2500');
    expect(await moved.get('gone')).toBeUndefined();
    expect((await readdir(join(root, 'g2'))).sort()).toEqual(['GENERATION']);
    expect(await engine.space('g2').generations()).toEqual([1]);
    const scanned: string[] = [];
    for await (const entry of moved.scan({ start: Buffer.from('key-1'), end: Buffer.from('key-2') }, 5)) {
      scanned.push(entry.key.toString());
    }
    expect(scanned).toEqual(['key-1', 'key-10', 'key-100', 'key-1000', 'key-1001']);
  });
});
