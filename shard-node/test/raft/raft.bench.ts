/**
 * Throughput of the core in memory: proposals committed per second by a 3-voter group whose
 * Ready loops run back to back (no I/O). Run with
 * `npx vitest bench --project unit shard-node/test/raft/raft.bench.ts`; multiply the reported
 * ops/s by the batch size for proposals/s.
 */
import { bench, describe } from 'vitest';
import {
  createSeededRandom,
  MemoryStorage,
  type Message,
  type NodeId,
  RawNode,
} from '../../src/raft/index.js';

function makeGroup(voters: number): {
  nodes: Map<NodeId, { node: RawNode; storage: MemoryStorage }>;
  pump: () => void;
} {
  const ids = Array.from({ length: voters }, (_, i) => i + 1);
  const confState = { voters: ids, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const nodes = new Map<NodeId, { node: RawNode; storage: MemoryStorage }>();
  for (const id of ids) {
    const storage = new MemoryStorage({ confState });
    nodes.set(id, { storage, node: new RawNode({ id, storage, random: createSeededRandom(id) }) });
  }
  let queue: Message[] = [];
  const pump = (): void => {
    for (let busy = true; busy;) {
      busy = false;
      for (const { node, storage } of nodes.values()) {
        while (node.hasReady()) {
          busy = true;
          const ready = node.ready();
          storage.append(ready.entries);
          if (ready.hardState !== undefined) storage.setHardState(ready.hardState);
          for (const m of ready.messages) queue.push(m);
          node.advance(ready);
          // Keep memory flat: drop what is applied (a host would snapshot instead).
          const applied = node.status().applied;
          if (applied - storage.firstIndex() > 10_000) storage.compact(applied - 1000);
        }
      }
      const batch = queue;
      queue = [];
      for (const m of batch) {
        busy = true;
        nodes.get(m.to)!.node.step(m);
      }
    }
  };
  nodes.get(1)!.node.campaign();
  pump();
  return { nodes, pump };
}

const payload = new Uint8Array(100);

describe('committed proposals, 3 voters, 100-byte commands', () => {
  const one = makeGroup(3);
  bench('1 proposal per Ready', () => {
    one.nodes.get(1)!.node.propose(payload);
    one.pump();
  });

  const many = makeGroup(3);
  bench('100 proposals per Ready (x100)', () => {
    const leader = many.nodes.get(1)!.node;
    for (let i = 0; i < 100; i++) leader.propose(payload);
    many.pump();
  });
});
