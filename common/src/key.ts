import { ImpulseError } from './errors.js';

export const keyBytesMaxDefault = 1024;
export const kvPathPrefix = '/kv/';

/**
 * The key of a `/kv/{key}` request: everything after `/kv/` in the path (before any `?`),
 * percent-decoded as UTF-8. A key may hold `/` (sent raw or as `%2F`). It must be 1 to
 * `keyBytesMax` bytes of UTF-8 after decoding.
 *
 * The gateway and the shard-node both parse keys with this one function, so they can never
 * disagree about which key a request names.
 */
export function parseKeyFromPath(path: string, keyBytesMax: number = keyBytesMaxDefault): string {
  if (!path.startsWith(kvPathPrefix)) {
    throw new ImpulseError('INVALID_KEY', `the path must start with ${kvPathPrefix}`);
  }
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

/** The path of a key, percent-encoded so that any key round-trips through `parseKeyFromPath`. */
export function pathForKey(key: string): string {
  return kvPathPrefix + encodeURIComponent(key);
}
