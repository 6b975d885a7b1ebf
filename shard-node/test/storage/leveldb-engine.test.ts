import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { LevelDbEngine, openEngine } from '../../src/storage/index.js';
import { bytes, describeEngineConformance, pairsOf } from './engine-conformance.js';

async function temporaryDirectory(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'impulse-leveldb-'));
}

// Writes in the conformance suite are not synced: the suite checks semantics, not durability, and
// an fsync per write would make it slow on some disks. The tests below cover sync: true.
describeEngineConformance(
  'leveldb',
  async () => {
    const directory = await temporaryDirectory();
    const engine = await LevelDbEngine.open({ directory, sync: false });
    return { engine, cleanup: () => rm(directory, { recursive: true, force: true }) };
  },
  { propertyRuns: 150 },
);

describe('leveldb engine', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await temporaryDirectory();
  });

  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('keeps its data across close and reopen', async () => {
    const dataDirectory = path.join(directory, 'nested', 'data');
    const first = await openEngine({ name: 'leveldb', directory: dataDirectory, sync: true });
    expect(first).toBeInstanceOf(LevelDbEngine);
    await first.put(bytes('a'), bytes('1'));
    await first.put(bytes('empty'), new Uint8Array(0));
    await first.batch([
      { type: 'put', key: bytes('b'), value: bytes('2') },
      { type: 'delete', key: bytes('a') },
    ]);
    await first.close();

    const second = await openEngine({ name: 'leveldb', directory: dataDirectory });
    expect(await pairsOf(second.iterate())).toEqual([
      ['b', '2'],
      ['empty', ''],
    ]);
    expect(await second.countKeys()).toBe(2);
    await second.close();
  });

  it('flush moves every write out of the write-ahead log into a table file', async () => {
    const engine = await LevelDbEngine.open({ directory, sync: false });
    // Random bytes, so that the table's compression leaves them as they are and they can be found.
    const value = randomBytes(4096);
    for (let index = 0; index < 16; index++) await engine.put(bytes(`key-${index}`), value);
    const logBytes = async (): Promise<number> => {
      let total = 0;
      for (const name of await readdir(directory)) {
        if (name.endsWith('.log') && name !== 'LOG') total += (await stat(path.join(directory, name))).size;
      }
      return total;
    };
    const tableHolds = async (): Promise<boolean> => {
      for (const name of await readdir(directory)) {
        if (
          name.endsWith('.ldb') &&
          (await readFile(path.join(directory, name))).includes(value.subarray(0, 64))
        )
          return true;
      }
      return false;
    };
    expect(await logBytes()).toBeGreaterThan(16 * 4096);
    expect(await tableHolds()).toBe(false);
    await engine.flush();
    // Only the flush's own synced marker is left in the new write-ahead log.
    expect(await logBytes()).toBeLessThan(1024);
    expect(await tableHolds()).toBe(true);
    expect((await engine.get(bytes('key-15')))?.equals(value)).toBe(true);
    await engine.close();
  });

  it('fails with ENGINE_OPEN_FAILED and the cause when another instance holds the directory', async () => {
    const holder = await LevelDbEngine.open({ directory, sync: false });
    const failure = await LevelDbEngine.open({ directory, sync: false }).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'ENGINE_OPEN_FAILED' });
    expect((failure as Error).message).toContain(directory);
    expect((failure as Error).message).toMatch(/lock/i);
    expect((failure as Error).cause).toBeInstanceOf(Error);
    // The holder is unaffected, and once it closes the directory opens again.
    await holder.put(bytes('k'), bytes('v'));
    await holder.close();
    const reopened = await LevelDbEngine.open({ directory, sync: false });
    expect(await reopened.get(bytes('k'))).toEqual(bytes('v'));
    await reopened.close();
  });

  it('fails with ENGINE_OPEN_FAILED when the directory cannot be created', async () => {
    const file = path.join(directory, 'file');
    await writeFile(file, 'not a directory');
    await expect(
      LevelDbEngine.open({ directory: path.join(file, 'data'), sync: false }),
    ).rejects.toMatchObject({
      code: 'ENGINE_OPEN_FAILED',
    });
  });

  it('requires a directory', async () => {
    await expect(openEngine({ name: 'leveldb' })).rejects.toMatchObject({ code: 'ENGINE_INVALID_ARGUMENT' });
    await expect(LevelDbEngine.open({ directory: '', sync: true })).rejects.toMatchObject({
      code: 'ENGINE_INVALID_ARGUMENT',
    });
  });

  it('acknowledges concurrent synced writes', async () => {
    const engine = await LevelDbEngine.open({ directory, sync: true });
    await Promise.all(Array.from({ length: 50 }, (_, index) => engine.put(bytes(`k${index}`), bytes('v'))));
    expect(await engine.countKeys()).toBe(50);
    await engine.close();
  });
});
