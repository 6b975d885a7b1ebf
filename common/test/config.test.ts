import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  HelpRequested,
  loadClusterConfig,
  option,
  parseBytes,
  parseClusterConfig,
  parseConfig,
  parseMilliseconds,
} from '@impulse/common';

const program = { name: 'test-program', summary: 'a program under test' };
const specs = {
  port: option.integer({ description: 'Port.', default: 8080, min: 0, max: 65535 }),
  valueBytesMax: option.bytes({ description: 'Largest value.', default: 1024 * 1024 }),
  upstreamTimeout: option.milliseconds({ description: 'Deadline.', default: 5000 }),
  engine: option.enum({
    description: 'Engine.',
    default: 'leveldb',
    choices: ['leveldb', 'memory'] as const,
  }),
  sync: option.boolean({ description: 'Sync.', default: true }),
  name: option.string({ description: 'Name.' }),
};

function problemsOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('parseConfig', () => {
  it('takes defaults, environment variables and flags, flags winning, and freezes the result', () => {
    const config = parseConfig(program, specs, {
      argv: ['--port', '9000', '--value-bytes-max=2MiB', '--sync', 'false', '--name', 'n1'],
      env: { IMPULSE_PORT: '1234', IMPULSE_UPSTREAM_TIMEOUT: '2s', IMPULSE_ENGINE: 'memory' },
    });
    expect(config).toEqual({
      port: 9000,
      valueBytesMax: 2 * 1024 * 1024,
      upstreamTimeout: 2000,
      engine: 'memory',
      sync: false,
      name: 'n1',
    });
    expect(Object.isFrozen(config)).toBe(true);
    const bare = parseConfig(program, specs, { argv: ['--sync', '--name=x'], env: {} });
    expect(bare.sync).toBe(true);
    expect(bare.port).toBe(8080);
  });

  it('reports every problem at once', () => {
    const problems = problemsOf(() =>
      parseConfig(program, specs, {
        argv: ['--port', 'eighty', '--bogus', '1', '--engine=rocks', 'stray'],
        env: { IMPULSE_VALUE_BYTES_MAX: '-5', IMPULSE_UPSTREAM_TIMEOUT: 'soon' },
      }),
    );
    expect(problems.join('\n')).toMatch(/--port: must be a whole number/);
    expect(problems.join('\n')).toMatch(/unknown option --bogus/);
    expect(problems.join('\n')).toMatch(/--engine: must be one of leveldb, memory/);
    expect(problems.join('\n')).toMatch(/unexpected argument "stray"/);
    expect(problems.join('\n')).toMatch(/IMPULSE_VALUE_BYTES_MAX: must be a whole number/);
    expect(problems.join('\n')).toMatch(/IMPULSE_UPSTREAM_TIMEOUT/);
    expect(problems.join('\n')).toMatch(/--name \(or IMPULSE_NAME\) is required/);
    expect(
      problemsOf(() => parseConfig(program, specs, { argv: ['--port', '70000', '--name', 'x'], env: {} })),
    ).toEqual(['--port: must be at most 65535 (got "70000")']);
  });

  it('prints help with every option, its unit and default', () => {
    let help = '';
    try {
      parseConfig(program, specs, { argv: ['--help'], env: {} });
    } catch (error) {
      if (error instanceof HelpRequested) help = error.text;
    }
    for (const flag of [
      '--port <integer>',
      '--value-bytes-max <bytes>',
      '--upstream-timeout <ms>',
      '--engine <leveldb|memory>',
    ]) {
      expect(help).toContain(flag);
    }
    expect(help).toContain('default 1MiB');
    expect(help).toContain('env IMPULSE_NAME, default required');
  });

  it('parses sizes and durations with units', () => {
    expect(parseBytes('512KiB')).toBe(524288);
    expect(parseBytes('1mb')).toBe(1_000_000);
    expect(parseBytes('12 parsecs')).toBeUndefined();
    expect(parseMilliseconds('1.5s')).toBe(1500);
    expect(parseMilliseconds('2m')).toBe(120_000);
    expect(parseMilliseconds('fast')).toBeUndefined();
  });
});

describe('cluster configuration', () => {
  const valid = {
    epoch: 3,
    groups: [{ id: 'g1', replicas: [{ id: 'g1-r1', url: 'http://127.0.0.1:7001/' }] }],
  };

  it('accepts a valid configuration and normalises URLs', () => {
    const cluster = parseClusterConfig(valid);
    expect(cluster.epoch).toBe(3);
    expect(cluster.virtualNodesPerGroup).toBe(160);
    expect(cluster.groups[0]?.replicas[0]?.url).toBe('http://127.0.0.1:7001');
  });

  it('rejects garbage with clear problems', () => {
    expect(problemsOf(() => parseClusterConfig('nope'))).toEqual(['cluster: must be a JSON object']);
    expect(problemsOf(() => parseClusterConfig({ groups: [] }))).toEqual([
      'cluster.groups: must be an array of 1 to 1024 groups',
    ]);
    const problems = problemsOf(() =>
      parseClusterConfig({
        epoch: -1,
        groups: [
          { id: 'g1', replicas: [{ id: 'r1', url: 'ftp://x' }] },
          { id: 'g1', replicas: [{ id: 'r1', url: 'http://127.0.0.1:1' }] },
          { id: '', replicas: [] },
        ],
      }),
    );
    expect(problems).toContain('cluster.epoch: must be a non-negative integer');
    expect(problems).toContain(
      'cluster.groups[0].replicas[0].url: must be an http:// URL with a host and port',
    );
    expect(problems).toContain('cluster.groups[1].id: duplicate group id g1');
    expect(problems).toContain('cluster.groups[1].replicas[0].id: duplicate replica id r1');
    expect(problems.some((problem) => problem.startsWith('cluster.groups[2].id'))).toBe(true);
  });

  it('loads inline JSON and reports unparseable text and unreadable files', () => {
    expect(loadClusterConfig({ json: JSON.stringify(valid) }).epoch).toBe(3);
    expect(problemsOf(() => loadClusterConfig({ json: '{not json' }))[0]).toMatch(/not valid JSON/);
    expect(problemsOf(() => loadClusterConfig({ file: '/nonexistent/cluster.json' }))[0]).toMatch(
      /cannot read cluster file/,
    );
    expect(problemsOf(() => loadClusterConfig({}))[0]).toMatch(/required/);
  });
});
