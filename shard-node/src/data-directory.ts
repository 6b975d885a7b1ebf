import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { open, readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { StartupError, ensureDataDirectory, type Logger, replaceFileDurably } from '@impulse/common';

/**
 * A replica's data directory, held for the life of the process: an exclusive lock taken before
 * anything in it is opened, and an identity recorded when it is created and checked on every
 * start.
 *
 * The lock is an open file description lock (Linux `F_OFD_SETLK`, BSD `flock` on macOS, through
 * `fs-native-extensions`) on the file `LOCK`: the kernel releases it when the process ends, however
 * it ends (`kill -9` included), so a dead process never leaves a stale lock behind, and no two live
 * processes (nor two opens in one process) ever hold it at once. The file itself is never removed:
 * removing a lock file races with a process that has just opened it. It holds the holder's pid, for
 * the message another process prints.
 *
 * The identity (`IDENTITY`, JSON) names the cluster, group, replica, Raft id and engine the data
 * belongs to. A replica started on another's directory would serve that group's keys as its own
 * and vote with that replica's log; a different engine cannot read the state. Both are refused
 * before anything is written.
 */

interface FileLocking {
  /** Takes the lock without waiting; false when another holds it. */
  tryLock(fd: number, offset?: number, length?: number, options?: { shared?: boolean }): boolean;
}

// A CommonJS package with a native part (prebuilt for Linux, macOS and Windows).
const fileLocking = createRequire(import.meta.url)('fs-native-extensions') as FileLocking;

export const lockFileName = 'LOCK';
export const identityFileName = 'IDENTITY';
/** The version of the identity file's format; a later format may add fields. */
const identityFormat = 1;
/** Bytes of the identity file read at most: it is a few hundred; anything larger is not ours. */
const identityFileBytesMax = 64 * 1024;

/** Who a data directory belongs to: one replica (a process of its own), or a node. */
export type DataDirectoryIdentity = ReplicaIdentity | NodeIdentity;

export interface ReplicaIdentity {
  readonly clusterId: string;
  readonly groupId: string;
  readonly replicaId: string;
  readonly raftId: number;
  readonly engine: string;
}

/** A node's directory: the replicas it hosts come and go; each keeps its own place inside. */
export interface NodeIdentity {
  readonly clusterId: string;
  readonly nodeId: string;
  readonly engine: string;
}

const replicaFields = ['clusterId', 'groupId', 'replicaId', 'raftId', 'engine'] as const;
const nodeFields = ['clusterId', 'nodeId', 'engine'] as const;

function isNodeIdentity(identity: DataDirectoryIdentity): identity is NodeIdentity {
  return 'nodeId' in identity;
}

function fieldsOf(identity: DataDirectoryIdentity): readonly string[] {
  return isNodeIdentity(identity) ? nodeFields : replicaFields;
}

function describeIdentity(identity: DataDirectoryIdentity): string {
  return isNodeIdentity(identity)
    ? `node ${identity.nodeId} in cluster ${identity.clusterId}, engine ${identity.engine}`
    : `replica ${identity.replicaId} (raft id ${identity.raftId}) of group ${identity.groupId} in cluster ${identity.clusterId}, engine ${identity.engine}`;
}

function same(recorded: DataDirectoryIdentity, identity: DataDirectoryIdentity): boolean {
  if (isNodeIdentity(recorded) !== isNodeIdentity(identity)) return false;
  const left = recorded as unknown as Record<string, unknown>;
  const right = identity as unknown as Record<string, unknown>;
  return fieldsOf(identity).every((field) => left[field] === right[field]);
}

export class DataDirectory {
  #lockDescriptor: number | undefined;

  private constructor(
    readonly path: string,
    readonly identity: DataDirectoryIdentity,
    lockDescriptor: number,
  ) {
    this.#lockDescriptor = lockDescriptor;
  }

  /**
   * Checks the location (see `ensureDataDirectory`), creates the directory if needed, takes its
   * lock, then checks (or, for a new directory, records) its identity. Throws a `StartupError`:
   * `DATA_DIRECTORY_LOCKED` when another live process holds it, `DATA_DIRECTORY_IDENTITY_MISMATCH`
   * when it belongs to someone else; in both cases nothing in it was written.
   */
  static async open(options: {
    readonly directory: string;
    readonly identity: DataDirectoryIdentity;
    readonly logger: Logger;
  }): Promise<DataDirectory> {
    const path = await ensureDataDirectory(options.directory);
    const lockPath = join(path, lockFileName);
    let descriptor: number;
    try {
      // No O_TRUNC: the holder's pid stays readable until this process holds the lock itself.
      descriptor = openSync(lockPath, constants.O_RDWR | constants.O_CREAT, 0o644);
    } catch (error) {
      throw new StartupError(
        'DATA_DIRECTORY_NOT_WRITABLE',
        `data directory ${path}: cannot open ${lockFileName} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
        { cause: error },
      );
    }
    try {
      if (!fileLocking.tryLock(descriptor)) {
        throw new StartupError(
          'DATA_DIRECTORY_LOCKED',
          `data directory ${path} is in use by another process${holderOf(lockPath)}: one data directory serves one replica or node at a time`,
        );
      }
      await checkIdentity(path, options.identity, options.logger);
      ftruncateSync(descriptor, 0);
      writeSync(descriptor, `${process.pid}\n`, 0);
    } catch (error) {
      closeSync(descriptor);
      throw error;
    }
    return new DataDirectory(path, options.identity, descriptor);
  }

  /** Releases the lock (closing the file releases it). Idempotent. */
  release(): void {
    if (this.#lockDescriptor === undefined) return;
    closeSync(this.#lockDescriptor);
    this.#lockDescriptor = undefined;
  }
}

/** ` (pid 1234)` from the lock file of the holder, or nothing if it cannot be read. */
function holderOf(lockPath: string): string {
  try {
    const pid = readFileSync(lockPath, 'utf8').trim();
    return /^\d{1,10}$/.test(pid) ? ` (pid ${pid})` : '';
  } catch {
    return '';
  }
}

async function checkIdentity(
  directory: string,
  identity: DataDirectoryIdentity,
  logger: Logger,
): Promise<void> {
  const path = join(directory, identityFileName);
  let text: string | undefined;
  try {
    const file = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(identityFileBytesMax + 1);
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
      if (bytesRead > identityFileBytesMax) throw damaged(path, `over ${identityFileBytesMax} bytes`);
      text = buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await file.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text === undefined) {
    const entries = (await readdir(directory)).filter((name) => name !== lockFileName);
    if (entries.length > 0) {
      // Written before data directories recorded who they belong to: adopted, once, as given.
      logger.warn(
        { dataDir: directory, identity },
        'data directory: no identity recorded (created by an older version); recording this one',
      );
    }
    await writeIdentity(directory, identity);
    return;
  }
  const recorded = parseIdentity(text, path);
  if (!same(recorded, identity)) {
    throw new StartupError(
      'DATA_DIRECTORY_IDENTITY_MISMATCH',
      `data directory ${directory} belongs to ${describeIdentity(recorded)}, not to ${describeIdentity(identity)}: give this ${isNodeIdentity(identity) ? 'node' : 'replica'} its own data directory`,
    );
  }
}

function damaged(path: string, reason: string): StartupError {
  return new StartupError('DATA_DIRECTORY_DAMAGED', `${path} is not an identity file: ${reason}`);
}

function parseIdentity(text: string, path: string): DataDirectoryIdentity {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw damaged(path, (error as Error).message);
  }
  const record = value as Record<string, unknown> | null;
  if (typeof record !== 'object' || record === null || record['format'] !== identityFormat) {
    throw damaged(path, `expected a JSON object with "format": ${identityFormat}`);
  }
  for (const field of 'nodeId' in record ? nodeFields : replicaFields) {
    const expected = field === 'raftId' ? 'number' : 'string';
    if (typeof record[field] !== expected) throw damaged(path, `${field} is not a ${expected}`);
  }
  return record as unknown as DataDirectoryIdentity;
}

/** Writes the identity atomically and durably (see `replaceFileDurably`). */
async function writeIdentity(directory: string, identity: DataDirectoryIdentity): Promise<void> {
  const path = join(directory, identityFileName);
  const record: Record<string, unknown> = { format: identityFormat };
  const given = identity as unknown as Record<string, unknown>;
  for (const field of fieldsOf(identity)) record[field] = given[field];
  record['createdAt'] = new Date().toISOString();
  await replaceFileDurably(path, `${JSON.stringify(record, null, 2)}\n`);
  // Read back: a file system that accepted the writes but keeps nothing is no place for data.
  const written = await readFile(path, 'utf8');
  if (!same(parseIdentity(written, path), identity)) {
    throw new StartupError(
      'DATA_DIRECTORY_UNUSABLE',
      `data directory ${directory} did not keep ${identityFileName}`,
    );
  }
}
