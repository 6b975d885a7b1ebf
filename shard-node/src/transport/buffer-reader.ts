/**
 * A bounds-checked cursor over untrusted bytes. Every read checks that the bytes are there and
 * every length is checked against the bytes that remain before anything is allocated or sliced,
 * so a hostile length can neither read past the end nor make the process allocate.
 */
import { PeerFrameMalformedError } from './errors.js';

/** Eight LEB128 bytes hold 56 bits: enough for every safe integer (53 bits). */
const varintBytesMax = 8;

export class BufferReader {
  private offset = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get remainingBytes(): number {
    return this.bytes.byteLength - this.offset;
  }

  /** Throws unless every byte was consumed: trailing bytes mean the sender and we disagree. */
  expectEnd(what: string): void {
    if (this.offset !== this.bytes.byteLength) {
      throw malformed(`${this.remainingBytes} trailing bytes after ${what}`);
    }
  }

  readUint8(): number {
    if (this.offset >= this.bytes.byteLength) {
      throw malformed('unexpected end of bytes');
    }
    return this.bytes[this.offset++]!;
  }

  readUint16(): number {
    if (this.remainingBytes < 2) {
      throw malformed('unexpected end of bytes');
    }
    const value = (this.bytes[this.offset]! << 8) | this.bytes[this.offset + 1]!;
    this.offset += 2;
    return value;
  }

  /**
   * Reads an unsigned LEB128 varint. Refuses encodings longer than eight bytes, values above
   * `Number.MAX_SAFE_INTEGER` and non-canonical encodings (a redundant zero final byte), so that
   * every value has exactly one encoding.
   */
  readVarint(): number {
    let value = 0;
    let multiplier = 1;
    for (let index = 0; index < varintBytesMax; index++) {
      const byte = this.readUint8();
      value += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && index > 0) {
          throw malformed('non-canonical varint');
        }
        if (!Number.isSafeInteger(value)) {
          throw malformed('varint above the largest safe integer');
        }
        return value;
      }
      multiplier *= 0x80;
    }
    throw malformed('varint longer than 8 bytes');
  }

  /** Reads a varint that must be at most `max`. */
  readVarintAtMost(max: number, what: string): number {
    const value = this.readVarint();
    if (value > max) {
      throw malformed(`${what} ${value} is over ${max}`);
    }
    return value;
  }

  /** Returns a view of the next `byteLength` bytes (no copy), after checking they are there. */
  readBytesView(byteLength: number): Uint8Array {
    if (byteLength > this.remainingBytes) {
      throw malformed(`length ${byteLength} is past the end (${this.remainingBytes} bytes remain)`);
    }
    const view = this.bytes.subarray(this.offset, this.offset + byteLength);
    this.offset += byteLength;
    return view;
  }

  /** Returns a view of every remaining byte. */
  readRestView(): Uint8Array {
    return this.readBytesView(this.remainingBytes);
  }

  /** Reads a varint length, then that many bytes as a copy the caller owns. */
  readLengthPrefixedBytes(empty: Uint8Array): Uint8Array {
    const byteLength = this.readVarint();
    const view = this.readBytesView(byteLength);
    // A copy, so that a decoded entry kept in the Raft log never pins the whole frame it came in.
    // (Not `view.slice()`: on a Buffer that is a view, not a copy.)
    return byteLength === 0 ? empty : new Uint8Array(view);
  }

  /** Reads a varint byte length at most `byteLengthMax`, then that many bytes of UTF-8. */
  readString(byteLengthMax: number, what: string): string {
    const byteLength = this.readVarintAtMost(byteLengthMax, `${what} length`);
    const view = this.readBytesView(byteLength);
    return Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('utf8');
  }
}

export function malformed(message: string): PeerFrameMalformedError {
  return new PeerFrameMalformedError('decode', message);
}
