import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ImpulseError, errorCodes, errorRegistry } from '@impulse/common';

describe('error registry', () => {
  const documentation = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

  it.each(errorCodes)('%s has an HTTP status and is documented in docs/errors.md', (code) => {
    const { status } = errorRegistry[code];
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(600);
    expect(documentation).toMatch(new RegExp(`\\| \`${code}\` +\\| ${status} +\\|`));
  });

  it('documents no code that does not exist', () => {
    const documented = [...documentation.matchAll(/^\| `([A-Z_]+)` +\|/gm)].map((match) => match[1]);
    expect(documented.sort()).toEqual([...errorCodes].sort());
  });

  it('renders the JSON body with code, message and details', () => {
    const error = new ImpulseError('VALUE_TOO_LARGE', 'too big', { details: { valueBytesMax: 10 } });
    expect(error.status).toBe(413);
    expect(error.toBody()).toEqual({
      error: { code: 'VALUE_TOO_LARGE', message: 'too big', valueBytesMax: 10 },
    });
  });
});
