import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ImpulseError,
  ScanPageBuilder,
  compareKeys,
  encodeContinuation,
  scanItemJson,
  scanItemOf,
  scanRangeOf,
  type ScanPageBody,
  type ScanQuery,
} from '@impulse/common';
import { mergeScanPages, parseGroupPage, type GroupPage } from '../src/scan-merge.js';

/**
 * What a replica answers to a scan of its keys (`ScanPageBuilder` over the range, as the shard-node
 * does), with its own byte budget.
 */
function groupAnswer(keys: readonly string[], query: ScanQuery, bytesMax: number): Buffer {
  const range = scanRangeOf(query);
  const page = new ScanPageBuilder(query.limit, bytesMax);
  let more = false;
  for (const key of [...keys].sort(compareKeys)) {
    const keyBytes = Buffer.from(key, 'utf8');
    if (range.start !== undefined && Buffer.compare(keyBytes, range.start) < 0) continue;
    if (range.end !== undefined && Buffer.compare(keyBytes, range.end) >= 0) break;
    if (!page.maybeAdd(key, scanItemJson(scanItemOf(key, Buffer.from(`v-${key}`))))) {
      more = true;
      break;
    }
  }
  return Buffer.from(page.render(more));
}

function pageOf(groupId: string, keys: readonly string[], more: boolean): GroupPage {
  const builder = new ScanPageBuilder(1000, 1 << 30);
  for (const key of keys) builder.maybeAdd(key, scanItemJson(scanItemOf(key, Buffer.from(`v-${key}`))));
  return parseGroupPage(groupId, Buffer.from(builder.render(more)));
}

function merged(pages: readonly GroupPage[], limit: number, bytesMax = 1 << 20): ScanPageBody {
  return JSON.parse(mergeScanPages(pages, limit, bytesMax)) as ScanPageBody;
}

const keysOf = (page: ScanPageBody): string[] => page.items.map((item) => item.key);

const query: ScanQuery = {
  start: undefined,
  end: undefined,
  prefix: undefined,
  after: undefined,
  limit: 100,
  consistency: 'linearizable',
};

describe('mergeScanPages', () => {
  it('interleaves the groups into one byte order, values included', () => {
    const page = merged(
      [
        pageOf('g1', ['a', 'd', 'e'], false),
        pageOf('g2', ['b', 'c', '\uFFFD'], false),
        pageOf('g3', ['😀'], false),
      ],
      10,
    );
    expect(keysOf(page)).toEqual(['a', 'b', 'c', 'd', 'e', '\uFFFD', '😀']);
    expect(page.items[1]).toEqual({ key: 'b', value: 'v-b' });
    expect(page.next).toBeNull();
  });

  it('cuts at the limit and continues right after the last key', () => {
    const pages = [pageOf('g1', ['a', 'c', 'e'], false), pageOf('g2', ['b', 'd'], false)];
    const page = merged(pages, 3);
    expect(keysOf(page)).toEqual(['a', 'b', 'c']);
    expect(page.next).toBe(encodeContinuation('c'));
    // Exactly `limit` items and nothing left: the page is the last one.
    expect(merged(pages, 5).next).toBeNull();
    expect(merged([pageOf('g1', [], false), pageOf('g2', [], false)], 5)).toEqual({ items: [], next: null });
  });

  it('stops at the lowest last key of a group that has more', () => {
    // g2 stopped short (its byte bound) after 'b': its keys past 'b' are unknown, so the page ends there.
    const page = merged([pageOf('g1', ['a', 'c', 'd'], false), pageOf('g2', ['b'], true)], 10);
    expect(keysOf(page)).toEqual(['a', 'b']);
    expect(page.next).toBe(encodeContinuation('b'));
    // A group that filled its limit has more too: its last key bounds the page.
    const full = merged([pageOf('g1', ['a', 'b', 'c'], true), pageOf('g2', ['aa', 'z'], false)], 3);
    expect(keysOf(full)).toEqual(['a', 'aa', 'b']);
    expect(full.next).toBe(encodeContinuation('b'));
  });

  it('holds its own byte budget past the first item', () => {
    const pages = [pageOf('g1', ['a', 'c'], false), pageOf('g2', ['b', 'd'], false)];
    const itemBytes = Buffer.byteLength(scanItemJson(scanItemOf('a', Buffer.from('v-a'))));
    const page = merged(pages, 10, 2 * itemBytes + 1);
    expect(keysOf(page)).toEqual(['a', 'b']);
    expect(page.next).toBe(encodeContinuation('b'));
    expect(keysOf(merged(pages, 10, 1))).toEqual(['a']);
  });

  it('fails the scan, rather than guess, when two groups answer the same key', () => {
    const pages = [pageOf('g1', ['a', 'k'], false), pageOf('g2', ['b', 'k', 'z'], false)];
    let failure: unknown;
    try {
      mergeScanPages(pages, 10, 1 << 20);
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(ImpulseError);
    expect((failure as ImpulseError).code).toBe('INTERNAL');
    expect((failure as ImpulseError).details).toEqual({ key: 'k', groups: ['g1', 'g2'] });
    // A duplicate past the page is never reached.
    expect(keysOf(merged(pages, 2))).toEqual(['a', 'b']);
  });

  it('pages through any split of keys among groups to exactly the keys, in byte order', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }), { maxLength: 60 }),
        fc.array(fc.nat(3), { minLength: 60, maxLength: 60 }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 4, maxLength: 4 }),
        fc.integer({ min: 1, max: 300 }),
        (keys, owners, limit, groupBytesMax, gatewayBytesMax) => {
          const groups = [0, 1, 2, 3].map((group) => keys.filter((_, index) => owners[index] === group));
          const found: string[] = [];
          let after: string | undefined;
          for (let pageCount = 0; ; pageCount++) {
            expect(pageCount).toBeLessThanOrEqual(keys.length + 1);
            const pages = groups.map((groupKeys, group) =>
              parseGroupPage(
                `g${group}`,
                groupAnswer(groupKeys, { ...query, after, limit }, groupBytesMax[group] as number),
              ),
            );
            const page = merged(pages, limit, gatewayBytesMax);
            expect(page.items.length).toBeLessThanOrEqual(limit);
            found.push(...keysOf(page));
            if (page.next === null) break;
            expect(page.items.length).toBeGreaterThan(0);
            after = page.items.at(-1)?.key;
            expect(page.next).toBe(encodeContinuation(after ?? ''));
          }
          expect(found).toEqual([...keys].sort(compareKeys));
        },
      ),
    );
  });
});

describe('parseGroupPage', () => {
  const malformed = {
    'not JSON': '{"items":',
    'no items': '{"next":null}',
    'items not a list': '{"items":{},"next":null}',
    'a bad next': '{"items":[],"next":5}',
    'an item without a value': '{"items":[{"key":"a"}],"next":null}',
    'a key that is not a string': '{"items":[{"key":1,"value":"x"}],"next":null}',
    'an unknown encoding': '{"items":[{"key":"a","value":"x","encoding":"hex"}],"next":null}',
    'keys out of order': '{"items":[{"key":"b","value":"x"},{"key":"a","value":"x"}],"next":null}',
    'a repeated key': '{"items":[{"key":"a","value":"x"},{"key":"a","value":"x"}],"next":null}',
    'a continuation without items': '{"items":[],"next":"AWE"}',
    null: 'null',
  };

  it.each(Object.entries(malformed))('refuses a page with %s as INTERNAL', (_what, body) => {
    expect(() => parseGroupPage('g7', Buffer.from(body))).toThrow(
      expect.objectContaining({ code: 'INTERNAL', details: { group: 'g7' } }),
    );
  });

  it('reads items, their encoding and whether the group has more', () => {
    const page = parseGroupPage(
      'g1',
      Buffer.from(
        '{"items":[{"key":"a","value":"AP8=","encoding":"base64"},{"key":"b","value":"x"}],"next":"AWI"}',
      ),
    );
    expect(page.more).toBe(true);
    expect(page.items.map((item) => item.json)).toEqual([
      '{"key":"a","value":"AP8=","encoding":"base64"}',
      '{"key":"b","value":"x"}',
    ]);
  });
});
