/**
 * Little-endian writing and reading of the fixed-width fields every record payload is made of.
 * Numbers up to 2^53 (indexes, terms, node ids) are stored as 64-bit unsigned integers split into
 * two 32-bit halves, which is faster than going through BigInt on the hot path.
 */
import { assert } from './errors.js';

const TWO_TO_32 = 0x1_0000_0000;
/** The largest high half of a safe integer (2^53 - 1 >> 32). */
const SAFE_HIGH_MAX = 0x1f_ffff;

/** The bytes of a u64 field. */
export const U64_BYTES = 8;

/** Thrown by `ByteReader` when a payload is shorter than its fields, or holds impossible values. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

/** Writes fields into a buffer whose size the caller computed beforehand. */
export class ByteWriter {
  offset: number;

  constructor(
    readonly buffer: Buffer,
    offset: number,
  ) {
    this.offset = offset;
  }

  u8(value: number): void {
    this.buffer[this.offset] = value;
    this.offset += 1;
  }

  u16(value: number): void {
    this.buffer.writeUInt16LE(value, this.offset);
    this.offset += 2;
  }

  u32(value: number): void {
    this.buffer.writeUInt32LE(value, this.offset);
    this.offset += 4;
  }

  u64(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, `u64 field out of range: ${value}`);
    this.buffer.writeUInt32LE(value >>> 0, this.offset);
    this.buffer.writeUInt32LE(Math.floor(value / TWO_TO_32), this.offset + 4);
    this.offset += 8;
  }

  bytes(value: Uint8Array): void {
    this.buffer.set(value, this.offset);
    this.offset += value.byteLength;
  }
}

/** Reads fields from a payload, throwing `DecodeError` instead of reading past its end. */
export class ByteReader {
  offset = 0;

  constructor(private readonly buffer: Buffer) {}

  get remainingBytes(): number {
    return this.buffer.length - this.offset;
  }

  private need(bytes: number): void {
    if (this.offset + bytes > this.buffer.length) {
      throw new DecodeError(
        `payload too short: need ${bytes} bytes at ${this.offset} of ${this.buffer.length}`,
      );
    }
  }

  u8(): number {
    this.need(1);
    const value = this.buffer[this.offset]!;
    this.offset += 1;
    return value;
  }

  u16(): number {
    this.need(2);
    const value = this.buffer.readUInt16LE(this.offset);
    this.offset += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.buffer.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  u64(): number {
    this.need(8);
    const low = this.buffer.readUInt32LE(this.offset);
    const high = this.buffer.readUInt32LE(this.offset + 4);
    if (high > SAFE_HIGH_MAX) {
      throw new DecodeError(`u64 field over 2^53 at ${this.offset}`);
    }
    this.offset += 8;
    return high * TWO_TO_32 + low;
  }

  /** A view of the next `length` bytes (no copy), for fields decoded at once such as a group id. */
  bytesView(length: number): Buffer {
    this.need(length);
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  /** The rest of the payload, without copying (the payload a node log record wraps). */
  rest(): Buffer {
    return this.bytesView(this.remainingBytes);
  }

  /**
   * Copies `length` bytes out, so that decoded entries never keep a whole segment file's buffer
   * alive in memory.
   */
  bytesCopy(length: number): Uint8Array {
    this.need(length);
    // A plain Uint8Array, not a Buffer (Buffer's slice would share memory), like the host's entries.
    const value = new Uint8Array(length);
    value.set(this.buffer.subarray(this.offset, this.offset + length));
    this.offset += length;
    return value;
  }

  /** Checks that the whole payload was consumed: trailing bytes mean a malformed record. */
  end(): void {
    if (this.offset !== this.buffer.length) {
      throw new DecodeError(`${this.buffer.length - this.offset} unexpected trailing bytes`);
    }
  }
}
