/**
 * A minimal in-memory cluster for unit and paper tests: RawNodes on MemoryStorages, a message
 * queue with optional drops, and helpers to run Ready loops to quiescence.
 */
import {
  type Config,
  type ConfState,
  createSeededRandom,
  decodeConfChange,
  type Entry,
  MemoryStorage,
  type Message,
  type NodeId,
  RawNode,
} from '../../../src/raft/index.js';

export interface ClusterNode {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  node: RawNode;
  /** Committed entries applied so far, in order (normal entries with data only). */
  readonly applied: Entry[];
  confState: ConfState;
}

export class Cluster {
  readonly nodes = new Map<NodeId, ClusterNode>();
  queue: Message[] = [];
  /** Links that drop messages, as "from->to". */
  private readonly cut = new Set<string>();
  /** Drop filter applied to each message before delivery. */
  dropIf: (message: Message) => boolean = () => false;

  constructor(
    ids: readonly NodeId[],
    options: Partial<Omit<Config, 'id' | 'storage' | 'random'>> & { seed?: number } = {},
  ) {
    const confState: ConfState = {
      voters: ids,
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    for (const id of ids) {
      const storage = new MemoryStorage({ confState });
      const { seed = 1, ...rest } = options;
      const node = new RawNode({ id, storage, random: createSeededRandom(seed * 7919 + id), ...rest });
      this.nodes.set(id, { id, storage, node, applied: [], confState });
    }
  }

  get(id: NodeId): ClusterNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  raw(id: NodeId): RawNode {
    return this.get(id).node;
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** Processes one Ready of node `id` if it has one: persist, queue messages, apply, advance. */
  processReady(id: NodeId): boolean {
    const n = this.get(id);
    if (!n.node.hasReady()) return false;
    const ready = n.node.ready();
    if (ready.snapshot !== undefined) {
      n.storage.applySnapshot(ready.snapshot);
      n.confState = ready.snapshot.metadata.confState;
    }
    n.storage.append(ready.entries);
    if (ready.hardState !== undefined) n.storage.setHardState(ready.hardState);
    for (const m of ready.messages) this.queue.push(m);
    for (const entry of ready.committedEntries) {
      if (entry.type === 'normal') {
        if (entry.data.length > 0) n.applied.push(entry);
      } else {
        n.confState = n.node.applyConfChange(decodeConfChange(entry.type, entry.data));
      }
    }
    n.node.advance(ready);
    return true;
  }

  /** Delivers every queued message once (dropping cut links); returns how many were delivered. */
  deliverAll(): number {
    const batch = this.queue;
    this.queue = [];
    let delivered = 0;
    for (const m of batch) {
      if (this.cut.has(`${m.from}->${m.to}`) || this.dropIf(m)) continue;
      const target = this.nodes.get(m.to);
      if (target === undefined) continue;
      target.node.step(m);
      delivered++;
    }
    return delivered;
  }

  /** Runs Ready loops and deliveries until nothing happens. */
  stabilize(): void {
    for (let round = 0; round < 10_000; round++) {
      let any = false;
      for (const id of this.nodes.keys()) {
        while (this.processReady(id)) any = true;
      }
      if (this.deliverAll() > 0) any = true;
      if (!any && this.queue.length === 0) return;
    }
    throw new Error('cluster did not stabilize');
  }

  /** Campaigns on `id` and stabilizes; returns the node's role afterwards. */
  elect(id: NodeId): void {
    this.raw(id).campaign();
    this.stabilize();
  }

  tick(id: NodeId, count = 1): void {
    for (let i = 0; i < count; i++) this.raw(id).tick();
  }

  leaderIds(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.node.status().role === 'leader').map((n) => n.id);
  }
}

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (data: Uint8Array): string => new TextDecoder().decode(data);
