import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderMarkdownTable, type OptionSpec } from '@impulse/common';
import { gatewayOptions } from '@impulse/gateway';
import { chaosOptions } from '@impulse/loadtest';
import { startOptions } from '@impulse/local-cluster';
import { shardNodeOptions } from '@impulse/shard-node';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const chaosDoc = readFileSync(new URL('../../docs/chaos.md', import.meta.url), 'utf8');

/** Table rows as lists of trimmed cells, so that prettier's column padding does not matter. */
function rowsOf(table: string): string[][] {
  return table
    .trim()
    .split('\n')
    .filter((line) => line.startsWith('|') && !/^\|[\s|-]+\|$/.test(line))
    .map((line) =>
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim().replace(/\s+/g, ' ')),
    );
}

describe('README', () => {
  it.each([
    ['npm-start', startOptions],
    ['shard-node', shardNodeOptions],
    ['gateway', gatewayOptions],
  ] as [string, Record<string, OptionSpec>][])(
    'documents every %s option as the code defines it',
    (name, specs) => {
      const match = new RegExp(`<!-- config:${name} -->([\\s\\S]*?)<!-- /config:${name} -->`).exec(readme);
      expect(match, `README section config:${name}`).not.toBeNull();
      const expected = renderMarkdownTable(specs);
      expect(
        rowsOf(match?.[1] ?? ''),
        `README table for ${name} is stale; it should be:\n${expected}`,
      ).toEqual(rowsOf(expected));
    },
  );

  it('documents every chaos option in docs/chaos.md as the code defines it', () => {
    const match = /<!-- config:chaos -->([\s\S]*?)<!-- \/config:chaos -->/.exec(chaosDoc);
    expect(match, 'docs/chaos.md section config:chaos').not.toBeNull();
    const expected = renderMarkdownTable(chaosOptions);
    expect(rowsOf(match?.[1] ?? ''), `docs/chaos.md table is stale; it should be:\n${expected}`).toEqual(
      rowsOf(expected),
    );
  });

  it('gives the two commands, and CI runs the test command it gives', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
    const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');
    expect(ci).toMatch(/^npm ci && npm test$/m);
  });
});
