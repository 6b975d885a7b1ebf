/**
 * Throughput of the Raft core alone: a 3-replica cluster of RawNodes wired in memory (no I/O, no
 * faults, messages delivered at once), fed proposals as fast as it commits them. Prints committed
 * proposals per second and the mean batch sizes (entries per MsgApp, entries per Ready).
 *
 *   npm run bench:raft -- [--seconds 5] [--proposals-per-round 64] [--value-bytes 100] [--one-by-one]
 *
 * By default each round's proposals go in as one `proposeBatch` (one MsgProp, one append, one
 * broadcast); `--one-by-one` calls `propose` for each, which sends one MsgApp per proposal.
 *
 * A benchmark prints numbers; it never fails on a slow machine.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

import { RawNode, createSeededRandom, decodeConfChange, type Message, type NodeId } from '../raft/index.js';
import { bootstrapStorage } from './cluster.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    'proposals-per-round': { type: 'string', default: '64' },
    'value-bytes': { type: 'string', default: '100' },
    'one-by-one': { type: 'boolean', default: false },
  },
});
const durationSeconds = Number(values.seconds);
const proposalsPerRound = Number(values['proposals-per-round']);
const valueBytes = Number(values['value-bytes']);
const oneByOne = values['one-by-one'];
/** Proposals allowed between proposing and committing: the client-side flow control. */
const uncommittedProposalsMax = 4096;
/** Entries kept in each log; older ones are compacted so that memory stays flat. */
const logEntriesKept = 10_000;
/** Message rounds per tick: heartbeats keep flowing as in a real cluster. */
const roundsPerTick = 10;

const voters: NodeId[] = [1, 2, 3];
const nodes = new Map<NodeId, { node: RawNode; storage: ReturnType<typeof bootstrapStorage> }>();
for (const id of voters) {
  const storage = bootstrapStorage(voters);
  const node = new RawNode({
    id,
    storage,
    electionTimeoutTicks: 10,
    heartbeatTicks: 1,
    random: createSeededRandom(id),
  });
  nodes.set(id, { node, storage });
}

let committed = 0;
let msgAppCount = 0;
let msgAppEntries = 0;
let readyCount = 0;
let readyEntries = 0;
let queue: Message[] = [];

/** Handles every Ready of every node; returns whether any node had one. */
function handleReadies(countCommits: boolean): boolean {
  let any = false;
  for (const [id, { node, storage }] of nodes) {
    while (node.hasReady()) {
      any = true;
      const ready = node.ready();
      if (ready.entries.length > 0) {
        storage.append(ready.entries);
        readyCount += 1;
        readyEntries += ready.entries.length;
      }
      if (ready.hardState !== undefined) storage.setHardState(ready.hardState);
      for (const message of ready.messages) {
        if (message.type === 'MsgApp' && message.entries.length > 0) {
          msgAppCount += 1;
          msgAppEntries += message.entries.length;
        }
        queue.push(message);
      }
      for (const entry of ready.committedEntries) {
        if (entry.type !== 'normal') node.applyConfChange(decodeConfChange(entry.type, entry.data));
        else if (countCommits && id === 1 && entry.data.length > 0) committed += 1;
      }
      node.advance(ready);
      const last = storage.lastIndex();
      if (last - storage.firstIndex() > 2 * logEntriesKept && node.status().applied > last - logEntriesKept) {
        storage.compact(last - logEntriesKept);
      }
    }
  }
  return any;
}

function deliverAll(): void {
  const batch = queue;
  queue = [];
  for (const message of batch) nodes.get(message.to)!.node.step(message);
}

// Apply the bootstrap configuration, elect node 1, and let the cluster settle before measuring.
const leader = nodes.get(1)!.node;
handleReadies(false);
leader.campaign();
for (let round = 0; round < 100 && leader.status().role !== 'leader'; round += 1) {
  handleReadies(false);
  deliverAll();
}
if (leader.status().role !== 'leader') throw new Error('bench: node 1 did not become leader');

const value = new Uint8Array(valueBytes).fill(120);
let proposed = 0;
let round = 0;
const startMs = performance.now();
const startCpu = process.cpuUsage();
const deadlineMs = startMs + durationSeconds * 1000;
while (performance.now() < deadlineMs) {
  const count = Math.min(proposalsPerRound, uncommittedProposalsMax - (proposed - committed));
  if (count > 0) {
    if (oneByOne) for (let i = 0; i < count; i += 1) leader.propose(value);
    else leader.proposeBatch(new Array<Uint8Array>(count).fill(value));
    proposed += count;
  }
  handleReadies(true);
  deliverAll();
  round += 1;
  if (round % roundsPerTick === 0) for (const { node } of nodes.values()) node.tick();
}
const elapsedSeconds = (performance.now() - startMs) / 1000;
const cpu = process.cpuUsage(startCpu);
// CPU time too: on a shared machine, wall-clock rates mostly measure the neighbours.
const cpuSeconds = (cpu.user + cpu.system) / 1e6;

const format = (n: number, digits = 1): string => n.toFixed(digits);
console.log(
  `bench:raft 3 replicas in memory, ${valueBytes}-byte values, ${proposalsPerRound} proposals per round` +
    ` (${oneByOne ? 'propose one by one' : 'proposeBatch'})`,
);
console.log(`  committed proposals: ${committed} in ${format(elapsedSeconds, 2)} s`);
console.log(`  committed proposals per second: ${Math.round(committed / elapsedSeconds)}`);
console.log(
  `  committed proposals per CPU second: ${Math.round(committed / cpuSeconds)} (${format(cpuSeconds, 2)} CPU s)`,
);
console.log(
  `  mean entries per MsgApp: ${format(msgAppEntries / Math.max(1, msgAppCount), 2)} (${msgAppCount} MsgApp)`,
);
console.log(
  `  mean entries per Ready (with entries): ${format(readyEntries / Math.max(1, readyCount), 2)} (${readyCount} Readys)`,
);
