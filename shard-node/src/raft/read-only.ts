/**
 * Pending linearizable reads on the leader (ReadIndex, thesis §6.4). Each read remembers the
 * commit index at the time it arrived; it may be served once a quorum has confirmed, after it
 * arrived, that this node is still the leader. A confirmation for a later read also confirms all
 * earlier ones, so many reads share one round of heartbeats.
 */
import type { ReadOnlyOption } from './config.js';
import type { Message, NodeId } from './types.js';

export interface ReadIndexStatus {
  /** The original MsgReadIndex (its `from` is whom to answer, its `context` identifies it). */
  readonly request: Message;
  /** The commit index when the request arrived: the read is served at or after it. */
  readonly index: number;
  /** Voters that confirmed leadership for this request (the leader itself included). */
  readonly acks: Map<NodeId, boolean>;
}

/** Turns request context bytes into a map key. */
export function contextKey(context: Uint8Array): string {
  let key = '';
  for (const byte of context) key += String.fromCharCode(byte);
  return key;
}

export class ReadOnly {
  readonly option: ReadOnlyOption;
  private readonly pending = new Map<string, ReadIndexStatus>();
  /** Context keys in arrival order. */
  private queue: string[] = [];

  constructor(option: ReadOnlyOption) {
    this.option = option;
  }

  /** Registers a read that arrived when the commit index was `index`. Duplicates are ignored. */
  addRequest(index: number, request: Message): void {
    const key = contextKey(request.context);
    if (this.pending.has(key)) {
      return;
    }
    this.pending.set(key, { request, index, acks: new Map() });
    this.queue.push(key);
  }

  /** Records a heartbeat acknowledgement for a read; returns its acks, or undefined if unknown. */
  recvAck(id: NodeId, context: Uint8Array): ReadonlyMap<NodeId, boolean> | undefined {
    const status = this.pending.get(contextKey(context));
    if (status === undefined) {
      return undefined;
    }
    status.acks.set(id, true);
    return status.acks;
  }

  /**
   * Removes and returns every read up to and including the one with `context`, which a quorum
   * has just confirmed: earlier reads arrived before it, so the same confirmation covers them.
   */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(context);
    const position = this.queue.indexOf(key);
    if (position < 0) {
      return [];
    }
    const released = this.queue.slice(0, position + 1);
    this.queue = this.queue.slice(position + 1);
    const statuses: ReadIndexStatus[] = [];
    for (const k of released) {
      const status = this.pending.get(k);
      if (status !== undefined) {
        statuses.push(status);
        this.pending.delete(k);
      }
    }
    return statuses;
  }

  /** The context of the newest pending read, carried by heartbeats; undefined if none. */
  lastPendingRequestContext(): Uint8Array | undefined {
    const key = this.queue[this.queue.length - 1];
    return key === undefined ? undefined : this.pending.get(key)!.request.context;
  }

  get pendingCount(): number {
    return this.queue.length;
  }
}
