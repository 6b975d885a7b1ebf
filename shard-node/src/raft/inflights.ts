/**
 * The window of MsgApp a leader has sent to one follower and not yet seen acknowledged. It bounds
 * both the number of messages and their payload bytes, which is the leader's flow control.
 */
import { assert } from './errors.js';

export class Inflights {
  /** Maximum number of messages in flight. */
  readonly messagesMax: number;
  /** Maximum payload bytes in flight; 0 means no byte limit. */
  readonly bytesMax: number;
  /** A ring buffer of the last index of each message in flight, oldest first from `start`. */
  private readonly lastIndexes: Float64Array;
  private readonly sizes: Float64Array;
  private start = 0;
  private countValue = 0;
  private bytesValue = 0;

  constructor(messagesMax: number, bytesMax: number) {
    assert(messagesMax > 0, 'inflights need room for at least one message');
    this.messagesMax = messagesMax;
    this.bytesMax = bytesMax;
    this.lastIndexes = new Float64Array(messagesMax);
    this.sizes = new Float64Array(messagesMax);
  }

  /** A copy with the same content, used when a configuration change copies the progress map. */
  clone(): Inflights {
    const copy = new Inflights(this.messagesMax, this.bytesMax);
    copy.lastIndexes.set(this.lastIndexes);
    copy.sizes.set(this.sizes);
    copy.start = this.start;
    copy.countValue = this.countValue;
    copy.bytesValue = this.bytesValue;
    return copy;
  }

  get count(): number {
    return this.countValue;
  }

  get bytes(): number {
    return this.bytesValue;
  }

  /** Records a message whose last entry is `lastIndex`; indexes must increase. */
  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), 'cannot add into a full inflights window');
    let next = this.start + this.countValue;
    if (next >= this.messagesMax) {
      next -= this.messagesMax;
    }
    this.lastIndexes[next] = lastIndex;
    this.sizes[next] = bytes;
    this.countValue++;
    this.bytesValue += bytes;
  }

  /** Frees every message whose last index is <= `index` (they were acknowledged). */
  freeLE(index: number): void {
    if (this.countValue === 0 || index < this.lastIndexes[this.start]!) {
      return;
    }
    let position = this.start;
    let freed = 0;
    let freedBytes = 0;
    while (freed < this.countValue) {
      if (index < this.lastIndexes[position]!) {
        break;
      }
      freedBytes += this.sizes[position]!;
      freed++;
      position++;
      if (position >= this.messagesMax) {
        position -= this.messagesMax;
      }
    }
    this.countValue -= freed;
    this.bytesValue -= freedBytes;
    this.start = this.countValue === 0 ? 0 : position;
  }

  /**
   * Frees the oldest message. A heartbeat response proves the follower is alive, so a full window
   * opens by one message to let replication resume after losses.
   */
  freeFirstOne(): void {
    if (this.countValue > 0) {
      this.freeLE(this.lastIndexes[this.start]!);
    }
  }

  full(): boolean {
    return this.countValue === this.messagesMax || (this.bytesMax !== 0 && this.bytesValue >= this.bytesMax);
  }

  reset(): void {
    this.start = 0;
    this.countValue = 0;
    this.bytesValue = 0;
  }
}
