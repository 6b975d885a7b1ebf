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

/** Engine operations (count and latency by outcome) and the engine's key count. */
export function createStorageMetrics(registry: Registry, engineOf: () => Engine): StorageMetrics {
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
    help: 'Keys in the storage engine (counted when scraped).',
    labelNames: ['engine'] as const,
    registers: [registry],
    async collect() {
      const engine = engineOf();
      // A damaged engine may fail the count; the scrape must still answer (with the fault gauge).
      const count = await engine.approximateKeyCount().catch(() => undefined);
      if (count !== undefined) this.set({ engine: engine.name }, count);
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
