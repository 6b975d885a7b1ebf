/**
 * The metrics of a node's engine (`NodeEngine`): its LevelDB writes, how many groups' batches each
 * carried, and its flushes. The series carry only the registry's default labels (the node's).
 */
import { Counter, Histogram, latencyBucketsSeconds, metricPrefix, type Registry } from '@impulse/common';
import type { NodeEngineObserver } from '../storage/index.js';

/** Powers of two up to 4096: the groups' batches one LevelDB write carried. */
const perWriteBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

const engine = (name: string): string => `${metricPrefix}node_engine_${name}`;

const observersByRegistry = new WeakMap<Registry, NodeEngineObserver>();

/**
 * The observer of the node engine whose metrics go to `registry`, registered the first time it is
 * asked for (a node started again on the same registry keeps counting on the same series).
 */
export function nodeEngineObserverOf(registry: Registry): NodeEngineObserver {
  let observer = observersByRegistry.get(registry);
  if (observer === undefined) {
    observer = registerObserver(registry);
    observersByRegistry.set(registry, observer);
  }
  return observer;
}

function registerObserver(registry: Registry): NodeEngineObserver {
  const writes = new Counter({
    name: engine('writes_total'),
    help: "LevelDB writes of the node's engine (one per round of applies, for every group at once), by whether they were synced.",
    labelNames: ['synced'] as const,
    registers: [registry],
  });
  const batchesPerWrite = new Histogram({
    name: engine('write_batches'),
    help: "State-machine batches (a group's applies of a round, or another write of one group) one LevelDB write of the node's engine carried. _sum over _count is the batches per write.",
    buckets: perWriteBuckets,
    registers: [registry],
  });
  const operations = new Counter({
    name: engine('write_operations_total'),
    help: "Puts and deletes written to the node's engine.",
    registers: [registry],
  });
  const writeSeconds = new Histogram({
    name: engine('write_duration_seconds'),
    help: "Time of one LevelDB write of the node's engine, from the call to its completion (the hand-off to libuv's thread pool included).",
    buckets: latencyBucketsSeconds,
    registers: [registry],
  });
  const flushSeconds = new Histogram({
    name: engine('flush_duration_seconds'),
    help: "Time of one flush of the node engine's memtable to an fsynced table (a snapshot install, or a group's state made durable before its log is compacted). Its _count is the flushes.",
    buckets: latencyBucketsSeconds,
    registers: [registry],
  });
  const syncedLabels = { synced: 'true' } as const;
  const unsyncedLabels = { synced: 'false' } as const;
  return {
    onWrite: (batches, count, synced, seconds) => {
      writes.inc(synced ? syncedLabels : unsyncedLabels);
      batchesPerWrite.observe(batches);
      operations.inc(count);
      writeSeconds.observe(seconds);
    },
    onFlush: (seconds) => flushSeconds.observe(seconds),
  };
}
