import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  emptyHostedRecord,
  hostedFileName,
  readHostedRecord,
  writeHostedRecord,
} from '../../src/node/hosted-record.js';

describe("a node's record of the replicas it hosts", () => {
  const directories: string[] = [];
  afterEach(async () => {
    for (const directory of directories.splice(0)) await rm(directory, { recursive: true, force: true });
  });
  const directory = async (): Promise<string> => {
    const path = await mkdtemp(join(tmpdir(), 'impulse-hosted-'));
    directories.push(path);
    return path;
  };
  const member = {
    replicaId: 'g1-r4',
    raftId: 4,
    url: 'http://127.0.0.1:7004',
    peerHost: '127.0.0.1',
    peerPort: 7104,
  };

  it('is empty before anything was recorded, and reads back what was written', async () => {
    const path = await directory();
    expect(await readHostedRecord(path)).toEqual(emptyHostedRecord);
    const record = { added: [{ groupId: 'g1', self: member, members: [member] }], removed: ['g3', 'g2'] };
    await writeHostedRecord(path, record);
    expect(await readHostedRecord(path)).toEqual({ ...record, removed: ['g2', 'g3'] });
  });

  it.each([
    ['not JSON', '{"format": 1, "added": ['],
    ['another format', '{"format": 2, "added": [], "removed": []}'],
    ['a removed group that is not an id', '{"format": 1, "added": [], "removed": [7]}'],
    [
      'an added replica without its member entry',
      '{"format": 1, "added": [{"groupId": "g1"}], "removed": []}',
    ],
  ])('refuses a damaged record (%s) rather than hosting a guess', async (_name, text) => {
    const path = await directory();
    await writeFile(join(path, hostedFileName), text);
    await expect(readHostedRecord(path)).rejects.toMatchObject({ code: 'DATA_DIRECTORY_DAMAGED' });
    expect(await readFile(join(path, hostedFileName), 'utf8')).toBe(text);
  });
});
