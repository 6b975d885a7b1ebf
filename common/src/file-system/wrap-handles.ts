import type { FileHandle, FileSystem } from './file-system.js';

/** What `wrapHandles` may replace of a handle; the rest passes through. */
export type HandleOverrides = Partial<FileHandle>;

/**
 * A view of `fs` in which every handle opened at `path` gets `overrides(path, handle)` in place of
 * the methods they name: a disk that lies about fsync, one whose writes fail under a folder. For
 * fault injection in the simulator and in tests; the view adds nothing else.
 */
export function wrapHandles(
  fs: FileSystem,
  overrides: (path: string, handle: FileHandle) => HandleOverrides,
): FileSystem {
  const wrap = (path: string, handle: FileHandle): FileHandle => {
    const replaced = overrides(path, handle);
    return {
      write:
        replaced.write ??
        ((buffer, offset, length, position) => handle.write(buffer, offset, length, position)),
      writeNow:
        replaced.writeNow ??
        ((buffer, offset, length, position) => handle.writeNow(buffer, offset, length, position)),
      writeFile: replaced.writeFile ?? ((data) => handle.writeFile(data)),
      read:
        replaced.read ??
        ((buffer, offset, length, position) => handle.read(buffer, offset, length, position)),
      size: replaced.size ?? (() => handle.size()),
      truncate: replaced.truncate ?? ((length) => handle.truncate(length)),
      datasync: replaced.datasync ?? (() => handle.datasync()),
      sync: replaced.sync ?? (() => handle.sync()),
      close: replaced.close ?? (() => handle.close()),
    };
  };
  return {
    open: async (path, flags, mode) => wrap(path, await fs.open(path, flags, mode)),
    readFile: (path) => fs.readFile(path),
    readdir: (path) => fs.readdir(path),
    mkdir: (path, options) => fs.mkdir(path, options),
    rm: (path, options) => fs.rm(path, options),
    rename: (from, to) => fs.rename(from, to),
    unlink: (path) => fs.unlink(path),
    stat: (path) => fs.stat(path),
  };
}
