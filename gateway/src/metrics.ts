import { Counter, Histogram, latencyBucketsSeconds, metricPrefix, type Registry } from '@impulse/common';

export type UpstreamErrorReason = 'refused' | 'reset' | 'timeout' | 'other';

export interface GatewayMetrics {
  readonly upstreamErrors: Counter<'group' | 'reason'>;
  readonly upstreamDurationSeconds: Histogram<'group' | 'method' | 'status'>;
  readonly retries: Counter<'group' | 'reason'>;
}

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  return {
    upstreamErrors: new Counter({
      name: `${metricPrefix}gateway_upstream_errors_total`,
      help: 'Proxied requests that failed before the shard group answered, by group and reason.',
      labelNames: ['group', 'reason'] as const,
      registers: [registry],
    }),
    upstreamDurationSeconds: new Histogram({
      name: `${metricPrefix}gateway_upstream_duration_seconds`,
      help: 'Time from sending a request to a shard group to its response headers, by group, method and status.',
      labelNames: ['group', 'method', 'status'] as const,
      buckets: latencyBucketsSeconds,
      registers: [registry],
    }),
    retries: new Counter({
      name: `${metricPrefix}gateway_retries_total`,
      help: 'Requests sent again to a shard group, by group and reason (not_leader, not_ready, storage_fault, refused, reset, timeout).',
      labelNames: ['group', 'reason'] as const,
      registers: [registry],
    }),
  };
}
