import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function temporaryDirectory(
  prefix: string,
): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `impulse-${prefix}-`));
  // IMPULSE_KEEP_TEST_DIRECTORIES=1 keeps them, with the processes' logs, for a post-mortem.
  if (process.env['IMPULSE_KEEP_TEST_DIRECTORIES'] === '1') return { path, remove: () => Promise.resolve() };
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}
