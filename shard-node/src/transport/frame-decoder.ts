/**
 * Splits the byte stream of a connection into frames. It is pull-based: the connection pushes
 * what the socket read and takes frames one at a time, so that it can stop taking (and pause the
 * socket) while a slow handler works, without the decoder racing ahead.
 *
 * Memory stays bounded: the announced length is checked against `frameBytesMax` as soon as its
 * four bytes are in, before the body is buffered, and a frame is assembled into one buffer only
 * once all its bytes have arrived.
 */
import { checkAnnouncedBodyLength, openFrameBody, type Frame } from './frame.js';

export class FrameDecoder {
  private readonly chunks: Buffer[] = [];
  /** How far into `chunks[0]` the bytes were consumed already. */
  private headOffset = 0;
  private buffered = 0;
  /** The announced body length of the frame being read, or -1 before its length field is in. */
  private bodyLength = -1;

  constructor(private readonly frameBytesMax: number) {}

  /** The bytes received and not yet returned as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Whether a frame has started (some of its bytes arrived) but is not complete. */
  get isInsideFrame(): boolean {
    return this.buffered > 0;
  }

  push(chunk: Buffer): void {
    if (chunk.byteLength === 0) {
      return;
    }
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
  }

  /**
   * Returns the next complete frame, or undefined when more bytes are needed. Throws
   * `PeerFrameMalformedError` for an oversized announcement or a frame that fails its checks;
   * after that the stream is unusable and the connection must be closed.
   */
  next(): Frame | undefined {
    if (this.bodyLength < 0) {
      if (this.buffered < 4) {
        return undefined;
      }
      const lengthBytes = this.take(4);
      const bodyLength = lengthBytes.readUInt32BE(0);
      checkAnnouncedBodyLength(bodyLength, this.frameBytesMax);
      this.bodyLength = bodyLength;
    }
    if (this.buffered < this.bodyLength) {
      return undefined;
    }
    const body = this.take(this.bodyLength);
    this.bodyLength = -1;
    return openFrameBody(body);
  }

  /**
   * Removes and returns the next `byteCount` buffered bytes (which must be there): a view when
   * they lie in one chunk, else one copy. The copy is sized by bytes that already arrived, never
   * by an announced length alone.
   */
  private take(byteCount: number): Buffer {
    const head = this.chunks[0]!;
    const headRemaining = head.byteLength - this.headOffset;
    if (headRemaining >= byteCount) {
      const view = head.subarray(this.headOffset, this.headOffset + byteCount);
      this.consume(byteCount);
      return view;
    }
    const joined = Buffer.allocUnsafe(byteCount);
    let filled = 0;
    while (filled < byteCount) {
      const chunk = this.chunks[0]!;
      const available = Math.min(chunk.byteLength - this.headOffset, byteCount - filled);
      chunk.copy(joined, filled, this.headOffset, this.headOffset + available);
      filled += available;
      this.consume(available);
    }
    return joined;
  }

  private consume(byteCount: number): void {
    this.buffered -= byteCount;
    this.headOffset += byteCount;
    const head = this.chunks[0]!;
    if (this.headOffset === head.byteLength) {
      this.chunks.shift();
      this.headOffset = 0;
    }
  }
}
