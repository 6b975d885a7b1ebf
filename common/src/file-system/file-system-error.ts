/**
 * The errors a `FileSystem` answers, shaped as node's own (`code`, negative `errno`, `syscall`,
 * `path`, and `dest` for a rename), so that a caller matches on `code` the same way whichever
 * implementation it was given.
 */

/** Each code a file system answers with, its Linux errno and node's description of it. */
export const fileSystemErrorCodes = {
  EBADF: { errno: -9, description: 'bad file descriptor' },
  EBUSY: { errno: -16, description: 'resource busy or locked' },
  EEXIST: { errno: -17, description: 'file already exists' },
  EFBIG: { errno: -27, description: 'file too large' },
  EINVAL: { errno: -22, description: 'invalid argument' },
  EIO: { errno: -5, description: 'i/o error' },
  EISDIR: { errno: -21, description: 'illegal operation on a directory' },
  ENAMETOOLONG: { errno: -36, description: 'name too long' },
  ENOENT: { errno: -2, description: 'no such file or directory' },
  ENOTDIR: { errno: -20, description: 'not a directory' },
  ENOTEMPTY: { errno: -39, description: 'directory not empty' },
} as const;

export type FileSystemErrorCode = keyof typeof fileSystemErrorCodes;

export interface FileSystemError extends Error {
  readonly code: FileSystemErrorCode;
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;
  readonly dest?: string;
}

/**
 * Builds the error node would throw for `code` from `syscall` on `path` (and `dest`), with node's
 * message format: `ENOENT: no such file or directory, open '/missing'`.
 */
export function fileSystemError(
  code: FileSystemErrorCode,
  syscall: string,
  path?: string,
  dest?: string,
): FileSystemError {
  const { errno, description } = fileSystemErrorCodes[code];
  const where = path === undefined ? '' : dest === undefined ? ` '${path}'` : ` '${path}' -> '${dest}'`;
  const error = new Error(`${code}: ${description}, ${syscall}${where}`);
  return Object.assign(error, {
    code,
    errno,
    syscall,
    ...(path === undefined ? {} : { path }),
    ...(dest === undefined ? {} : { dest }),
  });
}

/** Whether `error` is a file-system error (from either implementation) with `code`. */
export function isFileSystemError(error: unknown, code: FileSystemErrorCode): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === code;
}
