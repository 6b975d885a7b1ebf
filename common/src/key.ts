import { ImpulseError } from './errors.js';
import { parseQueryParameters, readConsistencyOf, type ReadConsistency } from './query.js';

export const keyBytesMaxDefault = 1024;
export const kvPathPrefix = '/kv/';

/** The query parameters of a `/kv/{key}` request. */
export const keyParameters = ['consistency'] as const;

/**
 * Keys, and how a request target names one.
 *
 * A key is everything after `/kv/` in the path (before any `?`), percent-decoded as UTF-8: 1 to
 * `keyBytesMax` bytes of UTF-8, any characters. `/` may appear raw or as `%2F`, and nothing in the
 * path is normalised: `/kv//a` names the key `/a`, `/kv/a/../b` the key `a/../b`.
 *
 * Some targets cannot name a key unambiguously, because the libraries and proxies between a client
 * and Impulse read them differently: a raw `#` (a fragment to most, part of the path to node's HTTP
 * parser), a raw `\` (a `/` to WHATWG URL parsers), and the absolute and asterisk forms. They are
 * refused with `INVALID_TARGET` (see `checkRequestTarget`), never rewritten.
 *
 * The gateway and the shard-node parse keys with these functions, and the gateway sends a key on
 * with `pathForKey`, whose escapes no library on the way can normalise.
 */

/**
 * Refuses a request target that could name different things to different parsers: one that does
 * not start with `/` (absolute-form `http://host/...`, asterisk-form `*`), or holds a raw `#` or
 * `\`. Both processes check every request with it before routing.
 */
export function checkRequestTarget(target: string): void {
  if (!target.startsWith('/')) {
    throw new ImpulseError(
      'INVALID_TARGET',
      'the request target must be a path (origin-form): absolute-form and asterisk-form are not served',
    );
  }
  if (target.includes('#') || target.includes('\\')) {
    throw new ImpulseError(
      'INVALID_TARGET',
      'the request target holds a raw "#" or "\\", which clients and proxies read differently: percent-encode it (%23, %5C)',
    );
  }
}

/**
 * The key of a `/kv/{key}` request: everything after `/kv/` in the path (before any `?`),
 * percent-decoded as UTF-8. It must be 1 to `keyBytesMax` bytes of UTF-8 after decoding.
 */
export function parseKeyFromPath(path: string, keyBytesMax: number = keyBytesMaxDefault): string {
  if (!path.startsWith(kvPathPrefix)) {
    throw new ImpulseError('INVALID_KEY', `the path must start with ${kvPathPrefix}`);
  }
  checkRequestTarget(path);
  const queryAt = path.indexOf('?');
  const raw = path.slice(kvPathPrefix.length, queryAt === -1 ? undefined : queryAt);
  let key: string;
  try {
    key = decodeURIComponent(raw);
  } catch (error) {
    throw new ImpulseError('INVALID_ENCODING', 'the key has an invalid percent-encoding or is not UTF-8', {
      cause: error,
    });
  }
  validateKey(key, keyBytesMax);
  return key;
}

/** A parsed `/kv/{key}` request target. */
export interface KeyRequest {
  readonly key: string;
  /** From `?consistency=`; only reads use it. */
  readonly consistency: ReadConsistency;
}

/**
 * Parses a `/kv/{key}` request target: the key and the query, whose only parameter is
 * `consistency` (linearizable or stale), at most once. An unknown parameter is refused, as the
 * scan route refuses one: a misspelt `consistncy=stale` must not silently read from the leader.
 */
export function parseKeyRequest(target: string, keyBytesMax: number = keyBytesMaxDefault): KeyRequest {
  const key = parseKeyFromPath(target, keyBytesMax);
  const parameters = parseQueryParameters(target, keyParameters, 'key');
  return { key, consistency: readConsistencyOf(parameters.get('consistency')) };
}

export function validateKey(key: string, keyBytesMax: number = keyBytesMaxDefault): void {
  if (key.length === 0) {
    throw new ImpulseError('INVALID_KEY', 'the key is empty', { details: { keyBytesMax } });
  }
  if (!key.isWellFormed()) {
    // A lone surrogate has no UTF-8 encoding; Buffer.from would silently replace it.
    throw new ImpulseError('INVALID_KEY', 'the key is not valid Unicode', { details: { keyBytesMax } });
  }
  const keyBytes = Buffer.byteLength(key, 'utf8');
  if (keyBytes > keyBytesMax) {
    throw new ImpulseError(
      'INVALID_KEY',
      `the key is ${keyBytes} bytes of UTF-8; the limit is ${keyBytesMax}`,
      {
        details: { keyBytes, keyBytesMax },
      },
    );
  }
}

/**
 * A key as one path segment that no library can normalise: every byte of its UTF-8 but the letters,
 * digits, `-`, `_` and `~` is percent-encoded. `encodeURIComponent` leaves `.`, `!`, `'`, `(`, `)`
 * and `*` raw; a raw `.` makes `..` a dot-segment that RFC 3986 resolvers remove, so all six are
 * escaped too. The result holds no `/`, `.`, `:`, `?`, `#` or `\`, so joining or re-parsing the
 * path cannot change it. (WHATWG URL parsers, as in `fetch`, read `%2E` as a dot as well: no escape
 * keeps the keys `.` and `..` whole through them. The gateway sends with node's HTTP client, which
 * sends a path as given.)
 */
export function encodeKeySegment(key: string): string {
  return encodeURIComponent(key).replace(
    /[.!'()*]/g,
    (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The path of a key, percent-encoded so that any key round-trips through `parseKeyFromPath`. */
export function pathForKey(key: string): string {
  return kvPathPrefix + encodeKeySegment(key);
}

/** The target that asks a replica for a key: its path, and `?consistency=stale` for a stale read. */
export function keyRequestTarget(request: KeyRequest): string {
  const path = pathForKey(request.key);
  return request.consistency === 'stale' ? `${path}?consistency=stale` : path;
}
