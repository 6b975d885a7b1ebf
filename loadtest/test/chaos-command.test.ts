import { ConfigError, HelpRequested } from '@impulse/common';
import { describe, expect, it } from 'vitest';
import { parseNemeses, runChaosCommand } from '../src/chaos/chaos-command.js';

describe('npm run chaos', () => {
  it('reads the nemesis list', () => {
    expect([...parseNemeses('all')]).toEqual(['kill', 'pause', 'partition', 'power', 'member']);
    expect([...parseNemeses('none')]).toEqual([]);
    expect([...parseNemeses('pause, kill')]).toEqual(['pause', 'kill']);
    expect(() => parseNemeses('kill,flood')).toThrow(ConfigError);
    expect(() => parseNemeses('kill,flood')).toThrow(/unknown nemesis flood/);
    expect(() => parseNemeses('')).toThrow(ConfigError);
  });

  it('refuses bad options before it starts anything', async () => {
    await expect(runChaosCommand(['--time', '0'], {})).rejects.toThrow(ConfigError);
    await expect(runChaosCommand(['--nemesis', 'meteor'], {})).rejects.toThrow(/unknown nemesis meteor/);
    await expect(runChaosCommand(['--clients=many'], {})).rejects.toThrow(ConfigError);
    await expect(runChaosCommand([], { IMPULSE_CHAOS_SEED: '-1' })).rejects.toThrow(ConfigError);
  });

  it('answers --help with every option', async () => {
    const help = await runChaosCommand(['--help'], {}).catch((error: unknown) => error);
    expect(help).toBeInstanceOf(HelpRequested);
    for (const flag of ['--time', '--nemesis', '--seed', '--clients', '--results']) {
      expect((help as HelpRequested).text).toContain(flag);
    }
  });
});
