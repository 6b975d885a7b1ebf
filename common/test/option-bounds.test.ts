import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  HelpRequested,
  durationMillisecondsMaxDefault,
  option,
  optionsGiven,
  parseConfig,
  renderHelp,
  startupErrorLines,
  timerMillisecondsMax,
} from '@impulse/common';

const program = { name: 'test-program', summary: 'a program under test' };

function problemsOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('duration options', () => {
  const specs = {
    requestTimeout: option.milliseconds({
      description: 'A timeout with no maximum of its own.',
      default: 1000,
    }),
    tick: option.milliseconds({
      description: 'A tick with its own maximum.',
      default: 100,
      min: 1,
      max: 60_000,
    }),
  };
  const parse = (argv: string[], env: Record<string, string> = {}): unknown =>
    parseConfig(program, specs, { argv, env });

  it('are bounded by an hour unless they name their own maximum', () => {
    expect(specs.requestTimeout.max).toBe(durationMillisecondsMaxDefault);
    expect(durationMillisecondsMaxDefault).toBe(3_600_000);
    expect(problemsOf(() => parse(['--request-timeout=1h']))).toEqual([]);
    expect(problemsOf(() => parse(['--request-timeout=600h']))).toEqual([
      '--request-timeout: must be at most 3600000 ms (got "600h")',
    ]);
    expect(problemsOf(() => parse([], { IMPULSE_REQUEST_TIMEOUT: '3600001' }))).toEqual([
      'IMPULSE_REQUEST_TIMEOUT: must be at most 3600000 ms (got "3600001")',
    ]);
    expect(problemsOf(() => parse(['--tick=61s']))).toEqual(['--tick: must be at most 60000 ms (got "61s")']);
  });

  it('can never allow more than the timer limit, where setTimeout fires at once', () => {
    expect(timerMillisecondsMax).toBe(2_147_483_647);
    expect(() =>
      option.milliseconds({ description: 'Too long.', default: 1, max: timerMillisecondsMax + 1 }),
    ).toThrow(/cannot allow more than 2147483647 ms/);
    expect(option.milliseconds({ description: 'Long.', default: 1, max: timerMillisecondsMax }).max).toBe(
      timerMillisecondsMax,
    );
  });

  it('show their range in --help', () => {
    const help = renderHelp(program, specs);
    expect(help).toContain(
      '--request-timeout <ms>   env IMPULSE_REQUEST_TIMEOUT, default 1000, at most 3600000',
    );
    expect(help).toContain('--tick <ms>   env IMPULSE_TICK, default 100, from 1 to 60000');
  });
});

describe('option checks', () => {
  const specs = {
    replicas: option.integer({
      description: 'Replicas.',
      default: 3,
      min: 1,
      max: 7,
      check: (value) => (value % 2 === 1 ? undefined : 'must be odd'),
    }),
    name: option.string({
      description: 'Name.',
      default: 'a',
      check: (value) => (value.includes(' ') ? 'must have no space' : undefined),
    }),
  };

  it('refuse what the check refuses, from flags and environment, after the range', () => {
    expect(problemsOf(() => parseConfig(program, specs, { argv: ['--replicas=2'], env: {} }))).toEqual([
      '--replicas: must be odd (got "2")',
    ]);
    expect(problemsOf(() => parseConfig(program, specs, { argv: [], env: { IMPULSE_NAME: 'a b' } }))).toEqual(
      ['IMPULSE_NAME: must have no space (got "a b")'],
    );
    expect(problemsOf(() => parseConfig(program, specs, { argv: ['--replicas=9'], env: {} }))).toEqual([
      '--replicas: must be at most 7 (got "9")',
    ]);
    expect(parseConfig(program, specs, { argv: ['--replicas=5'], env: {} }).replicas).toBe(5);
  });

  it('are not applied to defaults, which the code chose', () => {
    expect(parseConfig(program, specs, { argv: [], env: {} }).replicas).toBe(3);
  });
});

describe('optionsGiven', () => {
  const specs = {
    valueBytesMax: option.bytes({ description: 'Largest value.', default: 1024 }),
    keyBytesMax: option.bytes({ description: 'Longest key.', default: 16 }),
    port: option.integer({ description: 'Port.', default: 1 }),
  };

  it('names the options a flag or an environment variable set, not those left at their default', () => {
    const config = parseConfig(program, specs, {
      argv: ['--value-bytes-max=1KiB'],
      env: { IMPULSE_PORT: '2' },
    });
    expect([...optionsGiven(config)].sort()).toEqual(['port', 'valueBytesMax']);
    expect(optionsGiven({})).toEqual(new Set());
  });
});

describe('ConfigError', () => {
  it('puts the first problem on the first line, where a launcher relaying one line shows it', () => {
    const error = new ConfigError([
      '--a: must be at least 1 (got "0")',
      '--b: must be true or false (got "x")',
    ]);
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.exitCode).toBe(2);
    expect(startupErrorLines('program', error)).toEqual([
      'program: invalid configuration: --a: must be at least 1 (got "0") [CONFIG_INVALID]',
      '  --b: must be true or false (got "x")',
    ]);
  });

  it('is not thrown for --help', () => {
    expect(() => parseConfig(program, {}, { argv: ['--help'], env: {} })).toThrow(HelpRequested);
  });
});
