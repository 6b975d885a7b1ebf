import { HelpRequested, slotTableOf, type ClusterConfig } from '@impulse/common';
import { describe, expect, it } from 'vitest';
import { failoverFinalLine, roundLines, runFailoverCommand } from '../src/failover-command.js';
import { chooseVictim, keyOfEachGroup, summariseFailovers, type FailoverRound } from '../src/failover.js';

const rounds: FailoverRound[] = [
  {
    round: 1,
    victim: 'n1',
    groups: [
      {
        round: 1,
        victim: 'n1',
        groupId: 'g1',
        newLeader: 'n2',
        leaderSeconds: 1.2,
        writeSeconds: 1.5,
        failedWrites: 0,
      },
      {
        round: 1,
        victim: 'n1',
        groupId: 'g4',
        newLeader: 'n3',
        leaderSeconds: 1.9,
        writeSeconds: 2.5,
        failedWrites: 2,
      },
    ],
    catchUpSeconds: 2,
  },
  {
    round: 2,
    victim: 'n2',
    groups: [
      {
        round: 2,
        victim: 'n2',
        groupId: 'g2',
        newLeader: 'n1',
        leaderSeconds: 1.0,
        writeSeconds: 1.1,
        failedWrites: 0,
      },
      { round: 2, victim: 'n2', groupId: 'g3', failedWrites: 7 },
    ],
  },
];

describe('failover', () => {
  it('summarises every group of every round: max, median, the slowest per round, the unfinished', () => {
    const summary = summariseFailovers(rounds);
    expect(summary).toEqual({
      rounds: 2,
      failovers: 4,
      unfinished: 1,
      writeMaxSeconds: 2.5,
      writeMedianSeconds: 1.5,
      leaderMaxSeconds: 1.9,
      leaderMedianSeconds: 1.2,
      roundMaxSeconds: [2.5, Number.POSITIVE_INFINITY],
    });
    expect(failoverFinalLine('abc1234', 12, summary)).toBe(
      'bench:failover: commit=abc1234 rounds=2 groups=12 failovers=4 unfinished=1 write_max_s=2.50 write_median_s=1.50 leader_max_s=1.90 leader_median_s=1.20',
    );
  });

  it('prints a line per group and the round max', () => {
    const lines = roundLines(rounds[0]!);
    expect(lines[0]).toBe('round 1: killed n1, which led 2 group(s)');
    expect(lines[2]).toMatch(/^ {2}g1 +n2 +1\.20 +1\.50 +0$/);
    expect(lines.at(-1)).toBe('  max 2.50 s; n1 restarted and caught up in 2.00 s');
    expect(roundLines(rounds[1]!).at(-2)).toMatch(/^ {2}g3 +none +n\/a +n\/a +7$/);
  });

  it('kills the node that leads the most groups, taking turns among equals', () => {
    const leaders = new Map([
      ['g1', 'n1'],
      ['g2', 'n2'],
      ['g3', 'n2'],
      ['g4', 'n1'],
    ]);
    expect(chooseVictim(leaders, ['n1', 'n2', 'n3'], 1)).toBe('n1');
    expect(chooseVictim(leaders, ['n1', 'n2', 'n3'], 2)).toBe('n2');
    expect(chooseVictim(new Map([['g1', 'n3']]), ['n1', 'n2', 'n3'], 5)).toBe('n3');
  });

  it('finds a key of each group, as the gateway routes keys', () => {
    const cluster: ClusterConfig = {
      epoch: 1,
      virtualNodesPerGroup: 160,
      valueBytesMax: 1024,
      keyBytesMax: 1024,
      nodes: [],
      groups: ['g1', 'g2', 'g3', 'g4', 'g5'].map((id) => ({
        id,
        replicas: [
          {
            id: `${id}-r1`,
            node: null,
            url: `http://127.0.0.1:1${id.slice(1)}`,
            raftId: 1,
            peerAddress: null,
          },
        ],
      })),
    };
    const keys = keyOfEachGroup(cluster);
    const table = slotTableOf(cluster);
    expect([...keys.keys()].sort()).toEqual(['g1', 'g2', 'g3', 'g4', 'g5']);
    for (const [groupId, key] of keys) expect(table.groupForKey(key)).toBe(groupId);
  });

  it('answers --help with every option, and refuses a group that could not survive the kill', async () => {
    const help = await runFailoverCommand(['--help'], {}).catch((error: unknown) => error);
    expect(help).toBeInstanceOf(HelpRequested);
    for (const flag of [
      '--rounds',
      '--groups',
      '--probe-interval',
      '--write-timeout',
      '--catch-up-timeout',
    ]) {
      expect((help as HelpRequested).text).toContain(flag);
    }
    await expect(runFailoverCommand(['--replicas-per-group', '1'], {})).rejects.toThrow(/must be at least 3/);
    await expect(runFailoverCommand(['--replicas-per-group', '5'], {})).rejects.toThrow(
      /needs as many nodes/,
    );
  });
});
