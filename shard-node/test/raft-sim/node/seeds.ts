import { expect, it } from 'vitest';
import { runNodeSimulation, type NodeSimulationOptions } from '../../../src/raft-sim/node/node-simulation.js';
import { replayCommand } from '../../../src/raft-sim/node/report.js';

/**
 * One `it` per seed: every seed must come out clean (no problem, linearizable), and a run that
 * proves nothing fails too: clients that got nothing done, or a schedule that injected no fault.
 */
export function sweepSeeds(
  shape: Omit<NodeSimulationOptions, 'seed'>,
  firstSeed: number,
  count: number,
): void {
  for (let seed = firstSeed; seed < firstSeed + count; seed++) {
    it(`seed ${seed}`, { timeout: 120_000 }, async () => {
      const result = await runNodeSimulation({ ...shape, seed });
      const replay = replayCommand(
        {
          nodes: shape.nodes,
          groups: shape.groups,
          durationMs: shape.durationMs,
          leaseReads: shape.readMode === 'lease',
          ...(shape.logs === undefined ? {} : { logs: shape.logs }),
          ...(shape.faults?.moves === undefined ? {} : { moves: shape.faults.moves }),
          coalesceHeartbeats: shape.coalesceHeartbeats === true,
        },
        seed,
      );
      expect(result.problems, `replay: ${replay}`).toEqual([]);
      expect(result.linearizable, `replay: ${replay}`).toBe('linearizable');
      expect(result.operations.ok).toBeGreaterThan(50);
      expect(Object.values(result.faults).reduce((sum, faults) => sum + faults, 0)).toBeGreaterThan(0);
    });
  }
}
