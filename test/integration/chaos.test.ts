import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseNemeses, runChaos } from '@impulse/loadtest';
import { describe, expect, it } from 'vitest';

const chaosSeconds = 60;

/**
 * The chaos run of `npm test`: 60 s of the register workload against 3 groups × 3 replicas while
 * every nemesis runs (kill -9, SIGSTOP, partitions through the peer-link proxy, replica
 * replacement). It must end linearizable with no acknowledged write lost. The seed is new each
 * run and printed, so a failure can be replayed with `npm run chaos -- --seed N`; the results
 * folder (history, report, process logs) is printed too and kept.
 */
describe('chaos', () => {
  // Both read modes: the lease is what the pause nemesis most threatens (a leader stopped past its
  // lease must not answer from it when it resumes).
  it.each(['readindex', 'lease'] as const)(
    `with %s reads, stays linearizable and loses no acknowledged write under ${chaosSeconds} s of every nemesis`,
    async (readMode) => {
      const seed = Number(process.env['IMPULSE_CHAOS_SEED'] ?? 0) || 1 + Math.floor(Math.random() * 2 ** 31);
      const lines: string[] = [];
      const result = await runChaos({
        timeSeconds: chaosSeconds,
        nemeses: parseNemeses('all'),
        seed,
        clients: 16,
        keysActive: 6,
        operationsPerKeyMax: 150,
        requestTimeoutMs: 5_000,
        groups: 3,
        replicasPerGroup: 3,
        readMode,
        resultsRoot: process.env['IMPULSE_CHAOS_RESULTS'] ?? 'results',
        checkTimeBudgetMs: 120_000,
        keepData: false,
        log: (line) => {
          lines.push(line);
          if (line.startsWith('chaos: seed') || line.includes('nemesis:')) process.stderr.write(`${line}\n`);
        },
        commandLine: `npm test (chaos.test.ts, ${readMode} reads, seed ${seed})`,
      });
      process.stderr.write(`${result.finalLine}\n`);
      const context = `seed ${seed}, results in ${result.resultsDirectory}\n${lines.slice(-30).join('\n')}`;
      expect(result.linearizable, context).toBe('true');
      expect(result.lostWrites, context).toEqual([]);
      expect(result.operations, context).toBeGreaterThan(1_000);
      // Every kind of fault happened: a minute holds about a dozen faults and two or three replacements.
      const faults = JSON.parse(
        await readFile(join(result.resultsDirectory, 'faults.json'), 'utf8'),
      ) as Array<{
        nemesis: string;
      }>;
      expect(new Set(faults.map((fault) => fault.nemesis)), context).toEqual(
        new Set(['kill', 'pause', 'partition', 'member']),
      );
      expect(result.finalLine).toMatch(
        /^chaos: \d+ ops, \d+ faults, linearizable: true, lost acknowledged writes: 0$/,
      );
      for (const file of ['history.jsonl', 'report.html', 'report.png', 'check.txt']) {
        expect((await stat(join(result.resultsDirectory, file))).size).toBeGreaterThan(0);
      }
    },
    (chaosSeconds + 240) * 1000,
  );
});
