import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chaosSchedule, nemesesOf, parseNemeses, runChaos, type ChaosRunOptions } from '@impulse/loadtest';
import { describe, expect, it } from 'vitest';

const chaosSeconds = 60;
/** 4 nodes, so that the member nemesis has a node to move each group's replica to. */
const layout = { shape: 'nodes', nodes: 4, replicasPerGroup: 3 } as const;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const finalLinePattern =
  /^chaos: (\d+) ops, (\d+) faults, linearizable: (true|false|unknown), lost acknowledged writes: (\d+), unexpected exits: (\d+)(; failed: .*)?$/;

function runOptions(
  overrides: Partial<ChaosRunOptions> & Pick<ChaosRunOptions, 'seed' | 'commandLine' | 'log'>,
): ChaosRunOptions {
  return {
    timeSeconds: chaosSeconds,
    nemeses: parseNemeses('all', layout),
    clients: 16,
    keysActive: 6,
    operationsPerKeyMax: 150,
    requestTimeoutMs: 5_000,
    ...layout,
    groups: 3,
    readMode: 'readindex',
    resultsRoot: process.env['IMPULSE_CHAOS_RESULTS'] ?? 'results',
    checkTimeBudgetMs: 120_000,
    keepData: false,
    serving: { windowSeconds: 5, graceSeconds: 5, operationsMin: 20 },
    ...overrides,
  };
}

/**
 * The chaos run of `npm test`: 60 s of the register workload against 4 nodes hosting 3 groups × 3
 * replicas (the production shape) while every nemesis runs (kill -9, SIGSTOP, power cuts,
 * partitions through the peer-link proxy, each of a node and so of every replica on it, and a
 * group's replica moved to a node that did not host it). It
 * must end linearizable with no acknowledged write lost, no process exiting that no nemesis
 * stopped, no nemesis action failing, and the cluster serving in every fault-free window. The seed
 * is new each run and printed, so a failure can be replayed with `npm run chaos -- --seed N`; the
 * results folder (history, report, process logs) is printed too and kept.
 */
describe('chaos', () => {
  // Both read modes: the lease is what the pause nemesis most threatens (a leader stopped past its
  // lease must not answer from it when it resumes).
  it.each(['readindex', 'lease'] as const)(
    `with %s reads, stays linearizable and loses no acknowledged write under ${chaosSeconds} s of every nemesis`,
    async (readMode) => {
      const seed = Number(process.env['IMPULSE_CHAOS_SEED'] ?? 0) || 1 + Math.floor(Math.random() * 2 ** 31);
      const lines: string[] = [];
      const result = await runChaos(
        runOptions({
          seed,
          readMode,
          log: (line) => {
            lines.push(line);
            if (line.startsWith('chaos: seed') || line.includes('nemesis:') || line.includes('UNEXPECTED')) {
              process.stderr.write(`${line}\n`);
            }
          },
          commandLine: `npm test (chaos.test.ts, ${readMode} reads, seed ${seed})`,
        }),
      );
      process.stderr.write(`${result.finalLine}\n`);
      const context = `seed ${seed}, results in ${result.resultsDirectory}\n${lines.slice(-30).join('\n')}`;
      expect(result.linearizable, context).toBe('true');
      expect(result.lostWrites, context).toEqual([]);
      expect(result.unexpectedExits, context).toEqual([]);
      expect(result.errors, context).toEqual([]);
      expect(result.passed, context).toBe(true);
      expect(result.operations, context).toBeGreaterThan(1_000);
      // Every kind of fault happened: a minute holds about a dozen faults and two or three moves.
      const faults = JSON.parse(
        await readFile(join(result.resultsDirectory, 'faults.json'), 'utf8'),
      ) as Array<{ nemesis: string; startSeconds: number; endSeconds: number }>;
      expect(new Set(faults.map((fault) => fault.nemesis)), context).toEqual(new Set(nemesesOf(layout)));
      for (const fault of faults) expect(fault.endSeconds).toBeGreaterThanOrEqual(fault.startSeconds);
      const match = finalLinePattern.exec(result.finalLine);
      expect(match?.slice(3, 7), result.finalLine).toEqual(['true', '0', '0', undefined]);
      expect(Number(match?.[2])).toBe(faults.length);
      for (const file of ['history.jsonl', 'report.html', 'report.png', 'check.txt', 'schedule.json']) {
        expect((await stat(join(result.resultsDirectory, file))).size).toBeGreaterThan(0);
      }
    },
    (chaosSeconds + 240) * 1000,
  );

  // The tool must see what goes wrong: a node killed behind its back (no nemesis did it) is
  // recorded with its last log lines, and fails a run that is otherwise linearizable.
  it('fails a run in which a node exits that no nemesis stopped', async () => {
    const seed = 11;
    let victim: { name: string; pid: number | undefined } | undefined;
    const result = await runChaos(
      runOptions({
        seed,
        timeSeconds: 8,
        nemeses: parseNemeses('none', layout),
        nodes: 3,
        groups: 1,
        clients: 4,
        log: () => undefined,
        commandLine: 'chaos.test.ts (a node killed from outside)',
        onClusterStarted: (cluster) => {
          setTimeout(() => {
            const name = cluster.hostsOf('g1')[1] ?? '?';
            victim = { name, pid: cluster.pid(name) };
            // Not through the cluster: the tool must find out on its own.
            if (victim.pid !== undefined) process.kill(victim.pid, 'SIGKILL');
          }, 2_000);
        },
      }),
    );
    const context = `${result.finalLine}\nresults in ${result.resultsDirectory}`;
    expect(victim?.pid, context).toBeDefined();
    expect(result.finalLine, context).toMatch(finalLinePattern);
    expect(result.finalLine, context).toMatch(/, unexpected exits: 1$/);
    expect(result.linearizable, context).toBe('true');
    expect(result.passed, context).toBe(false);
    expect(
      result.unexpectedExits.map((exit) => [exit.name, exit.pid, exit.signal]),
      context,
    ).toEqual([[victim?.name, victim?.pid, 'SIGKILL']]);
    // Its last log lines come with it (the node logs JSON lines from its start).
    expect(result.unexpectedExits[0]?.lastLogLines.length, context).toBeGreaterThan(0);
  }, 120_000);

  // A node contains a replica's failure: no process exits, and the group may serve on from its other
  // replicas. The run must see it all the same. Here n2 is killed (through the cluster: an expected
  // exit), its replica of g1's state machine is damaged, and n2 restarts degraded, serving g2 only.
  it('fails a run in which a replica fails inside a node that runs on', async () => {
    let sabotage: Promise<void> | undefined;
    const result = await runChaos(
      runOptions({
        seed: 12,
        timeSeconds: 10,
        nemeses: parseNemeses('none', layout),
        nodes: 3,
        groups: 2,
        clients: 4,
        log: () => undefined,
        commandLine: 'chaos.test.ts (a replica failed inside a node)',
        onClusterStarted: (cluster) => {
          sabotage = sleep(2_000).then(async () => {
            await cluster.kill('n2');
            // The pointer to g1's live state machine generation is garbage: g1 cannot open.
            await writeFile(
              join(cluster.dataDirectoryOf('n2'), 'groups', 'g1', 'state', 'GENERATION'),
              'garbage\n',
            );
            await cluster.restart('n2');
          });
        },
      }),
    );
    await sabotage;
    const context = `${result.finalLine}\nresults in ${result.resultsDirectory}`;
    expect(result.unexpectedExits, context).toEqual([]);
    expect(result.passed, context).toBe(false);
    expect(result.errors, context).toEqual([
      expect.stringMatching(/^replica failed: the replica of g1 on n2: failed at [\d.]+ s/),
    ]);
  }, 120_000);

  // A checker is trusted only once seen to fail. The bug planted here is a disk that lies: two
  // seconds into the workload, every node's power-loss file system starts acknowledging fsyncs
  // without making anything durable, so the first power cut of every node at once takes the store
  // back to that moment, acknowledged writes and all: registers read older values than were
  // acknowledged (not linearizable), and fresh keys are gone (lost acknowledged writes). The seed is
  // the first whose first fault is such a cut (of the whole group, whose replicas are on every
  // node) at least a second after the disks start lying, and the same seed without the bug must
  // pass, so that the catch is the bug's.
  describe('catches a bug planted on purpose: disks that lie about fsync', () => {
    const power = parseNemeses('power', layout);
    const timeSeconds = 20;
    const lyingFromSeconds = 2;
    const firstCut = (seed: number): { mode: string; atSeconds: number } | undefined =>
      chaosSchedule({ seed, timeSeconds, nemeses: power, groups: 1 }).faults[0];
    let seed = 1;
    for (;;) {
      const cut = firstCut(seed);
      if (cut?.mode === 'whole group' && cut.atSeconds >= lyingFromSeconds + 1) break;
      seed += 1;
    }
    let planted: Promise<void> | undefined;
    const plantedOptions = (plant: boolean): ChaosRunOptions =>
      runOptions({
        seed,
        timeSeconds,
        nemeses: power,
        nodes: 3,
        groups: 1,
        log: () => undefined,
        commandLine: `chaos.test.ts (seed ${seed}, power cuts${plant ? ', lying disks planted' : ''})`,
        ...(plant
          ? {
              onClusterStarted: (cluster) => {
                planted = new Promise((resolve) => setTimeout(resolve, lyingFromSeconds * 1000)).then(() =>
                  cluster.plantLyingDisks(),
                );
              },
            }
          : {}),
      });

    it('a run with the bug loses acknowledged writes and is not linearizable', async () => {
      const result = await runChaos(plantedOptions(true));
      await planted;
      const context = `${result.finalLine}\nresults in ${result.resultsDirectory}`;
      expect(result.passed, context).toBe(false);
      expect(result.lostWrites.length, context).toBeGreaterThan(0);
      expect(result.linearizable, context).toBe('false');
      expect(result.finalLine, context).toMatch(finalLinePattern);
      expect(result.finalLine, context).toMatch(/linearizable: false, lost acknowledged writes: [1-9]/);
    }, 180_000);

    it('the same seed without the bug passes', async () => {
      const result = await runChaos(plantedOptions(false));
      const context = `${result.finalLine}\nresults in ${result.resultsDirectory}`;
      expect(result.errors, context).toEqual([]);
      expect(result.passed, context).toBe(true);
    }, 180_000);
  });
});
