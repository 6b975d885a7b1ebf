import { assert } from './assert.js';
import { fileSystemError } from './file-system-error.js';

/**
 * The largest file the memory file system holds: a write or truncation past it fails with EFBIG.
 * A simulated replica writes segments and images of a few megabytes; a file this large is a
 * runaway loop, better stopped than allowed to exhaust the test's heap.
 */
export const memoryFileBytesMax = 1024 * 1024 * 1024;

/** The files changed since their last sync: what a power cut reverts, in the order they changed. */
export type DirtyFiles = Set<MemoryFile>;

/** Bytes of the synced contents that a later change overwrote or cut off, kept to put back. */
interface SavedPiece {
  readonly offset: number;
  readonly bytes: Buffer;
}

/** What a changed file goes back to at a power cut (as `struct dirty` in deploy/powerfs/powerfs.c). */
interface SyncedContents {
  /** The size the file had when last synced. */
  readonly size: number;
  /** Disjoint, saved before the change that overwrote them; bytes no piece covers are unchanged. */
  readonly pieces: SavedPiece[];
  /** Bytes written since the last sync (what `stats()` reports, as powerfs's `unsynced-bytes`). */
  writtenBytes: number;
}

/**
 * One file's contents in the memory file system, and what of them is durable. The live contents
 * are what every read sees (the page cache); the durable ones are what a power cut brings back.
 * Rather than a copy of the durable contents, a changed file keeps its synced size and the synced
 * bytes each change overwrote, saved just before it: appending to a large file (a Raft log
 * segment) then costs no copy of what it held. The file is an inode: its names live in folders.
 */
export class MemoryFile {
  /** The live contents in `[0, size)`; every byte past `size` is zero, so growing needs no fill. */
  private bytes = Buffer.alloc(0);
  private sizeBytes = 0;
  /** Undefined while the live contents are the durable ones. */
  private synced: SyncedContents | undefined;

  constructor(private readonly dirtyFiles: DirtyFiles) {}

  get size(): number {
    return this.sizeBytes;
  }

  /** Whether the contents changed since the file was last synced. */
  get dirty(): boolean {
    return this.synced !== undefined;
  }

  /** Bytes written since the last sync. */
  get writtenBytes(): number {
    return this.synced?.writtenBytes ?? 0;
  }

  /** Bytes past the synced size: what a torn power cut may keep a prefix of. */
  get appendedBytes(): number {
    return this.synced === undefined ? 0 : Math.max(0, this.sizeBytes - this.synced.size);
  }

  /** Copies up to `length` bytes at `position` into `target` from `offset`; answers bytes read. */
  read(target: Uint8Array, offset: number, length: number, position: number): number {
    assertRange(target, offset, length, position);
    const count = Math.max(0, Math.min(length, this.sizeBytes - position));
    if (count > 0) this.bytes.copy(target, offset, position, position + count);
    return count;
  }

  /** The live contents, copied. */
  contents(): Buffer {
    return Buffer.from(this.bytes.subarray(0, this.sizeBytes));
  }

  /** Writes `length` bytes of `source` from `offset` at `position`; a gap past the end reads as zeros. */
  write(source: Uint8Array, offset: number, length: number, position: number): number {
    assertRange(source, offset, length, position);
    if (length === 0) return 0;
    const end = position + length;
    if (end > memoryFileBytesMax) throw fileSystemError('EFBIG', 'write');
    const synced = this.beforeChange();
    this.saveSyncedBytes(synced, position, end);
    this.reserve(end);
    this.bytes.set(source.subarray(offset, offset + length), position);
    this.sizeBytes = Math.max(this.sizeBytes, end);
    synced.writtenBytes += length;
    return length;
  }

  /** Cuts the file to `length` bytes, or extends it with zeros. */
  truncate(length: number): void {
    assert(Number.isSafeInteger(length) && length >= 0, `truncation to ${length} bytes`);
    if (length > memoryFileBytesMax) throw fileSystemError('EFBIG', 'ftruncate');
    // As powerfs: a truncation to the size a clean file has changes nothing, durable or not.
    if (length === this.sizeBytes && this.synced === undefined) return;
    const synced = this.beforeChange();
    if (length < this.sizeBytes) {
      this.saveSyncedBytes(synced, length, this.sizeBytes);
      this.bytes.fill(0, length, this.sizeBytes);
    } else {
      this.reserve(length);
    }
    this.sizeBytes = length;
  }

  /** An fsync or fdatasync returned: the live contents are the durable ones. */
  markSynced(): void {
    this.synced = undefined;
    this.dirtyFiles.delete(this);
  }

  /**
   * A power cut: back to the synced contents, keeping the first `keepAppendedBytes` bytes written
   * past the synced size (a torn write; 0 keeps none). Bytes overwritten below the synced size
   * always come back. Answers the bytes dropped.
   */
  revert(keepAppendedBytes: number): number {
    const synced = this.synced;
    if (synced === undefined) return 0;
    assert(
      Number.isSafeInteger(keepAppendedBytes) &&
        keepAppendedBytes >= 0 &&
        keepAppendedBytes <= this.appendedBytes,
      `keeping ${keepAppendedBytes} of ${this.appendedBytes} appended bytes`,
    );
    let droppedBytes = Math.max(0, this.sizeBytes - synced.size) - keepAppendedBytes;
    const size = synced.size + keepAppendedBytes;
    if (size < this.sizeBytes) this.bytes.fill(0, size, this.sizeBytes);
    else this.reserve(size);
    this.sizeBytes = size;
    for (const piece of synced.pieces) {
      piece.bytes.copy(this.bytes, piece.offset);
      droppedBytes += piece.bytes.length;
    }
    this.markSynced();
    return droppedBytes;
  }

  /**
   * Flips every bit of the byte at `offset`, in the live contents and in what a power cut brings
   * back: damage on the disk, not a write (it changes nothing of what is durable or not).
   */
  corrupt(offset: number): void {
    assert(
      Number.isSafeInteger(offset) && offset >= 0 && offset < this.sizeBytes,
      `corrupting byte ${offset} of a ${this.sizeBytes}-byte file`,
    );
    this.bytes[offset] = (this.bytes[offset] ?? 0) ^ 0xff;
    const piece = this.synced?.pieces.find((saved) => covers(saved, offset));
    if (piece !== undefined) {
      const index = offset - piece.offset;
      piece.bytes[index] = (piece.bytes[index] ?? 0) ^ 0xff;
    }
  }

  /** The record of the synced state, made (with the size the file has now) if the file is clean. */
  private beforeChange(): SyncedContents {
    if (this.synced === undefined) {
      this.synced = { size: this.sizeBytes, pieces: [], writtenBytes: 0 };
      this.dirtyFiles.add(this);
    }
    return this.synced;
  }

  /** Saves the synced bytes in `[from, to)` that no earlier change saved, before they change. */
  private saveSyncedBytes(synced: SyncedContents, from: number, to: number): void {
    const end = Math.min(to, synced.size);
    let position = from;
    while (position < end) {
      const covering = synced.pieces.find((piece) => covers(piece, position));
      if (covering !== undefined) {
        position = covering.offset + covering.bytes.length;
        continue;
      }
      let gapEnd = end;
      for (const piece of synced.pieces) {
        if (piece.offset > position && piece.offset < gapEnd) gapEnd = piece.offset;
      }
      // Bytes past the live size (cut off by a truncation that saved them already) read as zeros.
      const saved = Buffer.alloc(gapEnd - position);
      if (position < this.sizeBytes) this.bytes.copy(saved, 0, position, Math.min(gapEnd, this.sizeBytes));
      synced.pieces.push({ offset: position, bytes: saved });
      position = gapEnd;
    }
  }

  /** Makes room for `size` bytes, doubling, so that a file written in appends is copied rarely. */
  private reserve(size: number): void {
    if (size <= this.bytes.length) return;
    const capacity = Math.min(memoryFileBytesMax, Math.max(size, this.bytes.length * 2, 64));
    const bytes = Buffer.alloc(capacity);
    this.bytes.copy(bytes, 0, 0, this.sizeBytes);
    this.bytes = bytes;
  }
}

function covers(piece: SavedPiece, offset: number): boolean {
  return piece.offset <= offset && offset < piece.offset + piece.bytes.length;
}

/** A buffer range and a file position, as node checks them before a read or a write. */
function assertRange(buffer: Uint8Array, offset: number, length: number, position: number): void {
  assert(
    Number.isSafeInteger(offset) &&
      Number.isSafeInteger(length) &&
      offset >= 0 &&
      length >= 0 &&
      offset + length <= buffer.byteLength,
    `range [${offset}, ${offset + length}) of a ${buffer.byteLength}-byte buffer`,
  );
  assert(Number.isSafeInteger(position) && position >= 0, `file position ${position}`);
}
