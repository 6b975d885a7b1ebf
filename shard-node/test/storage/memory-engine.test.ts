import { describe, expect, it } from 'vitest';

import { MemoryEngine, openEngine } from '../../src/storage/index.js';
import { bytes, describeEngineConformance, pairsOf } from './engine-conformance.js';

describeEngineConformance('memory', async () => ({ engine: new MemoryEngine(), cleanup: async () => {} }), {
  propertyRuns: 200,
});

describe('memory engine', () => {
  it('is what openEngine returns for the name memory', async () => {
    const engine = await openEngine({ name: 'memory' });
    expect(engine).toBeInstanceOf(MemoryEngine);
    expect(engine.name).toBe('memory');
    await engine.close();
  });

  it('keeps snapshots apart when many are open over many writes', async () => {
    const engine = new MemoryEngine();
    const snapshots = [];
    for (let round = 0; round < 50; round += 1) {
      snapshots.push(await engine.snapshot());
      await engine.put(bytes(`k${round % 7}`), bytes(String(round)));
      if (round % 5 === 0) await engine.delete(bytes(`k${(round + 3) % 7}`));
    }
    // Replay the writes to know what each snapshot must hold.
    const state = new Map<string, string>();
    for (let round = 0; round < 50; round += 1) {
      const expected = [...state.entries()].sort(([left], [right]) => (left < right ? -1 : 1));
      expect(await pairsOf(snapshots[round]!.iterate())).toEqual(expected);
      state.set(`k${round % 7}`, String(round));
      if (round % 5 === 0) state.delete(`k${(round + 3) % 7}`);
    }
    await Promise.all(snapshots.map((snapshot) => snapshot.close()));
    await engine.close();
  });
});
