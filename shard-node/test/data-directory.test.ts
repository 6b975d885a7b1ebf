import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StartupError, createLogger } from '@impulse/common';
import { DataDirectory, type DataDirectoryIdentity } from '../src/data-directory.js';

const logger = createLogger({ service: 'test', level: 'silent' });
const identity: DataDirectoryIdentity = {
  clusterId: 'impulse',
  groupId: 'g1',
  replicaId: 'g1-r1',
  raftId: 1,
  engine: 'leveldb',
};

/** Every file under `path` with a hash of its bytes. */
function treeOf(path: string): string[] {
  return readdirSync(path, { recursive: true, encoding: 'utf8' })
    .sort()
    .map((name) => {
      const full = join(path, name);
      return statSync(full).isDirectory()
        ? `${name}/`
        : `${name} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
    });
}

async function refusalOf(run: () => Promise<unknown>): Promise<StartupError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof StartupError) return error;
    throw error;
  }
  throw new Error('expected a StartupError');
}

describe('DataDirectory (findings 1 and 2 of issue 19)', () => {
  let root: string;
  let directory: string;
  const held: DataDirectory[] = [];
  const open = async (overrides: Partial<DataDirectoryIdentity> = {}): Promise<DataDirectory> => {
    const opened = await DataDirectory.open({ directory, identity: { ...identity, ...overrides }, logger });
    held.push(opened);
    return opened;
  };

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'impulse-data-directory-'));
    directory = join(root, 'g1', 'g1-r1');
  });
  afterEach(async () => {
    for (const opened of held.splice(0)) opened.release();
    await rm(root, { recursive: true, force: true });
  });

  it('creates the directory and records who it belongs to, and the holder in LOCK', async () => {
    await open();
    const recorded = JSON.parse(readFileSync(join(directory, 'IDENTITY'), 'utf8')) as Record<string, unknown>;
    expect(recorded).toMatchObject({ format: 1, ...identity });
    expect(readFileSync(join(directory, 'LOCK'), 'utf8')).toBe(`${process.pid}\n`);
  });

  it('is held by one opener at a time, even within one process, until released', async () => {
    const first = await open();
    const refusal = await refusalOf(() => open());
    expect(refusal.code).toBe('DATA_DIRECTORY_LOCKED');
    expect(refusal.exitCode).toBe(1);
    expect(refusal.message).toBe(
      `data directory ${directory} is in use by another process (pid ${process.pid}): one data directory serves one replica or node at a time`,
    );
    first.release();
    first.release();
    await open();
  });

  it.each([
    ['another cluster', { clusterId: 'other' }],
    ['another group and replica', { groupId: 'g2', replicaId: 'g2-r1' }],
    ['another replica of the group', { replicaId: 'g1-r2', raftId: 2 }],
    ['another Raft id', { raftId: 4 }],
    ['another engine', { engine: 'memory' }],
  ])('refuses %s, naming both identities and writing nothing', async (_what, overrides) => {
    (await open()).release();
    const before = treeOf(directory);
    const refusal = await refusalOf(() => open(overrides));
    expect(refusal.code).toBe('DATA_DIRECTORY_IDENTITY_MISMATCH');
    expect(refusal.exitCode).toBe(2);
    const other = { ...identity, ...overrides };
    expect(refusal.message).toBe(
      `data directory ${directory} belongs to replica g1-r1 (raft id 1) of group g1 in cluster impulse, engine leveldb, not to replica ${other.replicaId} (raft id ${other.raftId}) of group ${other.groupId} in cluster ${other.clusterId}, engine ${other.engine}: give this replica its own data directory`,
    );
    expect(treeOf(directory)).toEqual(before);
    // The refusal released the lock: the owner opens it at once.
    await open();
  });

  it('adopts a directory written before identities were recorded', async () => {
    mkdirSync(join(directory, 'raft'), { recursive: true });
    writeFileSync(join(directory, 'raft', 'segment'), 'log');
    await open();
    expect(JSON.parse(readFileSync(join(directory, 'IDENTITY'), 'utf8'))).toMatchObject(identity);
  });

  it('refuses an identity file that is not one, writing nothing', async () => {
    (await open()).release();
    for (const text of [
      '{',
      '{"format":2}',
      '{"format":1,"clusterId":"a","groupId":"g1","replicaId":"r","engine":"memory"}',
    ]) {
      writeFileSync(join(directory, 'IDENTITY'), text);
      const before = treeOf(directory);
      const refusal = await refusalOf(() => open());
      expect(refusal.code).toBe('DATA_DIRECTORY_DAMAGED');
      expect(refusal.message).toMatch(/IDENTITY is not an identity file/);
      expect(treeOf(directory)).toEqual(before);
    }
  });
});
