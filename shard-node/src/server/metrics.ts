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
      this.set({ engine: engine.name }, await engine.approximateKeyCount());
    },
  });
  return {
    async time(operation, run) {
      const engine = engineOf();
      const startedAt = process.hrtime.bigint();
      try {
        const result = await run();
        operations.inc({ engine: engine.name, operation, outcome: 'ok' });
        return result;
      } catch (error) {
        operations.inc({ engine: engine.name, operation, outcome: 'error' });
        throw error;
      } finally {
        durationSeconds.observe(
          { engine: engine.name, operation },
          Number(process.hrtime.bigint() - startedAt) / 1e9,
        );
      }
    },
  };
}
