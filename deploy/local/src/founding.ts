import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { StartupError, replaceFileDurably } from '@impulse/common';

/** The version of the `FOUNDED` record's format. */
const foundedFormat = 1;

/**
 * Makes a random secret at `path` (32 bytes in hex, mode 0600, durably) unless one is there, and
 * answers the one there, without its trailing newline: the cluster secret and the admin token that
 * the launchers give their processes, kept under the data root for every later start.
 */
export async function ensureSecretFile(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).replace(/[\r\n]+$/, '');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(32).toString('hex');
  await replaceFileDurably(path, `${secret}\n`, 0o600);
  return secret;
}

/** The replica ids of a data root's `FOUNDED` record; none when it has none (its first start). */
export async function readFounded(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch {
    record = undefined;
  }
  const replicas = (record as { format?: unknown; replicas?: unknown } | undefined)?.replicas;
  if (
    (record as { format?: unknown } | undefined)?.format !== foundedFormat ||
    !Array.isArray(replicas) ||
    !replicas.every((replicaId) => typeof replicaId === 'string')
  ) {
    throw new StartupError(
      'DATA_DIRECTORY_DAMAGED',
      `${path} is not the launcher's record of founded replicas (expected {"format": ${foundedFormat}, "replicas": [...]}): restore it, or remove it only if no replica under it ever started`,
    );
  }
  return replicas as string[];
}

/**
 * Writes the record atomically and durably: a temporary file, fsynced, renamed, then the data
 * root fsynced, so that after a crash the record is either the old one or the new one, and a
 * replica recorded here is never given --bootstrap again.
 */
export async function writeFounded(path: string, replicas: readonly string[]): Promise<void> {
  const record = {
    format: foundedFormat,
    replicas: [...replicas].sort(),
    updatedAt: new Date().toISOString(),
  };
  await replaceFileDurably(path, `${JSON.stringify(record, null, 2)}\n`);
}
