/**
 * The bounded queue of messages waiting for one connection (to a replica, or to a node for all of
 * its groups). It counts messages and encoded bytes (an upper bound) so that both limits hold; a
 * message that does not fit is refused and the caller drops it: Raft retransmits, and an unbounded
 * queue would only turn a slow peer into an out-of-memory crash.
 */
import type { Message } from '../raft/index.js';

export interface QueuedMessage {
  /** The group the message belongs to (on a replica connection, always the transport's). */
  readonly groupId: string;
  readonly message: Message;
  readonly encodedBytesBound: number;
}

export class SendQueue<Item extends QueuedMessage = QueuedMessage> {
  private items: Item[] = [];
  /** The index of the oldest item: shifting an array is linear, advancing an index is not. */
  private head = 0;
  private bytes = 0;

  constructor(
    private readonly messagesMax: number,
    private readonly bytesMax: number,
  ) {}

  get messageCount(): number {
    return this.items.length - this.head;
  }

  get byteCount(): number {
    return this.bytes;
  }

  /**
   * Appends the message when both limits allow it; returns whether it did. An empty queue takes
   * any one message, so that a message larger than `bytesMax` is refused by the frame limit (and
   * counted as too large) rather than silently never fitting.
   */
  offer(item: Item): boolean {
    const count = this.messageCount;
    if (count >= this.messagesMax || (count > 0 && this.bytes + item.encodedBytesBound > this.bytesMax)) {
      return false;
    }
    this.items.push(item);
    this.bytes += item.encodedBytesBound;
    return true;
  }

  peek(): Item | undefined {
    return this.items[this.head];
  }

  shift(): Item | undefined {
    const item = this.items[this.head];
    if (item === undefined) {
      return undefined;
    }
    this.head += 1;
    this.bytes -= item.encodedBytesBound;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      // Compacts once the consumed prefix dominates, so memory follows the queue's real length.
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Removes and returns every queued item. */
  takeAll(): Item[] {
    const all = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    return all;
  }
}
