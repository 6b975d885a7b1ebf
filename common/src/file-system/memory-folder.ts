import type { MemoryFile } from './memory-file.js';

/** A file or a folder of the memory file system: an inode, named by the folders holding it. */
export type MemoryEntry = MemoryFile | MemoryFolder;

/** A folder of the memory file system: its entries by name. Durability is kept by `PendingOperations`. */
export class MemoryFolder {
  readonly entries = new Map<string, MemoryEntry>();

  /** The names, sorted as `readdir` answers them. */
  names(): string[] {
    return [...this.entries.keys()].sort();
  }

  /** Whether `folder` is this folder or lies anywhere inside it. */
  holds(folder: MemoryFolder): boolean {
    if (folder === this) return true;
    for (const entry of this.entries.values()) {
      if (entry instanceof MemoryFolder && entry.holds(folder)) return true;
    }
    return false;
  }
}
