import { ConfigError, HelpRequested } from '@impulse/common';
import { describe, expect, it } from 'vitest';
import { parseNemeses, runChaosCommand } from '../src/chaos/chaos-command.js';

describe('npm run chaos', () => {
  it('reads the nemesis list', () => {
    expect([...parseNemeses('all', { shape: 'replicas', nodes: 0, replicasPerGroup: 3 })]).toEqual([
      'kill',
      'pause',
      'partition',
      'power',
      'member',
    ]);
    expect([...parseNemeses('none', { shape: 'replicas', nodes: 0, replicasPerGroup: 3 })]).toEqual([]);
    expect([...parseNemeses('pause, kill', { shape: 'replicas', nodes: 0, replicasPerGroup: 3 })]).toEqual([
      'pause',
      'kill',
    ]);
    expect(() => parseNemeses('kill,flood', { shape: 'replicas', nodes: 0, replicasPerGroup: 3 })).toThrow(
      ConfigError,
    );
    expect(() => parseNemeses('kill,flood', { shape: 'nodes', nodes: 4, replicasPerGroup: 3 })).toThrow(
      /unknown nemesis flood/,
    );
    expect(() => parseNemeses('', { shape: 'nodes', nodes: 4, replicasPerGroup: 3 })).toThrow(ConfigError);
  });

  it('gives the node shape member only with a node to move a replica to, and says why', () => {
    const nodes = (count: number) => ({ shape: 'nodes', nodes: count, replicasPerGroup: 3 }) as const;
    expect([...parseNemeses('all', nodes(4))]).toEqual(['kill', 'pause', 'partition', 'power', 'member']);
    expect([...parseNemeses('all', nodes(3))]).toEqual(['kill', 'pause', 'partition', 'power']);
    expect(() => parseNemeses('kill,member', nodes(3))).toThrow(
      /with --nodes 3 and --replicas-per-group 3 every node hosts every group: use --nodes 4 or more/,
    );
  });

  it('refuses bad options before it starts anything', async () => {
    await expect(runChaosCommand(['--time', '0'], {})).rejects.toThrow(ConfigError);
    await expect(runChaosCommand(['--nemesis', 'meteor'], {})).rejects.toThrow(/unknown nemesis meteor/);
    await expect(runChaosCommand(['--clients=many'], {})).rejects.toThrow(ConfigError);
    await expect(runChaosCommand([], { IMPULSE_CHAOS_SEED: '-1' })).rejects.toThrow(ConfigError);
    await expect(runChaosCommand(['--shape', 'rings'], {})).rejects.toThrow(ConfigError);
    await expect(runChaosCommand(['--nodes', '2', '--nemesis', 'kill'], {})).rejects.toThrow(
      /--replicas-per-group 3 needs as many nodes/,
    );
  });

  it('answers --help with every option', async () => {
    const help = await runChaosCommand(['--help'], {}).catch((error: unknown) => error);
    expect(help).toBeInstanceOf(HelpRequested);
    for (const flag of ['--time', '--nemesis', '--seed', '--clients', '--results', '--shape', '--nodes']) {
      expect((help as HelpRequested).text).toContain(flag);
    }
  });
});
