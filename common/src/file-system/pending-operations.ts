import { MemoryFile } from './memory-file.js';
import { MemoryFolder, type MemoryEntry } from './memory-folder.js';

/**
 * A change of names no fsync made durable yet, in the manner of `struct operation` in
 * deploy/powerfs/powerfs.c. Entries and folders are held by identity (as powerfs holds inode
 * numbers), so that an undo finds the folder an operation was made in wherever it moved since.
 */
export type PendingOperation =
  /** A file or folder created as `name` in `folder`. */
  | {
      readonly kind: 'create';
      readonly entry: MemoryEntry;
      readonly folder: MemoryFolder;
      readonly name: string;
    }
  /** `entry` moved from `name` in `folder` to `toName` in `toFolder`, replacing `replaced` there. */
  | {
      readonly kind: 'rename';
      readonly entry: MemoryEntry;
      readonly folder: MemoryFolder;
      readonly name: string;
      readonly toFolder: MemoryFolder;
      readonly toName: string;
      readonly replaced: MemoryEntry | undefined;
    }
  /** `entry` (a file, or an empty folder) removed from `name` in `folder`. */
  | {
      readonly kind: 'remove';
      readonly entry: MemoryEntry;
      readonly folder: MemoryFolder;
      readonly name: string;
    };

/**
 * The creations, renames and removals a power cut would undo, oldest first, and the rules that
 * make them durable (deploy/powerfs/README.md):
 * - an fsync of a file or folder makes its own creation and renames durable;
 * - an fsync of a folder makes every operation made in it durable (for a rename, the folder it
 *   left or the one it entered);
 * - a durable rename makes the creation of what it moved durable too, and a durable removal of a
 *   folder (or a rename over one) makes the operations made inside that folder durable: they can
 *   no longer be undone.
 */
export class PendingOperations {
  private readonly operations: PendingOperation[] = [];

  get count(): number {
    return this.operations.length;
  }

  record(operation: PendingOperation): void {
    this.operations.push(operation);
  }

  /** An fsync of the file or folder `entry`: its creation and renames are durable. */
  syncEntry(entry: MemoryEntry): void {
    this.makeDurableWhere((operation) => names(operation, entry));
  }

  /** An fsync of `folder`: its own creation and renames, and every operation made in it. */
  syncFolder(folder: MemoryFolder): void {
    this.syncEntry(folder);
    this.makeDurableWhere((operation) => madeIn(operation, folder));
  }

  /**
   * A power cut: undoes every pending operation, newest first. As powerfs, an undo never
   * replaces: a name taken since (by a change that was made durable) keeps its new entry, and
   * what the undo would have put there is lost, as a removed file whose removal was not durable
   * but whose name a durable creation took. Answers the number undone.
   */
  undoAll(): number {
    const undone = this.operations.length;
    for (let operation = this.operations.pop(); operation !== undefined; operation = this.operations.pop()) {
      undo(operation);
    }
    return undone;
  }

  /**
   * Makes durable, one at a time, every pending operation `matches` selects. Each step looks again
   * from the oldest: making one durable can make others durable too (and take them off the list).
   */
  private makeDurableWhere(matches: (operation: PendingOperation) => boolean): void {
    for (;;) {
      const index = this.operations.findIndex(matches);
      if (index === -1) return;
      const [operation] = this.operations.splice(index, 1);
      if (operation !== undefined) this.madeDurable(operation);
    }
  }

  /** The consequences of `operation` becoming durable (powerfs's `make_durable`). */
  private madeDurable(operation: PendingOperation): void {
    const removed =
      operation.kind === 'remove'
        ? operation.entry
        : operation.kind === 'rename'
          ? operation.replaced
          : undefined;
    if (removed instanceof MemoryFolder) {
      this.makeDurableWhere((pending) => madeIn(pending, removed));
    }
    // A file removed for good has no contents to go back to: as powerfs, forget what it had
    // unsynced (it no longer counts in `stats()`; a handle still open may change it again).
    if (removed instanceof MemoryFile) removed.markSynced();
    if (operation.kind === 'rename') {
      const renamed = operation.entry;
      this.makeDurableWhere((pending) => pending.kind === 'create' && pending.entry === renamed);
    }
  }
}

/** A creation or rename of `entry`. */
function names(operation: PendingOperation, entry: MemoryEntry): boolean {
  return operation.kind !== 'remove' && operation.entry === entry;
}

/** An operation made in `folder` (for a rename, leaving or entering it). */
function madeIn(operation: PendingOperation, folder: MemoryFolder): boolean {
  return operation.folder === folder || (operation.kind === 'rename' && operation.toFolder === folder);
}

/** Puts back what `operation` changed, where nothing durable took its place since. */
function undo(operation: PendingOperation): void {
  switch (operation.kind) {
    case 'create':
      // A folder goes with whatever was made durable inside it, as on a disk.
      if (operation.folder.entries.get(operation.name) === operation.entry) {
        operation.folder.entries.delete(operation.name);
      }
      return;
    case 'rename': {
      const { entry, folder, name, toFolder, toName, replaced } = operation;
      // A folder moved back into a folder it now holds would form a loop cut off from the root;
      // powerfs's rename by path fails there too, and the entry stays where it is.
      const loops = entry instanceof MemoryFolder && entry.holds(folder);
      if (toFolder.entries.get(toName) === entry && !folder.entries.has(name) && !loops) {
        toFolder.entries.delete(toName);
        folder.entries.set(name, entry);
      }
      if (replaced !== undefined && !toFolder.entries.has(toName)) toFolder.entries.set(toName, replaced);
      return;
    }
    case 'remove':
      if (!operation.folder.entries.has(operation.name))
        operation.folder.entries.set(operation.name, operation.entry);
      return;
  }
}
