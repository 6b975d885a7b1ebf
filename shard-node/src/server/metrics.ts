import {
  Counter,
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
 * Engine operations (count and latency by outcome) and the replica's count of user keys
 * (`userKeysOf`: `undefined` while it cannot be trusted, a storage fault).
 */
export function createStorageMetrics(
  registry: Registry,
  engineOf: () => Engine,
  userKeysOf: () => number | undefined,
): StorageMetrics {
  const operations = new Counter({
    name: `${metricPrefix}kv_operations_total`,
    help: 'Key-value operations served by this replica (reads; writes until applied), by engine, operation and outcome.',
    labelNames: ['engine', 'operation', 'outcome'] as const,
    registers: [registry],
  });
  const durationSeconds = new Histogram({
    name: `${metricPrefix}kv_operation_duration_seconds`,
    help: 'Latency of key-value operations on this replica (a write: proposed, committed by a quorum and applied).',
    labelNames: ['engine', 'operation'] as const,
    buckets: latencyBucketsSeconds,
    registers: [registry],
  });
  new Gauge({
    name: `${metricPrefix}engine_keys`,
    help: "User keys this replica's state machine holds: keys written by PUT and not deleted since, as applied here (a follower may be behind its leader). Request ids, batch records and the replica's own meta records are not counted. A count kept by the apply loop, not a scan: set at start and by each installed snapshot, then one up for each put of a new key and one down for each delete of a present key. Absent while the replica has a storage fault.",
    labelNames: ['engine'] as const,
    registers: [registry],
    collect() {
      const count = userKeysOf();
      this.reset();
      if (count !== undefined) this.set({ engine: engineOf().name }, count);
    },
  });
  // Resolving a label set costs an object and a label check per call; the children of each
  // (engine, operation) are resolved once and kept. The set is bounded: one engine per replica and
  // the five operations.
  const children = new Map<string, Map<StorageOperation, OperationChildren>>();
  function childrenOf(engine: string, operation: StorageOperation): OperationChildren {
    let byOperation = children.get(engine);
    if (byOperation === undefined) {
      byOperation = new Map();
      children.set(engine, byOperation);
    }
    let resolved = byOperation.get(operation);
    if (resolved === undefined) {
      resolved = {
        ok: operations.labels({ engine, operation, outcome: 'ok' }),
        error: operations.labels({ engine, operation, outcome: 'error' }),
        durationSeconds: durationSeconds.labels({ engine, operation }),
      };
      byOperation.set(operation, resolved);
    }
    return resolved;
  }
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

interface OperationChildren {
  readonly ok: { inc(): void };
  readonly error: { inc(): void };
  readonly durationSeconds: { observe(value: number): void };
}
