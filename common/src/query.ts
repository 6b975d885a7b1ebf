import { ImpulseError } from './errors.js';

/**
 * Query parameters of the data routes (`/kv/{key}` and the scan route `/kv`). Both routes parse
 * their query here, strictly: an unknown or repeated parameter is refused rather than ignored (a
 * misspelt `prefx=` would otherwise scan everything, a misspelt `consistncy=stale` would silently
 * read from the leader), and a malformed escape is refused rather than turned into U+FFFD. `+`
 * stands for a space, as in any form-encoded query.
 */

export type ReadConsistency = 'linearizable' | 'stale';
export const readConsistencies: readonly ReadConsistency[] = ['linearizable', 'stale'];

/** The query of a URL: from the first `?` to the end or to a `#`; a `?` after a `#` starts none. */
export function queryOf(url: string): string {
  const queryAt = url.indexOf('?');
  if (queryAt === -1) return '';
  const fragmentAt = url.indexOf('#');
  if (fragmentAt !== -1 && fragmentAt < queryAt) return '';
  return url.slice(queryAt + 1, fragmentAt === -1 ? undefined : fragmentAt);
}

/**
 * The parameters of `url`'s query, decoded, each at most once and each one of `allowed`; `what`
 * names the route in messages ("scan", "key"). An absent value (`?a`) is the empty string.
 */
export function parseQueryParameters(
  url: string,
  allowed: readonly string[],
  what: string,
): Map<string, string> {
  const values = new Map<string, string>();
  for (const part of queryOf(url).split('&')) {
    if (part === '') continue;
    const equalsAt = part.indexOf('=');
    const name = decodeParameter(equalsAt === -1 ? part : part.slice(0, equalsAt), undefined, what);
    const value = equalsAt === -1 ? '' : decodeParameter(part.slice(equalsAt + 1), name, what);
    if (!allowed.includes(name)) {
      throw new ImpulseError('INVALID_REQUEST', `unknown ${what} parameter ${JSON.stringify(name)}`, {
        details: { parameter: name, allowed },
      });
    }
    if (values.has(name)) {
      throw new ImpulseError('INVALID_REQUEST', `the ${what} parameter ${name} is given more than once`, {
        details: { parameter: name },
      });
    }
    values.set(name, value);
  }
  return values;
}

function decodeParameter(raw: string, parameter: string | undefined, what: string): string {
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch (error) {
    throw new ImpulseError(
      'INVALID_ENCODING',
      `${parameter === undefined ? 'a parameter name' : `the ${what} parameter ${parameter}`} has an invalid percent-encoding or is not UTF-8`,
      { cause: error, details: parameter === undefined ? {} : { parameter } },
    );
  }
}

/** The `consistency` parameter of a read: `linearizable` when absent. */
export function readConsistencyOf(value: string | undefined): ReadConsistency {
  if (value === undefined || value === 'linearizable') return 'linearizable';
  if (value === 'stale') return 'stale';
  throw new ImpulseError('INVALID_REQUEST', 'consistency must be linearizable or stale', {
    details: { parameter: 'consistency', allowed: readConsistencies },
  });
}
