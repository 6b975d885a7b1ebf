import {
  FoldedCounter,
  Gauge,
  Histogram,
  latencyBucketsSeconds,
  metricPrefix,
  type Registry,
} from '@impulse/common';
import type { Engine } from '../storage/index.js';

export type StorageOperation = 'get' | 'put' | 'delete' | 'batch' | 'scan';

export interface StorageMetrics {
  /** Runs `operation`, counting it and its latency by outcome. */
  time<T>(operation: StorageOperation, run: () => Promise<T>): Promise<T>;
}

/**
 * Engine operations (count and latency by outcome) and each replica's count of user keys, labelled
 * by `group`: registered once per registry, however many replicas a process hosts.
 */
class StorageMetricsFamily {
  /** Counted per operation in plain numbers, folded into the counter on each scrape. */
  private readonly operations: FoldedCounter<'group' | 'engine' | 'operation' | 'outcome'>;
  private readonly durationSeconds: Histogram<'group' | 'engine' | 'operation'>;
  /** What the key gauge reports, by group: the engine and the count (`undefined`: not trusted). */
  private readonly keyCounts = new Map<
    string,
    { engineOf: () => Engine; userKeysOf: () => number | undefined }
  >();

  constructor(registry: Registry) {
    this.operations = new FoldedCounter({
      name: `${metricPrefix}kv_operations_total`,
      help: 'Key-value operations served by this replica (reads; writes until applied), by group, engine, operation and outcome.',
      labelNames: ['engine', 'operation', 'outcome', 'group'] as const,
      registers: [registry],
    });
    this.durationSeconds = new Histogram({
      name: `${metricPrefix}kv_operation_duration_seconds`,
      help: 'Latency of key-value operations on this replica (a write: proposed, committed by a quorum and applied).',
      labelNames: ['engine', 'operation', 'group'] as const,
      buckets: latencyBucketsSeconds,
      registers: [registry],
    });
    const keyCounts = this.keyCounts;
    new Gauge({
      name: `${metricPrefix}engine_keys`,
      help: "User keys this replica's state machine holds: keys written by PUT and not deleted since, as applied here (a follower may be behind its leader). Request ids, batch records, slot index records and the replica's own meta records are not counted. A count kept by the apply loop, not a scan: set at start and by each installed snapshot, then one up for each put of a new key and one down for each delete of a present key. Absent while the replica has a storage fault.",
      labelNames: ['engine', 'group'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [group, { engineOf, userKeysOf }] of keyCounts) {
          const count = userKeysOf();
          if (count !== undefined) this.set({ engine: engineOf().name, group }, count);
        }
      },
    });
  }

  bind(group: string, engineOf: () => Engine, userKeysOf: () => number | undefined): StorageMetrics {
    this.keyCounts.set(group, { engineOf, userKeysOf });
    // The series of each (engine, operation) are resolved once and kept. The set is bounded: one
    // engine per replica and the five operations. The counter's are `FoldedCounter` series (an
    // addition per operation); a histogram child still hashes its labels on every observation
    // (prom-client has no way to add bucket counts at a scrape), but skips building the label object.
    const children = new Map<string, Map<StorageOperation, OperationChildren>>();
    const childrenOf = (engine: string, operation: StorageOperation): OperationChildren => {
      let byOperation = children.get(engine);
      if (byOperation === undefined) {
        byOperation = new Map();
        children.set(engine, byOperation);
      }
      let resolved = byOperation.get(operation);
      if (resolved === undefined) {
        resolved = {
          ok: this.operations.series({ engine, operation, outcome: 'ok', group }),
          error: this.operations.series({ engine, operation, outcome: 'error', group }),
          durationSeconds: this.durationSeconds.labels({ engine, operation, group }),
        };
        byOperation.set(operation, resolved);
      }
      return resolved;
    };
    return {
      async time(operation, run) {
        const resolved = childrenOf(engineOf().name, operation);
        const startedAtMs = performance.now();
        try {
          const result = await run();
          resolved.ok.inc();
          return result;
        } catch (error) {
          resolved.error.inc();
          throw error;
        } finally {
          resolved.durationSeconds.observe((performance.now() - startedAtMs) / 1000);
        }
      },
    };
  }
}

const families = new WeakMap<Registry, StorageMetricsFamily>();

/** The storage metrics of the replica of `group` (see `StorageMetricsFamily`). */
export function createStorageMetrics(
  registry: Registry,
  group: string,
  engineOf: () => Engine,
  userKeysOf: () => number | undefined,
): StorageMetrics {
  let family = families.get(registry);
  if (family === undefined) {
    family = new StorageMetricsFamily(registry);
    families.set(registry, family);
  }
  return family.bind(group, engineOf, userKeysOf);
}

interface OperationChildren {
  readonly ok: { inc(): void };
  readonly error: { inc(): void };
  readonly durationSeconds: { observe(value: number): void };
}
