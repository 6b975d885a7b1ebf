import { dirname, resolve } from 'node:path';
import type { FileHandle, FileSystem } from './file-system/file-system.js';
import { nodeFileSystem } from './file-system/node-file-system.js';

/**
 * Small files that must survive a power loss whole: a data directory's identity, the state
 * machine's generation pointer, the launcher's record of founded replicas. Each is replaced, never
 * edited in place, so that after a crash it holds the old contents or the new, never a mix.
 *
 * Every function takes the file system last (`node:fs` by default), so that the simulator runs
 * the same steps on a `MemoryFileSystem` and cuts the power between any two of them.
 */

/**
 * Makes a directory's entries durable (a file created, renamed or removed in it). Without it, a
 * crash can forget a new file whose bytes were fsynced, or bring back a removed one.
 */
export async function syncDirectory(directory: string, fs: FileSystem = nodeFileSystem): Promise<void> {
  const handle = await fs.open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates `directory` and its missing parents, and makes each new level durable by fsyncing the
 * folder that holds it, outermost first. A directory created without that can vanish in a power
 * loss even though the files written inside it were fsynced (a Raft log segment, an engine's
 * tables). Answers the levels it created (none when the directory existed).
 */
export async function createDirectoryDurably(
  directory: string,
  fs: FileSystem = nodeFileSystem,
): Promise<string[]> {
  const target = resolve(directory);
  const first = await fs.mkdir(target, { recursive: true });
  if (first === undefined) return [];
  const created: string[] = [];
  for (let level = target; ; level = dirname(level)) {
    created.unshift(level);
    if (level === first || dirname(level) === level) break;
  }
  for (const level of created) await syncDirectory(dirname(level), fs);
  return created;
}

/**
 * Replaces `path` with `contents`, atomically and durably (see `replaceFileDurablyWith`).
 */
export function replaceFileDurably(
  path: string,
  contents: string | Uint8Array,
  mode = 0o644,
  fs: FileSystem = nodeFileSystem,
): Promise<void> {
  return replaceFileDurablyWith(path, (file) => file.writeFile(contents), mode, fs);
}

/**
 * Replaces `path` with what `write` writes, atomically and durably: `write` fills a temporary file
 * beside it (as much and in as many writes as it likes: a streamed image), which is fsynced,
 * renamed over `path`, then the directory fsynced. A temporary file left by a crash is replaced,
 * and one left by a failed write removed.
 */
export async function replaceFileDurablyWith(
  path: string,
  write: (file: FileHandle) => Promise<void>,
  mode = 0o644,
  fs: FileSystem = nodeFileSystem,
): Promise<void> {
  const temporary = `${path}.tmp`;
  // A temporary file left by a crash would keep its own mode: start from none.
  await fs.rm(temporary, { force: true });
  try {
    const file = await fs.open(temporary, 'w', mode);
    try {
      await write(file);
      await file.sync();
    } finally {
      await file.close();
    }
  } catch (error) {
    await fs.rm(temporary, { force: true });
    throw error;
  }
  await fs.rename(temporary, path);
  await syncDirectory(dirname(path), fs);
}
