import { ConfigError, HelpRequested } from '@impulse/common';
import { describe, expect, it } from 'vitest';
import { runBenchCommand } from '../src/bench-command.js';
import { summariseIdle, type IdleSample } from '../src/idle-cost.js';
import {
  idleTable,
  nodeBenchFinalLine,
  roundOrder,
  startTable,
  runNodeBenchCommand,
  type ThroughputSummary,
} from '../src/node-bench-command.js';
import { parseGroupCounts } from '../src/node-bench-options.js';
import { groupsBehind, leadersByGroup, type NodeStatus } from '../src/node-status.js';

const mebibyte = 1024 * 1024;

/** A round of `groups` groups on 3 nodes, each node at `cpuSeconds` over 10 s, with `rssMiB`. */
function idleRound(groups: number, round: number, cpuSeconds: number[], rssMiB: number): IdleSample[] {
  return [
    ...cpuSeconds.map((seconds, index) => ({
      groups,
      round,
      process: `n${index + 1}`,
      hostedReplicas: groups,
      cpuSeconds: seconds,
      windowSeconds: 10,
      rssBytes: rssMiB * mebibyte,
    })),
    {
      groups,
      round,
      process: 'gateway',
      hostedReplicas: 0,
      cpuSeconds: 0.05,
      windowSeconds: 10,
      rssBytes: 0,
    },
  ];
}

describe('idle cost', () => {
  it("takes each round's mean over the nodes, the median over rounds, per hosted group and at the margin", () => {
    const samples = [
      ...idleRound(4, 1, [0.3, 0.3, 0.3], 70),
      ...idleRound(4, 2, [0.2, 0.2, 0.2], 70),
      ...idleRound(4, 3, [0.9, 0.9, 0.9], 70),
      ...idleRound(104, 1, [0.5, 0.4, 0.6], 170),
    ];
    const traffic = [
      { groups: 104, round: 1, nodes: 3, windowSeconds: 10, messagesSent: 600, framesSent: 300 },
    ];
    const [small, large] = summariseIdle(samples, traffic);
    expect(small).toMatchObject({ groups: 4, rounds: 3, hostedReplicasPerNode: 4, nodeRssMiB: 70 });
    expect(small?.nodeCpuPercent).toBeCloseTo(3);
    expect(small?.cpuPercentPerHostedGroup).toBeCloseTo(0.75);
    expect(small?.gatewayCpuPercent).toBeCloseTo(0.5);
    expect(small?.marginalCpuPercentPerGroup).toBeUndefined();
    expect(small?.messagesPerSecondPerNode).toBeUndefined();
    expect(large?.nodeCpuPercent).toBeCloseTo(5);
    expect(large?.marginalCpuPercentPerGroup).toBeCloseTo(0.02);
    expect(large?.marginalRssMiBPerGroup).toBeCloseTo(1);
    expect(large?.messagesPerSecondPerNode).toBeCloseTo(20);
    expect(large?.framesPerSecondPerNode).toBeCloseTo(10);

    const table = idleTable([small!, large!], { nodes: 3, settleSeconds: 10, windowSeconds: 10, rounds: 3 });
    expect(table).toContain('at 4 groups: whole node cost per group 0.750% not met');
    expect(table).toContain('at 104 groups: whole node cost per group 0.048% met; marginal 0.0200% met');
  });

  it('prints the start and restart times by cluster size: medians, with their range', () => {
    const table = startTable(
      [
        { groups: 256, round: 1, seconds: 30, restartSeconds: 9 },
        { groups: 3, round: 1, seconds: 2, restartSeconds: 0.5 },
        { groups: 256, round: 2, seconds: 12, restartSeconds: 4 },
        { groups: 256, round: 3, seconds: 14, restartSeconds: 5 },
      ],
      { nodes: 3, replicasPerGroup: 3, rounds: 3 },
    );
    const rows = table.trim().split('\n').slice(2);
    expect(rows).toHaveLength(2);
    expect(rows[0]?.trim().split(/\s{2,}/)).toEqual(['3', '3', '2.0 (2.0 to 2.0)', '0.5 (0.5 to 0.5)']);
    expect(rows[1]).toContain('14.0 (12.0 to 30.0)');
    expect(rows[1]).toContain('5.0 (4.0 to 9.0)');
  });

  it('reads the list of cluster sizes, and refuses a bad one with every problem', () => {
    expect(parseGroupCounts('--idle-groups', '3, 64,256')).toEqual([3, 64, 256]);
    expect(() => parseGroupCounts('--idle-groups', '')).toThrow(ConfigError);
    expect(() => parseGroupCounts('--idle-groups', '3,x,0,3,2000')).toThrow(
      /"x" is not a group count[\s\S]*"0" is not[\s\S]*3 is given twice[\s\S]*"2000" is not/,
    );
  });

  it('turns the order of each round by one place', () => {
    expect(roundOrder([3, 64, 256], 1)).toEqual([3, 64, 256]);
    expect(roundOrder([3, 64, 256], 2)).toEqual([64, 256, 3]);
    expect(roundOrder([3, 64, 256], 4)).toEqual([3, 64, 256]);
    expect(roundOrder([], 2)).toEqual([]);
  });

  it('prints a last line for scripts', () => {
    const summaries = summariseIdle([
      ...idleRound(4, 1, [0.3, 0.3, 0.3], 70),
      ...idleRound(8, 1, [0.4, 0.4, 0.4], 74),
    ]);
    const throughput = [
      { target: 'nodes-3', runs: 3, operationsPerSecond: 1000, p50Ms: 1, p99Ms: 2, errors: 0, groups: 3 },
      {
        target: 'nodes-64',
        runs: 0,
        operationsPerSecond: Number.NaN,
        p50Ms: 1,
        p99Ms: 2,
        errors: 0,
        groups: 64,
      },
    ] satisfies ThroughputSummary[];
    expect(nodeBenchFinalLine('abc1234', summaries, throughput, 0.9)).toBe(
      'bench:nodes: commit=abc1234 idle_cpu_percent_per_group=4:0.750,8:0.500 idle_marginal_cpu_percent_per_group=8:0.2500 ' +
        'throughput=nodes-3:1000,nodes-64:n/a spread_ratio=0.90',
    );
    expect(nodeBenchFinalLine('abc1234', [], [], undefined)).toBe(
      'bench:nodes: commit=abc1234 idle_cpu_percent_per_group=n/a idle_marginal_cpu_percent_per_group=n/a throughput=n/a spread_ratio=n/a',
    );
  });
});

describe('node statuses', () => {
  const status = (nodeId: string, replicas: NodeStatus['replicas']): NodeStatus => ({ nodeId, replicas });

  it('finds each group leader, the higher term winning, and ignores failed replicas', () => {
    const statuses = [
      status('n1', [
        { groupId: 'g1', health: 'running', role: 'leader', term: 3 },
        { groupId: 'g2', health: 'running', role: 'leader', term: 2 },
      ]),
      status('n2', [
        { groupId: 'g2', health: 'running', role: 'leader', term: 5 },
        { groupId: 'g3', health: 'failed' },
      ]),
    ];
    expect([...leadersByGroup(statuses)]).toEqual([
      ['g1', 'n1'],
      ['g2', 'n2'],
    ]);
  });

  it('says which replicas of a restarted node have not caught up with their leader', () => {
    const restarted = status('n3', [
      { groupId: 'g1', health: 'running', role: 'follower', appliedIndex: 10 },
      { groupId: 'g2', health: 'running', role: 'follower', appliedIndex: 4 },
      { groupId: 'g3', health: 'running', role: 'leader', appliedIndex: 1 },
      { groupId: 'g4', health: 'running', role: 'follower', appliedIndex: 9 },
      { groupId: 'g5', health: 'storage-fault', role: 'follower', appliedIndex: 9 },
    ]);
    const leaders = status('n1', [
      { groupId: 'g1', health: 'running', role: 'leader', commitIndex: 10 },
      { groupId: 'g2', health: 'running', role: 'leader', commitIndex: 5 },
      { groupId: 'g5', health: 'running', role: 'leader', commitIndex: 9 },
    ]);
    // g4 has no leader in sight: not caught up either.
    expect(groupsBehind(restarted, [leaders, restarted])).toEqual(['g2', 'g4', 'g5']);
  });
});

describe('npm run bench:nodes and npm run bench', () => {
  it('refuse bad options before they start anything', async () => {
    await expect(runNodeBenchCommand(['--idle-groups', '3,0'], {})).rejects.toThrow(
      /"0" is not a group count/,
    );
    await expect(runNodeBenchCommand(['--nodes', '2'], {})).rejects.toThrow(/needs as many nodes/);
    await expect(runNodeBenchCommand(['--measure', 'everything'], {})).rejects.toThrow(ConfigError);
    await expect(runBenchCommand(['--target', 'impulse', '--nodes', '1'], {})).rejects.toThrow(
      /needs as many nodes/,
    );
  });

  it('answer --help with every option, and the shapes the bench runs', async () => {
    const help = await runNodeBenchCommand(['--help'], {}).catch((error: unknown) => error);
    expect(help).toBeInstanceOf(HelpRequested);
    for (const flag of ['--measure', '--idle-groups', '--idle-window', '--spread-groups', '--rounds']) {
      expect((help as HelpRequested).text).toContain(flag);
    }
    const benchHelp = await runBenchCommand(['--help'], {}).catch((error: unknown) => error);
    expect((benchHelp as HelpRequested).text).toContain('impulse-replicas');
    expect((benchHelp as HelpRequested).text).toContain('--nodes');
  });
});
