import {
  Counter,
  Gauge,
  Histogram,
  latencyBucketsSeconds,
  metricPrefix,
  type Registry,
} from '@impulse/common';

export type UpstreamErrorReason = 'refused' | 'reset' | 'timeout' | 'other';

export interface GatewayMetrics {
  readonly upstreamErrors: Counter<'group' | 'reason'>;
  readonly upstreamDurationSeconds: Histogram<'group' | 'method' | 'status'>;
  readonly retries: Counter<'group' | 'reason'>;
  /** Requests being served, by route: key requests (`/kv/{key}`) and scans (`/kv`). */
  readonly requestsInFlight: Gauge<'route'>;
  /** Requests answered 429 because their route's in-flight maximum was reached, by route. */
  readonly overloadRefusals: Counter<'route'>;
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
    requestsInFlight: new Gauge({
      name: `${metricPrefix}gateway_requests_in_flight`,
      help: 'Requests being served, from arrival to answer, by route: key requests (/kv/{key}, at most --key-requests-max) and scans (/kv, at most --scans-in-flight-max).',
      labelNames: ['route'] as const,
      registers: [registry],
    }),
    overloadRefusals: new Counter({
      name: `${metricPrefix}gateway_overload_refusals_total`,
      help: 'Requests answered 429 TOO_MANY_REQUESTS because their route had its maximum in flight already, by route: /kv/{key} (--key-requests-max) or /kv (--scans-in-flight-max).',
      labelNames: ['route'] as const,
      registers: [registry],
    }),
  };
}
