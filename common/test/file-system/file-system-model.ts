import type { OpenFlags } from '@impulse/common';

/**
 * A deliberately plain model of the power-cut rules (deploy/powerfs/README.md), to check
 * `MemoryFileSystem` against: files live in two fixed, durable folders `x` and `y`, names are
 * strings `folder/name`, and a changed file keeps a whole copy of its durable contents (where the
 * real one keeps a synced size and the pieces later changes overwrote). Each call answers what it
 * answers (`value`) or the error code it fails with (`error`).
 */
export type Outcome = { readonly value: unknown } | { readonly error: string };

export const modelFolders = ['x', 'y'] as const;
export type ModelFolder = (typeof modelFolders)[number];

interface ModelFile {
  live: Buffer;
  /** The durable contents while they differ from the live ones (the file changed since its sync). */
  durable: Buffer | undefined;
}

type ModelOperation =
  | { readonly kind: 'create'; readonly file: number; readonly at: string }
  | {
      readonly kind: 'rename';
      readonly file: number;
      readonly from: string;
      readonly to: string;
      readonly replaced: number | undefined;
    }
  | { readonly kind: 'remove'; readonly file: number; readonly at: string };

interface ModelHandle {
  readonly file: number;
  readonly readable: boolean;
  readonly writable: boolean;
  readonly powerCuts: number;
  readonly processCrashes: number;
  closed: boolean;
}

function folderOf(name: string): string {
  return name.slice(0, name.indexOf('/'));
}

export class FileSystemModel {
  private readonly files: ModelFile[] = [];
  private readonly names = new Map<string, number>();
  private readonly pending: ModelOperation[] = [];
  private readonly handles: ModelHandle[] = [];
  private powerCuts = 0;
  private processCrashes = 0;

  get handleCount(): number {
    return this.handles.length;
  }

  /** Creations, renames and removals a power cut would undo now. */
  get pendingOperations(): number {
    return this.pending.length;
  }

  /** Every file reachable by name, with its live contents, by name. */
  listing(): Map<string, Buffer> {
    const listing = new Map<string, Buffer>();
    for (const [name, file] of [...this.names].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      listing.set(name, Buffer.from(this.file(file).live));
    }
    return listing;
  }

  open(name: string, flags: OpenFlags): Outcome {
    let file = this.names.get(name);
    if (file === undefined) {
      if (flags === 'r' || flags === 'r+') return { error: 'ENOENT' };
      file = this.files.push({ live: Buffer.alloc(0), durable: undefined }) - 1;
      this.names.set(name, file);
      this.pending.push({ kind: 'create', file, at: name });
    } else if (flags === 'wx') {
      return { error: 'EEXIST' };
    } else if (flags === 'w') {
      this.change(file, () => Buffer.alloc(0));
    }
    this.handles.push({
      file,
      readable: flags === 'r' || flags === 'r+',
      writable: flags !== 'r',
      powerCuts: this.powerCuts,
      processCrashes: this.processCrashes,
      closed: false,
    });
    return { value: 'handle' };
  }

  write(handleIndex: number, bytes: Buffer, position: number): Outcome {
    const handle = this.handle(handleIndex);
    const refused = this.check(handle, !handle.writable ? 'EBADF' : undefined);
    if (refused !== undefined) return refused;
    this.change(handle.file, (live) => {
      const next = Buffer.alloc(Math.max(live.length, position + bytes.length));
      live.copy(next);
      bytes.copy(next, position);
      return next;
    });
    return { value: bytes.length };
  }

  truncate(handleIndex: number, length: number): Outcome {
    const handle = this.handle(handleIndex);
    const refused = this.check(handle, !handle.writable ? 'EINVAL' : undefined);
    if (refused !== undefined) return refused;
    this.change(handle.file, (live) => {
      const next = Buffer.alloc(length);
      live.copy(next, 0, 0, Math.min(length, live.length));
      return next;
    });
    return { value: undefined };
  }

  /** fsync or fdatasync of a file: its contents, its creation and its renames are durable. */
  sync(handleIndex: number): Outcome {
    const handle = this.handle(handleIndex);
    const refused = this.check(handle);
    if (refused !== undefined) return refused;
    this.file(handle.file).durable = undefined;
    this.makeDurable((operation) => operation.kind !== 'remove' && operation.file === handle.file);
    return { value: undefined };
  }

  close(handleIndex: number): Outcome {
    this.handle(handleIndex).closed = true;
    return { value: undefined };
  }

  /** fsync of a folder: every operation made in it (a rename: leaving it or entering it). */
  syncFolder(folder: ModelFolder): Outcome {
    this.makeDurable((operation) =>
      operation.kind === 'rename'
        ? folderOf(operation.from) === folder || folderOf(operation.to) === folder
        : folderOf(operation.at) === folder,
    );
    return { value: undefined };
  }

  rename(from: string, to: string): Outcome {
    const file = this.names.get(from);
    if (file === undefined) return { error: 'ENOENT' };
    if (from === to) return { value: undefined };
    const replaced = this.names.get(to);
    this.names.delete(from);
    this.names.set(to, file);
    this.pending.push({ kind: 'rename', file, from, to, replaced });
    return { value: undefined };
  }

  unlink(name: string): Outcome {
    const file = this.names.get(name);
    if (file === undefined) return { error: 'ENOENT' };
    this.names.delete(name);
    this.pending.push({ kind: 'remove', file, at: name });
    return { value: undefined };
  }

  /** Contents back to the durable copies, then the pending operations undone newest first. */
  powerCut(): void {
    for (const file of this.files) {
      if (file.durable !== undefined) file.live = file.durable;
      file.durable = undefined;
    }
    for (let operation = this.pending.pop(); operation !== undefined; operation = this.pending.pop()) {
      if (operation.kind === 'create') {
        if (this.names.get(operation.at) === operation.file) this.names.delete(operation.at);
      } else if (operation.kind === 'rename') {
        const { file, from, to, replaced } = operation;
        if (this.names.get(to) === file && !this.names.has(from)) {
          this.names.delete(to);
          this.names.set(from, file);
        }
        if (replaced !== undefined && !this.names.has(to)) this.names.set(to, replaced);
      } else if (!this.names.has(operation.at)) {
        this.names.set(operation.at, operation.file);
      }
    }
    this.powerCuts++;
  }

  processCrash(): void {
    this.processCrashes++;
  }

  private change(file: number, next: (live: Buffer) => Buffer): void {
    const state = this.file(file);
    state.durable ??= Buffer.from(state.live);
    state.live = next(state.live);
  }

  /** Makes durable what `matches` selects; a durable rename makes its file's creation durable. */
  private makeDurable(matches: (operation: ModelOperation) => boolean): void {
    for (let index = this.pending.findIndex(matches); index !== -1; index = this.pending.findIndex(matches)) {
      const [operation] = this.pending.splice(index, 1);
      if (operation?.kind === 'rename') {
        const renamed = operation.file;
        this.makeDurable((pending) => pending.kind === 'create' && pending.file === renamed);
      }
    }
  }

  /**
   * Whether a call on `handle` fails: closed (a crash closes every handle), then not open for the
   * call (`refusal`, what the kernel answers itself), then from before a power cut.
   */
  private check(handle: ModelHandle, refusal?: string): Outcome | undefined {
    if (handle.closed || handle.processCrashes !== this.processCrashes) return { error: 'EBADF' };
    if (refusal !== undefined) return { error: refusal };
    if (handle.powerCuts !== this.powerCuts) return { error: 'EIO' };
    return undefined;
  }

  private handle(index: number): ModelHandle {
    const handle = this.handles[index];
    if (handle === undefined) throw new Error(`model: no handle ${index}`);
    return handle;
  }

  private file(index: number): ModelFile {
    const file = this.files[index];
    if (file === undefined) throw new Error(`model: no file ${index}`);
    return file;
  }
}
