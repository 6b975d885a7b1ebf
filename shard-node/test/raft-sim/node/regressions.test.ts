import { describe, expect, it } from 'vitest';
import { runNodeSimulation } from '../../../src/raft-sim/node/node-simulation.js';

/**
 * Seeds that once failed, replayed with their shape pinned (a change of the simulator's defaults
 * must not quietly turn them into other runs). A seed replays exactly only while the host and the
 * simulator are unchanged: each test also checks that its seed still reaches the situation it was
 * kept for, so that it fails loudly, rather than passing for nothing, once it no longer does.
 */
describe('node simulator: regressions', () => {
  // FINDINGS.md, finding 3: g2's replica on n2 is partitioned away while both its peers are
  // replaced (n3 -> n4, then n1 -> n3). After the heal it must catch up from a leader its member
  // directory does not know (decision 0014); it stayed at index 119 for good before.
  it(
    'seed 46: a replica cut off while both its peers are replaced catches up',
    { timeout: 120_000 },
    async () => {
      const trace: string[] = [];
      const result = await runNodeSimulation({
        seed: 46,
        nodes: 3,
        groups: 3,
        durationMs: 3_000,
        faults: { moves: true },
        trace: (line) => trace.push(line),
      });
      expect(result.problems).toEqual([]);
      expect(result.linearizable).toBe('linearizable');
      const completed = trace.filter((line) => / move g2: .* completed$/.test(line));
      expect(completed, trace.join('\n')).toHaveLength(2);
      expect(trace.some((line) => / partition .*\| n2 for /.test(line))).toBe(true);
    },
  );
});
