import { describe, expect, it } from 'vitest';
import { ImpulseError, parseKeyFromPath, pathForKey } from '@impulse/common';

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof ImpulseError ? error.code : 'not an ImpulseError';
  }
  return undefined;
}

describe('parseKeyFromPath', () => {
  it('decodes the rest of the path after /kv/, query excluded', () => {
    expect(parseKeyFromPath('/kv/hello')).toBe('hello');
    expect(parseKeyFromPath('/kv/a%2Fb')).toBe('a/b');
    expect(parseKeyFromPath('/kv/a/b?consistency=stale')).toBe('a/b');
    expect(parseKeyFromPath('/kv/%E2%82%AC')).toBe('€');
    expect(parseKeyFromPath('/kv/sp%20ace')).toBe('sp ace');
  });

  it('round-trips any key through pathForKey', () => {
    for (const key of ['a b', '?x=1', '#frag', '%', '€/∑', 'a'.repeat(1024), '\u0000nul']) {
      expect(parseKeyFromPath(pathForKey(key))).toBe(key);
    }
  });

  it('refuses empty keys, keys over the limit and bad encodings with stable codes', () => {
    expect(codeOf(() => parseKeyFromPath('/kv/'))).toBe('INVALID_KEY');
    expect(codeOf(() => parseKeyFromPath('/kv/?x=1'))).toBe('INVALID_KEY');
    expect(codeOf(() => parseKeyFromPath(`/kv/${'a'.repeat(1025)}`))).toBe('INVALID_KEY');
    // 512 two-byte characters are 1024 bytes: allowed; one more byte is not.
    expect(parseKeyFromPath(pathForKey('é'.repeat(512)))).toBe('é'.repeat(512));
    expect(codeOf(() => parseKeyFromPath(pathForKey(`${'é'.repeat(512)}a`)))).toBe('INVALID_KEY');
    expect(codeOf(() => parseKeyFromPath('/kv/%'))).toBe('INVALID_ENCODING');
    expect(codeOf(() => parseKeyFromPath('/kv/%zz'))).toBe('INVALID_ENCODING');
    expect(codeOf(() => parseKeyFromPath('/kv/%FF'))).toBe('INVALID_ENCODING');
    expect(codeOf(() => parseKeyFromPath('/kv/%ED%A0%80'))).toBe('INVALID_ENCODING');
    expect(codeOf(() => parseKeyFromPath('/kv/abc', 2))).toBe('INVALID_KEY');
  });
});
