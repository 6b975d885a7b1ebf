/**
 * The metrics of a process's Raft log, as the log itself does its work: each fsync once, however
 * many groups' writes it makes durable. On a node that is the one node log its groups share
 * (`NodeLog`, observed through `nodeLogObserverOf`); in a process of one replica, that replica's
 * own log (observed by the replica). The series carry no `group` label, only the registry's default
 * labels: a node's `node`; a replica process's `group` and `replica`.
 *
 * The per-group share of the log (bytes appended, segment bytes) stays in `metrics.ts`.
 */
import { Counter, Histogram, latencyBucketsSeconds, metricPrefix, type Registry } from '@impulse/common';
import type { NodeLogFlush, NodeLogObserver } from '../raft-log/index.js';

/** What a Raft log's observer reports, counted once per registry. */
export interface LogMetrics {
  /** One fsync of the log: an fdatasync of a segment or an fsync of its directory. */
  observeFsync(seconds: number): void;
  /** Bytes written to the log's segments (records, and a node log's checkpoints). */
  observeWritten(bytes: number): void;
}

/** Powers of two up to 4096: writes and entries one fsync made durable. */
const perFsyncBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

const logMetricsByRegistry = new WeakMap<Registry, LogMetrics>();
const nodeObserversByRegistry = new WeakMap<Registry, Partial<NodeLogObserver>>();

const raft = (name: string): string => `${metricPrefix}raft_${name}`;

/** The log metrics of `registry`, registered the first time they are asked for. */
export function logMetricsOf(registry: Registry): LogMetrics {
  let metrics = logMetricsByRegistry.get(registry);
  if (metrics === undefined) {
    const fsyncSeconds = new Histogram({
      name: raft('log_fsync_duration_seconds'),
      help: "Time of one fsync of the process's Raft log (a segment's fdatasync or its directory's fsync), each counted once: on a node, the one log every hosted group shares. Its _count is the log's fsyncs.",
      buckets: latencyBucketsSeconds,
      registers: [registry],
    });
    const writtenBytes = new Counter({
      name: raft('log_written_bytes_total'),
      help: "Bytes written to the process's Raft log segments (every group's records, and on a node the checkpoints that start its segments).",
      registers: [registry],
    });
    metrics = {
      observeFsync: (seconds) => fsyncSeconds.observe(seconds),
      observeWritten: (bytes) => writtenBytes.inc(bytes),
    };
    logMetricsByRegistry.set(registry, metrics);
  }
  return metrics;
}

/**
 * The observer of a node's log: its fsyncs and bytes (`logMetricsOf`), and what each flush's
 * fdatasync made durable, so that the batching (writes and entries per fsync) can be graphed.
 */
export function nodeLogObserverOf(registry: Registry): Partial<NodeLogObserver> {
  let observer = nodeObserversByRegistry.get(registry);
  if (observer === undefined) {
    const metrics = logMetricsOf(registry);
    const writesPerFsync = new Histogram({
      name: raft('log_fsync_writes'),
      help: "Writes one fdatasync of the node log made durable: each is a group's records of one round (a save or a compaction), or a group's creation or removal. _sum over _count is the groups' writes per fsync.",
      buckets: perFsyncBuckets,
      registers: [registry],
    });
    const entriesPerFsync = new Histogram({
      name: raft('log_fsync_entries'),
      help: 'Raft entries, over every group, that one fdatasync of the node log made durable (0 for one that made only votes, terms or compactions durable). _sum over _count is the entries per fsync.',
      buckets: [0, ...perFsyncBuckets],
      registers: [registry],
    });
    observer = {
      onFsync: (seconds) => metrics.observeFsync(seconds),
      onAppend: (bytes) => metrics.observeWritten(bytes),
      onFlush: ({ writes, entries, fsyncSeconds }: NodeLogFlush) => {
        if (fsyncSeconds === undefined) return;
        writesPerFsync.observe(writes);
        entriesPerFsync.observe(entries);
      },
    };
    nodeObserversByRegistry.set(registry, observer);
  }
  return observer;
}
