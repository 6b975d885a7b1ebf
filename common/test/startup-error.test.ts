import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  StartupError,
  startupErrorCodes,
  startupErrorLines,
  startupErrorOf,
  startupErrorRegistry,
} from '@impulse/common';

describe('start-up error registry', () => {
  const documentation = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map(
    [...documentation.matchAll(/^\| ([12]) +\| `([A-Z_]+)` +\| (.+?) +\|$/gm)].map((match) => [
      match[2],
      { exitCode: Number(match[1]), description: match[3] },
    ]),
  );

  it.each(startupErrorCodes)(
    '%s is documented in docs/errors.md with its exit status and meaning',
    (code) => {
      expect(documented.get(code)).toEqual(startupErrorRegistry[code]);
    },
  );

  it('documents no code that does not exist', () => {
    expect([...documented.keys()].sort()).toEqual([...startupErrorCodes].sort());
  });

  it('maps a mistake in the configuration to 2 and a problem of the environment to 1', () => {
    expect(new StartupError('CONFIG_INVALID', 'x').exitCode).toBe(2);
    expect(new ConfigError(['x']).exitCode).toBe(2);
    expect(new StartupError('DATA_DIRECTORY_IDENTITY_MISMATCH', 'x').exitCode).toBe(2);
    expect(new StartupError('DATA_DIRECTORY_LOCKED', 'x').exitCode).toBe(1);
    expect(new StartupError('ADDRESS_IN_USE', 'x').exitCode).toBe(1);
  });
});

describe('startupErrorOf', () => {
  it('names the address of a listen that failed because the port is taken', async () => {
    const first = createServer();
    first.listen(0, '127.0.0.1');
    await once(first, 'listening');
    const port = (first.address() as { port: number }).port;
    const second = createServer();
    second.listen(port, '127.0.0.1');
    const [error] = (await once(second, 'error')) as [Error];
    first.close();
    const failure = startupErrorOf(error);
    expect(failure.code).toBe('ADDRESS_IN_USE');
    expect(failure.exitCode).toBe(1);
    expect(startupErrorLines('impulse-gateway', failure)).toEqual([
      `impulse-gateway: cannot listen on 127.0.0.1:${port}: EADDRINUSE [ADDRESS_IN_USE]`,
    ]);
  });

  it('keeps a StartupError as it is and makes anything else START_FAILED with its message', () => {
    const refusal = new StartupError('DATA_DIRECTORY_LOCKED', 'held');
    expect(startupErrorOf(refusal)).toBe(refusal);
    const other = startupErrorOf(new Error('disk on fire'));
    expect(other.code).toBe('START_FAILED');
    expect(other.message).toBe('disk on fire');
    expect(startupErrorOf('a string').message).toBe('a string');
  });
});
