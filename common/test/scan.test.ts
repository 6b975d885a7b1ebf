import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ImpulseError,
  ScanPageBuilder,
  compareKeys,
  decodeContinuation,
  encodeContinuation,
  firstKeyPastPrefix,
  isEmptyScanRange,
  isScanPath,
  parseScanQuery,
  scanItemJson,
  scanItemOf,
  scanItemValue,
  scanLimitMax,
  scanQueryPath,
  scanRangeOf,
  type ScanPageBody,
  type ScanQuery,
} from '@impulse/common';

/** The code and details of the ImpulseError that `run` throws. */
function refusal(run: () => unknown): { code: string; details: Record<string, unknown> } {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ImpulseError);
    const failure = error as ImpulseError;
    return { code: failure.code, details: { ...failure.details } };
  }
  throw new Error('expected a refusal');
}

const everything: ScanQuery = {
  start: undefined,
  end: undefined,
  prefix: undefined,
  after: undefined,
  limit: 100,
  consistency: 'linearizable',
};

describe('isScanPath', () => {
  it('takes the path /kv exactly, with or without a query', () => {
    for (const url of ['/kv', '/kv?', '/kv?start=a', '/kv#x', '/kv?limit=1#frag']) {
      expect(isScanPath(url), url).toBe(true);
    }
    for (const url of ['/kv/', '/kv/a', '/kvx', '/KV', '/kv%3F', '/', 'http://h/kv']) {
      expect(isScanPath(url), url).toBe(false);
    }
  });
});

describe('parseScanQuery', () => {
  it('gives the defaults without a query, and treats empty bounds as none', () => {
    expect(parseScanQuery('/kv')).toEqual(everything);
    expect(parseScanQuery('/kv?start=&end=&prefix=&&')).toEqual(everything);
    expect(parseScanQuery('/kv?start')).toEqual(everything);
  });

  it('reads every parameter, percent-decoded, with + as a space', () => {
    const token = encodeContinuation('k/7');
    expect(
      parseScanQuery(
        `/kv?start=a%2Fb&end=z+z&prefix=%E2%82%AC&limit=1000&continue=${token}&consistency=stale`,
      ),
    ).toEqual({
      start: 'a/b',
      end: 'z z',
      prefix: '€',
      after: 'k/7',
      limit: 1000,
      consistency: 'stale',
    });
    expect(parseScanQuery('/kv?limit=1&consistency=linearizable')).toMatchObject({ limit: 1 });
    // A fragment ends the query; a '?' after it starts none.
    expect(parseScanQuery('/kv?limit=5#limit=bogus').limit).toBe(5);
    expect(parseScanQuery('/kv#?limit=bogus').limit).toBe(100);
  });

  it('refuses a limit that is not an integer from 1 to the maximum', () => {
    for (const limit of ['0', '-1', '1001', '1.5', '1e3', ' 5', '0x10', '', 'ten', '99999999999']) {
      expect(
        refusal(() => parseScanQuery(`/kv?limit=${limit}`)),
        limit,
      ).toEqual({
        code: 'INVALID_REQUEST',
        details: { parameter: 'limit', limitMax: scanLimitMax },
      });
    }
    expect(parseScanQuery(`/kv?limit=${scanLimitMax}`).limit).toBe(scanLimitMax);
  });

  it('refuses unknown and repeated parameters, and an unknown consistency', () => {
    expect(refusal(() => parseScanQuery('/kv?prefx=a'))).toMatchObject({
      code: 'INVALID_REQUEST',
      details: { parameter: 'prefx' },
    });
    expect(refusal(() => parseScanQuery('/kv?start=a&start=b'))).toMatchObject({
      code: 'INVALID_REQUEST',
      details: { parameter: 'start' },
    });
    expect(refusal(() => parseScanQuery('/kv?consistency=strong'))).toMatchObject({
      code: 'INVALID_REQUEST',
      details: { parameter: 'consistency', allowed: ['linearizable', 'stale'] },
    });
  });

  it('refuses invalid percent-encodings and bytes that are not UTF-8', () => {
    for (const query of ['start=%ZZ', 'end=abc%', 'prefix=%FF%FE', 'start=%ED%A0%80', '%ZZ=1']) {
      expect(refusal(() => parseScanQuery(`/kv?${query}`)).code, query).toBe('INVALID_ENCODING');
    }
  });

  it('refuses a bound over the key size limit, in bytes of UTF-8', () => {
    expect(parseScanQuery(`/kv?start=${'€'.repeat(5)}`, 15).start).toBe('€'.repeat(5));
    for (const parameter of ['start', 'end', 'prefix']) {
      expect(refusal(() => parseScanQuery(`/kv?${parameter}=${'%E2%82%AC'.repeat(6)}`, 16))).toEqual({
        code: 'INVALID_KEY',
        details: { parameter, keyBytes: 18, keyBytesMax: 16 },
      });
    }
  });

  it('refuses an end that is not above start, in byte order', () => {
    expect(refusal(() => parseScanQuery('/kv?start=b&end=a')).code).toBe('INVALID_REQUEST');
    expect(refusal(() => parseScanQuery('/kv?start=b&end=b')).code).toBe('INVALID_REQUEST');
    // U+FFFD sorts below U+1F600 in UTF-8 (and above it in UTF-16 code units).
    expect(
      parseScanQuery(`/kv?start=${encodeURIComponent('\uFFFD')}&end=${encodeURIComponent('😀')}`),
    ).toMatchObject({ start: '\uFFFD', end: '😀' });
    expect(
      refusal(() =>
        parseScanQuery(`/kv?start=${encodeURIComponent('😀')}&end=${encodeURIComponent('\uFFFD')}`),
      ).code,
    ).toBe('INVALID_REQUEST');
  });

  it('refuses a continue token it did not make', () => {
    expect(refusal(() => parseScanQuery('/kv?continue=')).code).toBe('INVALID_CONTINUATION');
    expect(refusal(() => parseScanQuery('/kv?continue=%21%21')).code).toBe('INVALID_CONTINUATION');
  });

  it('is given back the query it was made from by scanQueryPath', () => {
    const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(
        fc.record({
          start: fc.option(key, { nil: undefined }),
          end: fc.option(key, { nil: undefined }),
          prefix: fc.option(key, { nil: undefined }),
          after: fc.option(key, { nil: undefined }),
          limit: fc.integer({ min: 1, max: scanLimitMax }),
          consistency: fc.constantFrom('linearizable' as const, 'stale' as const),
        }),
        (query) => {
          fc.pre(
            query.start === undefined || query.end === undefined || compareKeys(query.start, query.end) < 0,
          );
          const path = scanQueryPath(query);
          expect(isScanPath(path)).toBe(true);
          expect(parseScanQuery(path)).toEqual(query);
        },
      ),
    );
  });
});

describe('the continuation token', () => {
  it('round-trips any key, and is base64url of a version byte and the key', () => {
    expect(encodeContinuation('key14')).toBe(Buffer.from('\u0001key14').toString('base64url'));
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 64 }), (key) => {
        const token = encodeContinuation(key);
        expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(decodeContinuation(token)).toBe(key);
      }),
    );
  });

  it('refuses anything else with INVALID_CONTINUATION', () => {
    const cases = {
      'not base64url': 'a+b/',
      padded: `${Buffer.from('\u0001ab').toString('base64url')}=`,
      'not canonical': 'AWF',
      'another version': Buffer.from('\u0002key').toString('base64url'),
      'no key': Buffer.from([1]).toString('base64url'),
      'not UTF-8': Buffer.from([1, 0xff, 0xfe]).toString('base64url'),
      'over the key limit': encodeContinuation('k'.repeat(17)),
      empty: '',
    };
    for (const [what, token] of Object.entries(cases)) {
      expect(
        refusal(() => decodeContinuation(token, 16)),
        what,
      ).toEqual({
        code: 'INVALID_CONTINUATION',
        details: { parameter: 'continue' },
      });
    }
    expect(decodeContinuation(encodeContinuation('k'.repeat(16)), 16)).toBe('k'.repeat(16));
  });
});

describe('scanRangeOf', () => {
  const range = (query: Partial<ScanQuery>): [string | undefined, string | undefined] => {
    const { start, end } = scanRangeOf({ ...everything, ...query });
    return [start?.toString('latin1'), end?.toString('latin1')];
  };

  it('is everything without bounds, and [start, end) with them', () => {
    expect(range({})).toEqual([undefined, undefined]);
    expect(range({ start: 'b', end: 'd' })).toEqual(['b', 'd']);
  });

  it('is the prefix range intersected with start and end', () => {
    expect(range({ prefix: 'user:' })).toEqual(['user:', 'user;']);
    expect(range({ prefix: 'user:', start: 'user:m' })).toEqual(['user:m', 'user;']);
    expect(range({ prefix: 'user:', start: 'a', end: 'user:c' })).toEqual(['user:', 'user:c']);
    expect(range({ prefix: 'user:', end: 'zzz' })).toEqual(['user:', 'user;']);
    expect(isEmptyScanRange(scanRangeOf({ ...everything, prefix: 'user:', start: 'v' }))).toBe(true);
    expect(isEmptyScanRange(scanRangeOf({ ...everything, prefix: 'user:', end: 'user:' }))).toBe(true);
    expect(isEmptyScanRange(scanRangeOf({ ...everything, prefix: 'user:' }))).toBe(false);
  });

  it('starts right after the key a continuation names', () => {
    expect(range({ after: 'k1' })).toEqual(['k1\u0000', undefined]);
    expect(range({ after: 'k1', start: 'k5' })).toEqual(['k5', undefined]);
    expect(range({ after: 'k9', start: 'k5', end: 'k9\u0000' })).toEqual(['k9\u0000', 'k9\u0000']);
    expect(isEmptyScanRange(scanRangeOf({ ...everything, after: 'k9', end: 'k9\u0000' }))).toBe(true);
  });

  it('ends a prefix range past its last byte below 0xff', () => {
    expect(firstKeyPastPrefix(Buffer.from([0x61, 0xff, 0xff]))).toEqual(Buffer.from([0x62]));
    expect(firstKeyPastPrefix(Buffer.from([0x61, 0x62]))).toEqual(Buffer.from([0x61, 0x63]));
    expect(firstKeyPastPrefix(Buffer.from([0xff]))).toBeUndefined();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 6 }),
        fc.uint8Array({ maxLength: 6 }),
        (prefix, rest) => {
          const past = firstKeyPastPrefix(prefix);
          const withPrefix = Buffer.concat([prefix, rest]);
          if (past !== undefined) expect(Buffer.compare(withPrefix, past)).toBeLessThan(0);
          expect(Buffer.compare(withPrefix, Buffer.from(prefix))).toBeGreaterThanOrEqual(0);
        },
      ),
    );
  });
});

describe('compareKeys', () => {
  it('orders keys by their UTF-8 bytes, not by UTF-16 code units', () => {
    expect(compareKeys('a', 'b')).toBeLessThan(0);
    expect(compareKeys('ab', 'a')).toBeGreaterThan(0);
    expect(compareKeys('x', 'x')).toBe(0);
    // '\uFFFD' < '😀' by code point and in UTF-8, but '😀' < '\uFFFD' in UTF-16 code units.
    expect('😀' < '\uFFFD').toBe(true);
    expect(compareKeys('\uFFFD', '😀')).toBeLessThan(0);
  });
});

describe('scan items', () => {
  it('carry UTF-8 values as text and anything else as base64, and decode to the same bytes', () => {
    expect(scanItemOf('k', Buffer.from('héllo'))).toEqual({ key: 'k', value: 'héllo' });
    expect(scanItemOf('k', Buffer.from([0, 0xff]))).toEqual({ key: 'k', value: 'AP8=', encoding: 'base64' });
    expect(scanItemOf('k', Buffer.alloc(0))).toEqual({ key: 'k', value: '' });
    expect(scanItemJson(scanItemOf('k', Buffer.from([0xff])))).toBe(
      '{"key":"k","value":"/w==","encoding":"base64"}',
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const item = JSON.parse(scanItemJson(scanItemOf('k', bytes))) as Parameters<typeof scanItemValue>[0];
        expect(scanItemValue(item).equals(Buffer.from(bytes))).toBe(true);
      }),
    );
  });
});

describe('ScanPageBuilder', () => {
  const item = (key: string, valueBytes = 1): string =>
    scanItemJson(scanItemOf(key, Buffer.alloc(valueBytes, 0x61)));
  const body = (page: ScanPageBuilder, more: boolean): ScanPageBody =>
    JSON.parse(page.render(more)) as ScanPageBody;

  it('stops at the limit, and names the last key in next when keys remain', () => {
    const page = new ScanPageBuilder(2, 1024);
    expect(page.maybeAdd('a', item('a'))).toBe(true);
    expect(page.maybeAdd('b', item('b'))).toBe(true);
    expect(page.isFull).toBe(true);
    expect(page.maybeAdd('c', item('c'))).toBe(false);
    expect(body(page, true)).toEqual({
      items: [
        { key: 'a', value: 'a' },
        { key: 'b', value: 'a' },
      ],
      next: encodeContinuation('b'),
    });
    expect(body(page, false).next).toBeNull();
    expect(body(new ScanPageBuilder(1, 1), false)).toEqual({ items: [], next: null });
  });

  it('stays within its byte budget past the first item, which always fits', () => {
    const first = item('a', 100);
    const page = new ScanPageBuilder(100, 50);
    expect(page.maybeAdd('a', first)).toBe(true);
    expect(page.bytes).toBe(Buffer.byteLength(first));
    expect(page.maybeAdd('b', item('b'))).toBe(false);
    expect(body(page, true).next).toBe(encodeContinuation('a'));

    const small = item('a');
    const exact = new ScanPageBuilder(100, 2 * Buffer.byteLength(small) + 1);
    expect(exact.maybeAdd('a', small)).toBe(true);
    expect(exact.maybeAdd('b', item('b'))).toBe(true); // exactly the budget, with the comma
    expect(exact.maybeAdd('c', item('c'))).toBe(false);
    expect(Buffer.byteLength(exact.render(true))).toBeGreaterThan(exact.bytes);
  });

  it('asserts keys ascend and that a continuing page holds an item', () => {
    const page = new ScanPageBuilder(10, 1024);
    page.maybeAdd('b', item('b'));
    expect(() => page.maybeAdd('a', item('a'))).toThrow(/ascending/);
    expect(() => new ScanPageBuilder(10, 1024).render(true)).toThrow(/holds an item/);
    expect(() => new ScanPageBuilder(0, 1024)).toThrow();
  });
});
