import { constants } from 'node:fs';
import { access, mkdir, stat, statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { syncDirectory } from './durable-file.js';
import { StartupError } from './startup-error.js';

/**
 * File systems that cannot hold data, by the magic number `statfs` answers (linux/magic.h). Their
 * files are views of the kernel: writes fail or change kernel settings, and some misbehave in
 * ways that hang a naive caller (Node's recursive `mkdir` under `/proc` never settles).
 */
const pseudoFileSystems = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x6165676c, 'pstore'],
  [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'],
  [0x65735543, 'fusectl'],
  [0xf97cff8c, 'selinuxfs'],
  [0x42494e4d, 'binfmt_misc'],
  [0x19800202, 'mqueue'],
  [0x6e736673, 'nsfs'],
  [0xde5e81e4, 'efivarfs'],
]);

/** The name of the pseudo file system whose `statfs` type this is, if it is one. */
export function pseudoFileSystemOf(type: number): string | undefined {
  // Magic numbers are 32-bit; some platforms report the type sign-extended.
  return pseudoFileSystems.get(type >>> 0);
}

const errnoOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code;

/**
 * Makes sure that `directory` is a writable directory on a file system that can hold data,
 * creating it (and its missing parents) if needed, and answers its absolute path.
 *
 * Checked before anything is created: the nearest existing folder on the path is a directory, is
 * not on a pseudo file system (`/proc`, `/sys`, ...), and is writable. Refusals are
 * `StartupError`s: `DATA_DIRECTORY_UNUSABLE` (a mistake in the configuration: exit 2) or
 * `DATA_DIRECTORY_NOT_WRITABLE` (permissions or a read-only mount: exit 1), and leave nothing
 * behind. Missing levels are created one `mkdir` at a time, never recursively, so that a file
 * system that answers oddly fails the call instead of hanging it.
 */
export async function ensureDataDirectory(directory: string): Promise<string> {
  const target = resolve(directory);
  const missing: string[] = [];
  let existing = target;
  for (;;) {
    try {
      const status = await stat(existing);
      if (!status.isDirectory()) {
        throw new StartupError(
          'DATA_DIRECTORY_UNUSABLE',
          `data directory ${target}: ${existing} exists and is not a directory`,
        );
      }
      break;
    } catch (error) {
      if (error instanceof StartupError) throw error;
      const code = errnoOf(error);
      if (code === 'EACCES') {
        throw new StartupError(
          'DATA_DIRECTORY_NOT_WRITABLE',
          `data directory ${target}: ${existing} cannot be searched (EACCES)`,
        );
      }
      // ENOTDIR: a file on the way; going up finds it, and it is refused as not a directory.
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(existing) === existing) throw error;
      missing.unshift(existing);
      existing = dirname(existing);
    }
  }
  const fileSystem = pseudoFileSystemOf((await statfs(existing)).type);
  if (fileSystem !== undefined) {
    throw new StartupError(
      'DATA_DIRECTORY_UNUSABLE',
      `data directory ${target} is on the ${fileSystem} pseudo file system (at ${existing}), which cannot hold data`,
    );
  }
  try {
    await access(existing, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new StartupError(
      'DATA_DIRECTORY_NOT_WRITABLE',
      `data directory ${target}: ${existing} is not writable (${errnoOf(error) ?? String(error)})`,
      { cause: error },
    );
  }
  for (const level of missing) {
    try {
      await mkdir(level);
    } catch (error) {
      const code = errnoOf(error);
      // Another process may have created it meanwhile; what matters is that it is a directory now.
      if (code === 'EEXIST' && (await stat(level)).isDirectory()) continue;
      throw new StartupError(
        code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || code === 'ENOSPC'
          ? 'DATA_DIRECTORY_NOT_WRITABLE'
          : 'DATA_DIRECTORY_UNUSABLE',
        `data directory ${target}: cannot create ${level} (${code ?? String(error)})`,
        { cause: error },
      );
    }
    // A new level is durable only once the folder holding it is fsynced: a power loss could
    // otherwise take the whole data directory away, with every file fsynced inside it.
    await syncDirectory(dirname(level));
  }
  return target;
}
