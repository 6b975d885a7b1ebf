/**
 * Golden transcript tests: each testdata/*.txt script runs in a fresh interaction environment and
 * must reproduce its recorded output exactly. Regenerate on purpose with
 * `UPDATE_GOLDEN=1 npx vitest run --project unit shard-node/test/raft/interaction.test.ts`,
 * then read the diff.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runDataDriven } from './harness/datadriven.js';
import { InteractionEnv } from './harness/interaction-env.js';

const testdata = fileURLToPath(new URL('./testdata/', import.meta.url));
const update = process.env['UPDATE_GOLDEN'] === '1';

describe('raft interaction scripts', () => {
  const files = readdirSync(testdata)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  for (const file of files) {
    it(file, () => {
      const path = join(testdata, file);
      const text = readFileSync(path, 'utf8');
      const env = new InteractionEnv();
      const actual = runDataDriven(text, (command) => env.run(command));
      if (update) {
        writeFileSync(path, actual);
      } else {
        expect(actual).toBe(text);
      }
    });
  }
});
