import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { ImpulseError } from './errors.js';
import { keyBytesMaxDefault } from './key.js';
import { parseQueryParameters, readConsistencyOf, type ReadConsistency } from './query.js';

/**
 * Ordered range scans: `GET /kv?start=&end=&prefix=&limit=&continue=&consistency=`.
 *
 * The gateway and the shard-node parse a scan's query, bound its page and encode its items and its
 * continuation token with the functions of this file, so they can never disagree on what a scan
 * asks for or on what a page holds. See README.md ("Range scans") for the API.
 */

/** The path of the scan route: `/kv` exactly, beside the key routes under `/kv/`. */
export const scanPath = '/kv';

/** Items of a page when the request gives no `limit`. */
export const scanLimitDefault = 100;

/**
 * The largest `limit` a request may give. A constant, not a setting: the gateway asks every group
 * for up to `limit` items, so the gateway and every replica must accept the same limits.
 */
export const scanLimitMax = 1000;

/**
 * The bytes of items (their JSON text) in one page at most, on a replica and at the gateway alike.
 * A page stops early, with a continuation, rather than cross it; its first item always fits, so a
 * page always makes progress, and one page is then at most one item over.
 */
export const scanPageBytesMax = 1024 * 1024;

export const scanParameters = ['start', 'end', 'prefix', 'limit', 'continue', 'consistency'] as const;

export type ScanConsistency = ReadConsistency;

/** A validated scan request. Every key bound is a valid key (1 to `keyBytesMax` bytes of UTF-8). */
export interface ScanQuery {
  /** Inclusive lower bound; none when absent or empty. */
  readonly start: string | undefined;
  /** Exclusive upper bound; none when absent or empty. */
  readonly end: string | undefined;
  /** Only keys that start with it; none when absent or empty. */
  readonly prefix: string | undefined;
  /** The last key of the previous page (from `continue`): this page starts right after it. */
  readonly after: string | undefined;
  readonly limit: number;
  readonly consistency: ScanConsistency;
}

/** Whether a request URL names the scan route: its path (before any `?` or `#`) is `/kv` exactly. */
export function isScanPath(url: string): boolean {
  if (!url.startsWith(scanPath)) return false;
  const next = url.charAt(scanPath.length);
  return next === '' || next === '?' || next === '#';
}

/**
 * Parses and validates the query of a scan URL. Stricter than express's query parser on purpose: a
 * misspelt parameter (`prefx=`) would otherwise silently scan everything, and a malformed escape
 * would silently become U+FFFD. `+` stands for a space, as in any form-encoded query.
 *
 * - an unknown or repeated parameter, a `limit` that is not an integer in 1..`scanLimitMax`, an
 *   unknown `consistency`, or `end` not above `start`: `INVALID_REQUEST`;
 * - an invalid percent-encoding or bytes that are not UTF-8: `INVALID_ENCODING`;
 * - a `start`, `end` or `prefix` over `keyBytesMax` bytes of UTF-8: `INVALID_KEY`;
 * - a `continue` token that this version did not make: `INVALID_CONTINUATION`.
 */
export function parseScanQuery(url: string, keyBytesMax: number = keyBytesMaxDefault): ScanQuery {
  const values = parseQueryParameters(url, scanParameters, 'scan');
  const start = keyBoundOf(values.get('start'), 'start', keyBytesMax);
  const end = keyBoundOf(values.get('end'), 'end', keyBytesMax);
  if (start !== undefined && end !== undefined && compareKeys(start, end) >= 0) {
    throw new ImpulseError('INVALID_REQUEST', 'end must be above start (end is exclusive)', {
      details: { parameter: 'end' },
    });
  }
  const token = values.get('continue');
  return {
    start,
    end,
    prefix: keyBoundOf(values.get('prefix'), 'prefix', keyBytesMax),
    after: token === undefined ? undefined : decodeContinuation(token, keyBytesMax),
    limit: limitOf(values.get('limit')),
    consistency: readConsistencyOf(values.get('consistency')),
  };
}

/**
 * The path and query that ask a replica for the same scan: what the gateway sends each group.
 * `parseScanQuery(scanQueryPath(query))` gives `query` back.
 */
export function scanQueryPath(query: ScanQuery): string {
  const parts: string[] = [];
  if (query.start !== undefined) parts.push(`start=${encodeURIComponent(query.start)}`);
  if (query.end !== undefined) parts.push(`end=${encodeURIComponent(query.end)}`);
  if (query.prefix !== undefined) parts.push(`prefix=${encodeURIComponent(query.prefix)}`);
  if (query.after !== undefined) parts.push(`continue=${encodeContinuation(query.after)}`);
  parts.push(`limit=${query.limit}`);
  if (query.consistency !== 'linearizable') parts.push(`consistency=${query.consistency}`);
  return `${scanPath}?${parts.join('&')}`;
}

/** Keys `k` with `start <= k < end` in byte order, as UTF-8 bytes; an absent bound is no bound. */
export interface ScanRange {
  readonly start: Buffer | undefined;
  readonly end: Buffer | undefined;
}

/**
 * The keys a scan covers: from the highest of `start`, `prefix` and the key right after `after`,
 * to the lowest of `end` and the first key past every key with `prefix`. A prefix combined with
 * start or end is their intersection; it may be empty (see `isEmptyScanRange`).
 */
export function scanRangeOf(query: ScanQuery): ScanRange {
  const lower: Buffer[] = [];
  const upper: Buffer[] = [];
  if (query.start !== undefined) lower.push(Buffer.from(query.start, 'utf8'));
  if (query.end !== undefined) upper.push(Buffer.from(query.end, 'utf8'));
  if (query.prefix !== undefined) {
    const prefix = Buffer.from(query.prefix, 'utf8');
    lower.push(prefix);
    const pastPrefix = firstKeyPastPrefix(prefix);
    if (pastPrefix !== undefined) upper.push(pastPrefix);
  }
  // The smallest key above `after` in byte order is `after` followed by one zero byte.
  if (query.after !== undefined) lower.push(Buffer.concat([Buffer.from(query.after, 'utf8'), zeroByte]));
  return {
    start: lower.reduce<Buffer | undefined>(
      (highest, bound) => (highest === undefined || Buffer.compare(bound, highest) > 0 ? bound : highest),
      undefined,
    ),
    end: upper.reduce<Buffer | undefined>(
      (lowest, bound) => (lowest === undefined || Buffer.compare(bound, lowest) < 0 ? bound : lowest),
      undefined,
    ),
  };
}

const zeroByte = Buffer.from([0]);

export function isEmptyScanRange(range: ScanRange): boolean {
  return range.start !== undefined && range.end !== undefined && Buffer.compare(range.start, range.end) >= 0;
}

/**
 * The first byte string above every string that starts with `prefix`: the prefix with its last
 * byte below 0xff incremented and what follows dropped; none when every byte is 0xff.
 */
export function firstKeyPastPrefix(prefix: Uint8Array): Buffer | undefined {
  for (let at = prefix.byteLength - 1; at >= 0; at--) {
    const byte = prefix[at] as number;
    if (byte < 0xff) {
      const past = Buffer.from(prefix.subarray(0, at + 1));
      past[at] = byte + 1;
      return past;
    }
  }
  return undefined;
}

/**
 * Compares two keys in the byte order of their UTF-8 encodings, the order of every engine and of
 * every page. JavaScript's `<` compares UTF-16 code units, which differs for characters above
 * U+FFFF against U+E000..U+FFFF: never sort keys with it.
 */
export function compareKeys(left: string, right: string): number {
  return Buffer.compare(Buffer.from(left, 'utf8'), Buffer.from(right, 'utf8'));
}

// -------------------------------------------------------------------------------------------------
// The continuation token.

/** The first byte of every token; a token with another is from another version and refused. */
const continuationVersion = 1;
const base64UrlPattern = /^[A-Za-z0-9_-]+$/;

/**
 * The continuation token after `key`: base64url (no padding) of a version byte and the key's UTF-8
 * bytes. Opaque to clients: they pass it back as `continue`; only the version byte is promised.
 */
export function encodeContinuation(key: string): string {
  return Buffer.concat([Buffer.from([continuationVersion]), Buffer.from(key, 'utf8')]).toString('base64url');
}

/** The key a continuation token names; `INVALID_CONTINUATION` for anything `encodeContinuation` did not make. */
export function decodeContinuation(token: string, keyBytesMax: number = keyBytesMaxDefault): string {
  const invalid = (reason: string): ImpulseError =>
    new ImpulseError('INVALID_CONTINUATION', `the continue token is invalid: ${reason}`, {
      details: { parameter: 'continue' },
    });
  if (!base64UrlPattern.test(token)) throw invalid('it is not base64url');
  const bytes = Buffer.from(token, 'base64url');
  // Only the canonical encoding is accepted: one token per key, and no trailing bits ignored.
  if (bytes.toString('base64url') !== token) throw invalid('it is not canonical base64url');
  if (bytes[0] !== continuationVersion) throw invalid('it comes from another version');
  const key = bytes.subarray(1);
  if (key.byteLength === 0 || key.byteLength > keyBytesMax || !isUtf8(key)) throw invalid('it names no key');
  return key.toString('utf8');
}

// -------------------------------------------------------------------------------------------------
// Items and pages.

/**
 * One item of a page. `value` is the value as UTF-8 text when its bytes are valid UTF-8; otherwise
 * it is base64 (standard alphabet, padded) and `encoding` is `"base64"`. Either way it decodes to
 * the exact bytes stored (`scanItemValue`).
 */
export interface ScanItem {
  readonly key: string;
  readonly value: string;
  readonly encoding?: 'base64';
}

export function scanItemOf(key: string, value: Uint8Array): ScanItem {
  const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return isUtf8(bytes)
    ? { key, value: bytes.toString('utf8') }
    : { key, value: bytes.toString('base64'), encoding: 'base64' };
}

/** The bytes an item's value stands for. */
export function scanItemValue(item: ScanItem): Buffer {
  return Buffer.from(item.value, item.encoding === 'base64' ? 'base64' : 'utf8');
}

/** The item's JSON text, as it appears in a page. */
export function scanItemJson(item: ScanItem): string {
  return JSON.stringify(
    item.encoding === undefined
      ? { key: item.key, value: item.value }
      : { key: item.key, value: item.value, encoding: item.encoding },
  );
}

/** The JSON body of a scan answer. `next` is `null` when no key remains in the range. */
export interface ScanPageBody {
  readonly items: readonly ScanItem[];
  readonly next: string | null;
}

/**
 * Builds one page: at most `limit` items and, past its first item, at most `bytesMax` bytes of
 * item JSON. The caller feeds items in key order until `maybeAdd` refuses one (or the range ends),
 * then renders the page saying whether keys remain.
 */
export class ScanPageBuilder {
  readonly #parts: string[] = [];
  #bytes = 0;
  #lastKey: string | undefined;

  constructor(
    readonly limit: number,
    readonly bytesMax: number,
  ) {
    assert.ok(Number.isSafeInteger(limit) && limit >= 1, 'a page holds at least one item');
    assert.ok(bytesMax >= 1, 'a page has a byte budget');
  }

  get count(): number {
    return this.#parts.length;
  }

  /** Bytes of item JSON so far, separators included. */
  get bytes(): number {
    return this.#bytes;
  }

  get isFull(): boolean {
    return this.#parts.length >= this.limit;
  }

  /**
   * Adds an item unless the page is full or the item would take it past `bytesMax` (a first item
   * always fits). Answers whether it added the item; a refused item belongs to the next page.
   */
  maybeAdd(key: string, itemJson: string): boolean {
    if (this.isFull) return false;
    const itemBytes = Buffer.byteLength(itemJson, 'utf8') + (this.#parts.length > 0 ? 1 : 0);
    if (this.#parts.length > 0 && this.#bytes + itemBytes > this.bytesMax) return false;
    assert.ok(
      this.#lastKey === undefined || compareKeys(this.#lastKey, key) < 0,
      'a page holds keys in ascending order',
    );
    this.#parts.push(itemJson);
    this.#bytes += itemBytes;
    this.#lastKey = key;
    return true;
  }

  /** The page's JSON body; `more` says keys remain past its last item, which then carries `next`. */
  render(more: boolean): string {
    assert.ok(!more || this.#lastKey !== undefined, 'a page that continues holds an item');
    const next =
      more && this.#lastKey !== undefined ? JSON.stringify(encodeContinuation(this.#lastKey)) : 'null';
    return `{"items":[${this.#parts.join(',')}],"next":${next}}`;
  }
}

/**
 * The largest answer a scan page can be, for a reader that must bound what it reads: the page
 * budget or one item, whichever is larger, plus the envelope. An item's JSON escapes a control
 * character as six bytes (`\u0001`), so one item takes at most six bytes per byte of key and value.
 */
export function scanAnswerBytesMax(keyBytesMax: number, valueBytesMax: number): number {
  const itemBytesMax = 6 * (keyBytesMax + valueBytesMax) + 64;
  const envelopeBytesMax = 2 * (keyBytesMax + 1) + 64;
  return Math.max(scanPageBytesMax, itemBytesMax) + envelopeBytesMax;
}

// -------------------------------------------------------------------------------------------------
// Parameters.

/** A key bound: empty means none; otherwise a valid key. */
function keyBoundOf(value: string | undefined, parameter: string, keyBytesMax: number): string | undefined {
  if (value === undefined || value === '') return undefined;
  const keyBytes = Buffer.byteLength(value, 'utf8');
  if (keyBytes > keyBytesMax) {
    throw new ImpulseError(
      'INVALID_KEY',
      `${parameter} is ${keyBytes} bytes of UTF-8; the key limit is ${keyBytesMax}`,
      { details: { parameter, keyBytes, keyBytesMax } },
    );
  }
  return value;
}

function limitOf(value: string | undefined): number {
  if (value === undefined) return scanLimitDefault;
  const limit = /^\d{1,7}$/.test(value) ? Number(value) : Number.NaN;
  if (!(limit >= 1 && limit <= scanLimitMax)) {
    throw new ImpulseError('INVALID_REQUEST', `limit must be an integer from 1 to ${scanLimitMax}`, {
      details: { parameter: 'limit', limitMax: scanLimitMax },
    });
  }
  return limit;
}
