import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StartupError, createLogger } from '@impulse/common';
import type { ConfState, Entry } from '../../src/raft/index.js';
import { ReplicaStateMachine, encodeCommand } from '../../src/state-machine/index.js';
import { memoryImageFileName } from '../../src/state-machine/memory-image.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const noConfStates = new Map<number, ConfState>();
const founding: ConfState = {
  voters: [1, 2, 3],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};

function put(index: number, key: string, value: string | Buffer, requestId = ''): Entry {
  return {
    index,
    term: 2,
    type: 'normal',
    data: encodeCommand({
      operation: 'put',
      requestId: Buffer.from(requestId),
      key,
      value: Buffer.from(value),
    }),
  };
}

/**
 * The memory engine keeps nothing across a restart; its state machine keeps an image of itself
 * wherever LevelDB's is made durable, and loads it when it opens (finding 3 of issue 19).
 */
describe('the memory-engine state machine image', () => {
  let directory: string;
  const opened: ReplicaStateMachine[] = [];
  const open = async (): Promise<ReplicaStateMachine> => {
    const stateMachine = await ReplicaStateMachine.open({ directory, engine: 'memory', logger });
    opened.push(stateMachine);
    return stateMachine;
  };
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-memory-image-'));
  });
  afterEach(async () => {
    for (const stateMachine of opened.splice(0)) await stateMachine.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('is written when the group is founded, so that a restart knows the founding configuration', async () => {
    const stateMachine = await open();
    await stateMachine.bootstrap(founding);
    await stateMachine.close();
    const reopened = await open();
    expect(reopened.appliedIndex).toBe(1);
    expect(reopened.confState).toEqual(founding);
  });

  it('brings back, at sync(), the state and request ids as they were; later writes need the log', async () => {
    const stateMachine = await open();
    await stateMachine.bootstrap(founding);
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const entries = [put(2, 'big', big, 'req-big')];
    for (let index = 3; index < 2000; index++)
      entries.push(put(index, `key-${index}`, `value-${index}`, `req-${index}`));
    await stateMachine.apply(entries, noConfStates);
    await stateMachine.sync();
    await stateMachine.apply([put(2000, 'after-sync', 'x')], noConfStates);
    await stateMachine.close();

    const reopened = await open();
    expect(reopened.appliedIndex).toBe(1999);
    expect(reopened.appliedTerm).toBe(2);
    expect(reopened.confState).toEqual(founding);
    expect((await reopened.get('big'))?.equals(big)).toBe(true);
    expect((await reopened.get('key-1234'))?.toString()).toBe('value-1234');
    // Not in the image: the replica replays it from the log, which was not compacted past it.
    expect(await reopened.get('after-sync')).toBeUndefined();
    const retried = await reopened.apply([put(2000, 'key-3', 'again', 'req-3')], noConfStates);
    expect(retried[0]?.outcome).toBe('duplicate');
  });

  it('is written when a snapshot from the leader is installed', async () => {
    const leader = await ReplicaStateMachine.open({
      directory: join(directory, 'leader'),
      engine: 'memory',
      logger,
    });
    opened.push(leader);
    await leader.apply([put(1, 'from-leader', 'yes')], noConfStates);
    const follower = await open();
    const snapshot = await leader.openSnapshot();
    const install = await follower.beginInstall();
    for await (const chunk of snapshot.chunks()) await install.write(chunk);
    await snapshot.close();
    await follower.install(install);
    await follower.close();
    const reopened = await open();
    expect(reopened.appliedIndex).toBe(1);
    expect((await reopened.get('from-leader'))?.toString()).toBe('yes');
  });

  it('is never replaced by an older one written later (a background write behind an install)', async () => {
    const stateMachine = await open();
    await stateMachine.apply([put(1, 'k', 'old')], noConfStates);
    const older = await stateMachine.openSnapshot();
    await stateMachine.apply([put(2, 'k', 'new')], noConfStates);
    await stateMachine.sync();
    await stateMachine.writeImage(older);
    await older.close();
    await stateMachine.close();
    const reopened = await open();
    expect(reopened.appliedIndex).toBe(2);
    expect((await reopened.get('k'))?.toString()).toBe('new');
  });

  it('is refused when damaged, rather than starting from part of a state', async () => {
    const stateMachine = await open();
    await stateMachine.bootstrap(founding);
    await stateMachine.apply([put(2, 'k', 'v')], noConfStates);
    await stateMachine.sync();
    await stateMachine.close();
    const path = join(directory, memoryImageFileName);
    const image = readFileSync(path);
    const damage = async (bytes: Buffer): Promise<string> => {
      writeFileSync(path, bytes);
      try {
        await open();
      } catch (error) {
        expect(error).toBeInstanceOf(StartupError);
        expect((error as StartupError).code).toBe('DATA_DIRECTORY_DAMAGED');
        return (error as Error).message;
      }
      throw new Error('a damaged image was loaded');
    };
    const flipped = Buffer.from(image);
    flipped[20] = (flipped[20] as number) ^ 0xff;
    expect(await damage(flipped)).toMatch(/checksum mismatch/);
    expect(await damage(image.subarray(0, image.length - 8))).toMatch(/truncated/);
    expect(await damage(Buffer.concat([image, Buffer.from([0])]))).toMatch(/bytes after the end frame/);
    expect(await damage(Buffer.from('IMPMEM99'))).toMatch(/magic/);
    writeFileSync(path, image);
    expect((await open()).appliedIndex).toBe(2);
  });
});
