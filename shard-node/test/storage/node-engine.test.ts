import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { NodeEngine, type Engine, type NodeEngineObserver } from '../../src/storage/index.js';
import { bytes, describeEngineConformance, pairsOf } from './engine-conformance.js';

async function temporaryDirectory(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'impulse-node-engine-'));
}

/** Keys of neighbouring prefixes (other groups, other generations, a group whose id extends this one's). */
async function writeNeighbours(engine: NodeEngine): Promise<void> {
  const neighbours: Engine[] = [
    engine.space('g1').engineOf(0),
    engine.space('g1').engineOf(2),
    engine.space('g0').engineOf(1),
    engine.space('g10').engineOf(1),
    engine.space('g2').engineOf(1),
  ];
  for (const neighbour of neighbours) {
    await neighbour.batch([
      { type: 'put', key: Buffer.from([0x00]), value: bytes('neighbour') },
      { type: 'put', key: bytes('a'), value: bytes('neighbour') },
      { type: 'put', key: Buffer.from([0xff, 0xff]), value: bytes('neighbour') },
    ]);
    await neighbour.close();
  }
}

// The conformance suite runs against one view (group g1, generation 1) of an engine whose other
// prefixes hold keys around it: a view that read or counted past its prefix would fail it.
describeEngineConformance(
  'node engine view',
  async () => {
    const directory = await temporaryDirectory();
    const nodeEngine = await NodeEngine.open({ directory });
    await writeNeighbours(nodeEngine);
    const engine = nodeEngine.space('g1').engineOf(1);
    return {
      engine,
      cleanup: async () => {
        await nodeEngine.close();
        await rm(directory, { recursive: true, force: true });
      },
    };
  },
  { propertyRuns: 100 },
);

describe('node engine', () => {
  let directory: string;
  let engine: NodeEngine | undefined;
  const writes: { batches: number; operations: number; synced: boolean }[] = [];
  let flushes = 0;
  const observer: NodeEngineObserver = {
    onWrite: (batches, operations, synced) => writes.push({ batches, operations, synced }),
    onFlush: () => flushes++,
  };

  beforeEach(async () => {
    directory = await temporaryDirectory();
    writes.length = 0;
    flushes = 0;
  });

  afterEach(async () => {
    await engine?.close();
    engine = undefined;
    await rm(directory, { recursive: true, force: true });
  });

  it("writes the batches of many groups given in one round as one LevelDB write, each group's whole", async () => {
    engine = await NodeEngine.open({ directory, observer });
    const views = Array.from({ length: 20 }, (_, index) => engine!.space(`g${index}`).engineOf(1));
    await Promise.all(
      views.map((view, index) =>
        view.batch([
          { type: 'put', key: bytes('a'), value: bytes(`a${index}`) },
          { type: 'put', key: bytes('b'), value: bytes(`b${index}`) },
          { type: 'delete', key: bytes('a') },
        ]),
      ),
    );
    expect(writes).toEqual([{ batches: 20, operations: 60, synced: false }]);
    for (const [index, view] of views.entries()) {
      expect(await pairsOf(view.iterate())).toEqual([['b', `b${index}`]]);
    }
  });

  it('gathers the writes that arrive while one is in flight into the next, in order', async () => {
    engine = await NodeEngine.open({ directory, observer });
    const view = engine.space('g1').engineOf(1);
    const first = view.put(bytes('k'), bytes('1'));
    // The first write is queued for the next turn; these arrive after it has started.
    await new Promise((resolve) => setImmediate(resolve));
    const later = [
      view.put(bytes('k'), bytes('2')),
      view.put(bytes('k'), bytes('3')),
      view.delete(bytes('j')),
    ];
    await Promise.all([first, ...later]);
    expect(writes.map((write) => write.batches)).toEqual([1, 3]);
    expect((await view.get(bytes('k')))?.toString()).toBe('3');
  });

  it('syncs: one synced write for every caller meanwhile, and a synced write carries the queued ones', async () => {
    engine = await NodeEngine.open({ directory, observer });
    const view = engine.space('g1').engineOf(1);
    await Promise.all([view.sync(), engine.space('g2').engineOf(1).sync()]);
    expect(writes).toEqual([{ batches: 2, operations: 0, synced: true }]);
    await Promise.all([view.put(bytes('x'), bytes('y')), view.sync()]);
    expect(writes[1]).toEqual({ batches: 2, operations: 1, synced: true });
  });

  it('keeps every group across close and reopen, and flush moves the writes into a table', async () => {
    engine = await NodeEngine.open({ directory, observer });
    await engine.space('g1').engineOf(1).put(bytes('a'), bytes('1'));
    await engine.space('g2').engineOf(3).put(bytes('a'), bytes('2'));
    await Promise.all([engine.space('g1').engineOf(1).flush(), engine.space('g2').engineOf(3).flush()]);
    expect(flushes).toBeGreaterThanOrEqual(1);
    expect((await readdir(directory)).some((name) => name.endsWith('.ldb'))).toBe(true);
    await engine.close();
    engine = await NodeEngine.open({ directory });
    expect((await engine.space('g1').engineOf(1).get(bytes('a')))?.toString()).toBe('1');
    expect((await engine.space('g2').engineOf(3).get(bytes('a')))?.toString()).toBe('2');
    expect(await engine.space('g2').engineOf(1).get(bytes('a'))).toBeUndefined();
  });

  it('lists the stored groups and generations, and removes one generation or a whole group', async () => {
    engine = await NodeEngine.open({ directory });
    for (const [group, generation] of [
      ['g1', 1],
      ['g1', 2],
      ['g1', 0xffff_ffff],
      ['g10', 7],
      ['b', 1],
    ] as const) {
      await engine
        .space(group)
        .engineOf(generation)
        .put(bytes('k'), bytes(`${group}/${generation}`));
    }
    expect(await engine.storedGroups()).toEqual(['b', 'g1', 'g10']);
    expect(await engine.space('g1').generations()).toEqual([1, 2, 0xffff_ffff]);
    await engine.space('g1').remove(2);
    expect(await engine.space('g1').generations()).toEqual([1, 0xffff_ffff]);
    await engine.space('g1').removeAll();
    expect(await engine.space('g1').generations()).toEqual([]);
    expect(await engine.storedGroups()).toEqual(['b', 'g10']);
    expect((await engine.space('g10').engineOf(7).get(bytes('k')))?.toString()).toBe('g10/7');
  });

  it('refuses a group id it cannot prefix, a generation out of range, and writes once closed', async () => {
    engine = await NodeEngine.open({ directory });
    expect(() => engine!.space('')).toThrow(/1 to 255 bytes/);
    expect(() => engine!.space('x'.repeat(256))).toThrow(/1 to 255 bytes/);
    expect(() => engine!.space('g1').engineOf(-1)).toThrow(/out of range/);
    expect(() => engine!.space('g1').engineOf(2 ** 32)).toThrow(/out of range/);
    const view = engine.space('g1').engineOf(1);
    await engine.close();
    await expect(view.put(bytes('a'), bytes('b'))).rejects.toMatchObject({ code: 'ENGINE_CLOSED' });
    await expect(engine.flush()).rejects.toMatchObject({ code: 'ENGINE_CLOSED' });
  });

  it('refuses a second open of the same folder with ENGINE_OPEN_FAILED', async () => {
    engine = await NodeEngine.open({ directory });
    await expect(NodeEngine.open({ directory })).rejects.toMatchObject({ code: 'ENGINE_OPEN_FAILED' });
  });
});
