/**
 * The simulated network between replicas: it loses, delays, duplicates and reorders messages,
 * and cuts links (partitions, including one-way ones). Delivery happens in ticks; messages due in
 * the same tick are delivered in a random order.
 */
import type { Message, NodeId } from '../raft/index.js';
import type { Prng } from './prng.js';

export interface NetworkFaults {
  /** Probability that a message is lost. */
  readonly dropProbability: number;
  /** Probability that a message is delivered twice. */
  readonly duplicateProbability: number;
  /** Delivery delay, drawn uniformly from [1, delayTicksMax]; spreads reorder messages. */
  readonly delayTicksMax: number;
}

export const reliableNetwork: NetworkFaults = {
  dropProbability: 0,
  duplicateProbability: 0,
  delayTicksMax: 1,
};

/** The bound on messages in flight; the simulator fails loudly rather than grow without limit. */
const inflightMessagesMax = 200_000;

interface InFlight {
  readonly message: Message;
  readonly deliverTick: number;
  readonly order: number;
}

export interface NetworkCounters {
  sent: number;
  dropped: number;
  duplicated: number;
  delivered: number;
  /** MsgSnap sent: shows that snapshot transfer was exercised. */
  snapshotsSent: number;
}

export class SimNetwork {
  faults: NetworkFaults = reliableNetwork;
  /**
   * Told of every message lost, whenever it is lost: a real transport knows when a send failed,
   * and the sender must hear of a lost snapshot, or its leader waits for it forever.
   */
  onLost: (message: Message) => void = () => {};
  readonly counters: NetworkCounters = {
    sent: 0,
    dropped: 0,
    duplicated: 0,
    delivered: 0,
    snapshotsSent: 0,
  };
  private inFlight: InFlight[] = [];
  /** Directed links that are cut, as `from>to`. */
  private readonly cut = new Set<string>();

  constructor(private readonly prng: Prng) {}

  isLinkUp(from: NodeId, to: NodeId): boolean {
    return !this.cut.has(`${from}>${to}`);
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  /** Cuts every link between the two sides, both ways. */
  partition(sideA: readonly NodeId[], sideB: readonly NodeId[]): void {
    for (const a of sideA) {
      for (const b of sideB) {
        this.cutLink(a, b);
        this.cutLink(b, a);
      }
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** Whether any link is cut (for the fault schedule and reports). */
  isPartitioned(): boolean {
    return this.cut.size > 0;
  }

  /** Accepts a message; returns false when it is lost at once (link cut or unlucky). */
  send(message: Message, nowTick: number): boolean {
    this.counters.sent += 1;
    if (message.type === 'MsgSnap') this.counters.snapshotsSent += 1;
    if (!this.isLinkUp(message.from, message.to) || this.prng.chance(this.faults.dropProbability)) {
      this.lose(message);
      return false;
    }
    this.enqueue(message, nowTick);
    if (this.prng.chance(this.faults.duplicateProbability)) {
      this.counters.duplicated += 1;
      this.enqueue(message, nowTick);
    }
    return true;
  }

  /**
   * Removes and returns the messages due at `nowTick`, shuffled. A message whose link was cut
   * while it was in flight is lost.
   */
  takeDue(nowTick: number): Message[] {
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const item of this.inFlight) (item.deliverTick <= nowTick ? due : later).push(item);
    this.inFlight = later;
    due.sort((a, b) => a.order - b.order);
    const messages: Message[] = [];
    for (const item of this.prng.shuffle(due)) {
      if (!this.isLinkUp(item.message.from, item.message.to)) {
        this.lose(item.message);
        continue;
      }
      this.counters.delivered += 1;
      messages.push(item.message);
    }
    return messages;
  }

  /** Drops everything in flight to a node: it crashed or left, and its connections are gone. */
  forget(nodeId: NodeId): void {
    const kept: InFlight[] = [];
    for (const item of this.inFlight) {
      if (item.message.to === nodeId) this.lose(item.message);
      else kept.push(item);
    }
    this.inFlight = kept;
  }

  private lose(message: Message): void {
    this.counters.dropped += 1;
    this.onLost(message);
  }

  get inFlightCount(): number {
    return this.inFlight.length;
  }

  private order = 0;

  private enqueue(message: Message, nowTick: number): void {
    if (this.inFlight.length >= inflightMessagesMax) {
      throw new Error(`raft-sim: more than ${inflightMessagesMax} messages in flight`);
    }
    const deliverTick = nowTick + this.prng.between(1, Math.max(1, this.faults.delayTicksMax));
    this.order += 1;
    this.inFlight.push({ message, deliverTick, order: this.order });
  }
}
