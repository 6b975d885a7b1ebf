import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminAuth, ConfigError, adminHeaders, isAdminPath, readAdminToken } from '@impulse/common';

const token = 'abcdefghijklmnop0123456789-._~+/=';

describe('AdminAuth with a token', () => {
  const auth = new AdminAuth(Buffer.from(token));

  it('lets the right token through, whatever the case of the scheme and the spaces after it', () => {
    expect(auth.configured).toBe(true);
    for (const method of ['GET', 'HEAD', 'POST', 'DELETE', 'PUT'])
      expect(auth.refusalOf(method, `Bearer ${token}`), method).toBeUndefined();
    expect(auth.refusalOf('POST', `bearer ${token}`)).toBeUndefined();
    expect(auth.refusalOf('POST', `BEARER   ${token} `)).toBeUndefined();
  });

  it('refuses a missing, malformed or wrong token for reads and changes alike', () => {
    const reasonOf = (method: string, authorization: string | undefined): unknown =>
      auth.refusalOf(method, authorization)?.error.details['reason'];
    for (const method of ['GET', 'POST']) {
      expect(reasonOf(method, undefined)).toBe('missing');
      expect(reasonOf(method, '')).toBe('missing');
      for (const malformed of [
        token,
        `Basic ${token}`,
        'Bearer',
        `Bearer ${token} x`,
        `Bearer "${token}"`,
        `Bearer ${token}\u00e9`,
        `Bearer ${'a'.repeat(5000)}`,
      ])
        expect(reasonOf(method, malformed), malformed.slice(0, 40)).toBe('malformed');
      for (const wrong of [
        `Bearer x${token}`,
        `Bearer ${token.slice(0, -1)}`,
        'Bearer x',
        `Bearer ${token.toUpperCase()}`,
      ])
        expect(reasonOf(method, wrong), wrong).toBe('invalid');
    }
  });

  it('answers ADMIN_UNAUTHORIZED (401) with an RFC 6750 challenge', () => {
    const missing = auth.refusalOf('POST', undefined);
    expect(missing?.error.code).toBe('ADMIN_UNAUTHORIZED');
    expect(missing?.error.status).toBe(401);
    expect(missing?.challenge).toBe('Bearer realm="impulse-admin"');
    expect(auth.refusalOf('POST', 'Basic x')?.challenge).toBe(
      'Bearer realm="impulse-admin", error="invalid_request"',
    );
    expect(auth.refusalOf('POST', 'Bearer x')?.challenge).toBe(
      'Bearer realm="impulse-admin", error="invalid_token"',
    );
    // The token is never part of an answer.
    expect(JSON.stringify(auth.refusalOf('POST', `Bearer ${token}x`)?.error.toBody())).not.toContain(token);
  });
});

describe('AdminAuth without a token', () => {
  const auth = new AdminAuth(undefined);

  it('answers admin reads and refuses every other method, token or not', () => {
    expect(auth.configured).toBe(false);
    expect(auth.refusalOf('GET', undefined)).toBeUndefined();
    expect(auth.refusalOf('HEAD', 'Bearer x')).toBeUndefined();
    for (const method of ['POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', undefined]) {
      const refused = auth.refusalOf(method, `Bearer ${token}`);
      expect(refused?.error.code, method).toBe('ADMIN_UNAUTHORIZED');
      expect(refused?.error.details['reason'], method).toBe('notConfigured');
    }
  });
});

describe('isAdminPath', () => {
  it('is every path under /admin, in any case, and nothing else', () => {
    for (const path of [
      '/admin',
      '/admin/',
      '/admin/status',
      '/ADMIN/Status',
      '/admin?x=1',
      '/admin/replicas/g1?force=true',
    ])
      expect(isAdminPath(path), path).toBe(true);
    for (const path of [
      '/',
      '/healthz',
      '/readyz',
      '/metrics',
      '/kv/admin',
      '/kv/%2Fadmin',
      '/administer',
      '//admin/status',
      '/admins',
    ])
      expect(isAdminPath(path), path).toBe(false);
  });
});

describe('adminHeaders', () => {
  it('carries a token as a bearer token, and nothing without one', () => {
    expect(adminHeaders(undefined)).toEqual({});
    expect(adminHeaders(token)).toEqual({ authorization: `Bearer ${token}` });
    expect(adminHeaders(Buffer.from(token))).toEqual({ authorization: `Bearer ${token}` });
  });
});

describe('readAdminToken', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-admin-token-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const problemOf = (run: () => unknown): string => {
    try {
      run();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).problems.join('\n');
    }
    throw new Error('no problem found');
  };

  it('reads the token from its file without the trailing newline, or from IMPULSE_ADMIN_TOKEN', async () => {
    const file = join(directory, 'token');
    await writeFile(file, `${token}\r\n`);
    expect(readAdminToken(file, {})?.toString()).toBe(token);
    expect(readAdminToken('', { IMPULSE_ADMIN_TOKEN: token })?.toString()).toBe(token);
    expect(readAdminToken('', {})).toBeUndefined();
  });

  it('refuses both sources at once, an unreadable file, a short token and one a bearer token cannot carry', async () => {
    const file = join(directory, 'spaced');
    await writeFile(file, 'sixteen bytes or more\n');
    expect(problemOf(() => readAdminToken(file, { IMPULSE_ADMIN_TOKEN: token }))).toBe(
      '--admin-token-file and IMPULSE_ADMIN_TOKEN are both set: give the admin token one way',
    );
    expect(problemOf(() => readAdminToken(join(directory, 'none'), {}))).toMatch(
      /^--admin-token-file .*none cannot be read: ENOENT$/,
    );
    expect(problemOf(() => readAdminToken('', { IMPULSE_ADMIN_TOKEN: 'short' }))).toBe(
      'the admin token (IMPULSE_ADMIN_TOKEN) is 5 bytes; at least 16 are needed',
    );
    expect(problemOf(() => readAdminToken(file, {}))).toMatch(
      /^the admin token \(--admin-token-file .*spaced\) holds characters a bearer token cannot carry/,
    );
  });
});
