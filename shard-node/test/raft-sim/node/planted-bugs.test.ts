import { describe, expect, it } from 'vitest';
import { runNodeSimulation, type NodeSimulationOptions } from '../../../src/raft-sim/node/node-simulation.js';
import type { SimPlant } from '../../../src/raft-sim/node/sim-node.js';

/**
 * The node simulator is trusted only once it has been seen to fail: each planted bug must be
 * caught by some seed among the first `seedsMax`, and the catching seed must run clean without
 * the bug (else the catch would be the simulator's own problem, not the bug's).
 */
const seedsMax = 20;
const shape: Omit<NodeSimulationOptions, 'seed'> = { nodes: 3, groups: 3, durationMs: 3_000 };

async function expectCaught(plant: SimPlant): Promise<void> {
  for (let seed = 1; seed <= seedsMax; seed++) {
    const planted = await runNodeSimulation({ ...shape, seed, plant });
    if (planted.problems.length === 0) continue;
    const clean = await runNodeSimulation({ ...shape, seed });
    expect(clean.problems, `seed ${seed} without the bug`).toEqual([]);
    return;
  }
  expect.fail(`no seed of ${seedsMax} caught ${JSON.stringify(plant)}`);
}

describe('node simulator: planted bugs are caught', () => {
  it(
    'a disk that acknowledges fsyncs it never does (power cuts lose acknowledged writes)',
    { timeout: 300_000 },
    () => expectCaught({ lyingFsync: true }),
  );
  it('a voter that votes twice in one term', { timeout: 300_000 }, () =>
    expectCaught({ core: 'two-votes-per-term' }),
  );
  it('a leader that stays leader on seeing a higher term', { timeout: 300_000 }, () =>
    expectCaught({ core: 'leader-keeps-leading-on-higher-term' }),
  );
});
