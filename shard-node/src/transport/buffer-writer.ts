/**
 * A growable byte buffer that encoders append to. One writer is reused for every frame a peer
 * connection sends, so steady-state encoding allocates nothing but the frames handed to the socket.
 */
import { assert } from './errors.js';

/** The capacity a writer starts with; it doubles as needed. */
const initialCapacityBytes = 64 * 1024;

/** Values at or above this need the slow (division-based) varint path: bitwise ops are 32-bit. */
const varintFastPathLimit = 2 ** 31;

export class BufferWriter {
  private buffer: Buffer;
  private length = 0;

  constructor(capacityBytes: number = initialCapacityBytes) {
    this.buffer = Buffer.allocUnsafe(capacityBytes);
  }

  /** The number of bytes written since the last `reset`. */
  get byteLength(): number {
    return this.length;
  }

  /** Forgets the written bytes and keeps the capacity. */
  reset(): void {
    this.length = 0;
  }

  /**
   * Forgets the written bytes and, if the buffer grew past `capacityBytesMax` (say, to encode a
   * message that turned out too large to send), lets it go rather than keep it for ever.
   */
  resetAndShrink(capacityBytesMax: number): void {
    this.length = 0;
    if (this.buffer.byteLength > capacityBytesMax) {
      this.buffer = Buffer.allocUnsafe(initialCapacityBytes);
    }
  }

  /** Forgets every byte from `byteLength` on, to undo a write that did not fit. */
  truncate(byteLength: number): void {
    assert(byteLength >= 0 && byteLength <= this.length, 'truncate within the written bytes');
    this.length = byteLength;
  }

  /** A view of the written bytes. It is valid only until the next write or `reset`. */
  view(start = 0, end = this.length): Buffer {
    return this.buffer.subarray(start, end);
  }

  /**
   * Returns the written bytes as a buffer that the caller owns (for example to hand it to a socket,
   * which keeps it until the kernel took it) and resets the writer. A mostly full buffer is handed
   * over as is and replaced by a small one; a small frame in a big buffer is copied, so that a
   * 100-byte heartbeat never pins a 4 MiB buffer while it waits in the socket.
   */
  takeBytes(): Buffer {
    let bytes: Buffer;
    if (this.length * 2 >= this.buffer.byteLength) {
      bytes = this.buffer.subarray(0, this.length);
      this.buffer = Buffer.allocUnsafe(initialCapacityBytes);
    } else {
      bytes = Buffer.from(this.buffer.subarray(0, this.length));
    }
    this.length = 0;
    return bytes;
  }

  /** Makes room for `byteCount` more bytes. */
  private reserve(byteCount: number): void {
    const needed = this.length + byteCount;
    if (needed <= this.buffer.byteLength) {
      return;
    }
    let capacity = this.buffer.byteLength * 2;
    while (capacity < needed) {
      capacity *= 2;
    }
    const grown = Buffer.allocUnsafe(capacity);
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  writeUint8(value: number): void {
    this.reserve(1);
    this.buffer[this.length] = value;
    this.length += 1;
  }

  writeUint16(value: number): void {
    this.reserve(2);
    this.buffer.writeUInt16BE(value, this.length);
    this.length += 2;
  }

  /** Overwrites 2 bytes at `offset` (a count written once the items that follow are known). */
  patchUint16(offset: number, value: number): void {
    assert(offset >= 0 && offset + 2 <= this.length, 'patch within the written bytes');
    this.buffer.writeUInt16BE(value, offset);
  }

  writeUint32(value: number): void {
    this.reserve(4);
    this.buffer.writeUInt32BE(value, this.length);
    this.length += 4;
  }

  /** Overwrites 4 bytes at `offset` (a length or checksum written once the payload is known). */
  patchUint32(offset: number, value: number): void {
    assert(offset >= 0 && offset + 4 <= this.length, 'patch within the written bytes');
    this.buffer.writeUInt32BE(value, offset);
  }

  /**
   * Writes a non-negative safe integer as an unsigned LEB128 varint: small numbers (ids, counts,
   * the terms of a young cluster) take one or two bytes; the largest safe integer takes eight.
   */
  writeVarint(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, `varint of a non-negative safe integer, got ${value}`);
    this.reserve(8);
    let remaining = value;
    if (remaining < varintFastPathLimit) {
      while (remaining >= 0x80) {
        this.buffer[this.length++] = (remaining & 0x7f) | 0x80;
        remaining >>>= 7;
      }
    } else {
      while (remaining >= 0x80) {
        this.buffer[this.length++] = (remaining % 0x80) | 0x80;
        remaining = Math.floor(remaining / 0x80);
      }
    }
    this.buffer[this.length++] = remaining;
  }

  writeBytes(bytes: Uint8Array): void {
    this.reserve(bytes.byteLength);
    this.buffer.set(bytes, this.length);
    this.length += bytes.byteLength;
  }

  /** Writes a varint length followed by the bytes. */
  writeLengthPrefixedBytes(bytes: Uint8Array): void {
    this.writeVarint(bytes.byteLength);
    this.writeBytes(bytes);
  }

  /** Writes a varint byte length followed by the UTF-8 of `text`. */
  writeString(text: string): void {
    const byteLength = Buffer.byteLength(text, 'utf8');
    this.writeVarint(byteLength);
    this.reserve(byteLength);
    this.length += this.buffer.write(text, this.length, byteLength, 'utf8');
  }
}
