import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const metricPrefix = 'impulse_';

/** Latency buckets in seconds, from 100 µs to 10 s: fsync-bound writes sit in the middle. */
export const latencyBucketsSeconds = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** A registry with the process metrics (CPU, memory, event-loop lag, GC), all prefixed `impulse_`. */
export function createMetricsRegistry(labels: Readonly<Record<string, string>>): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ ...labels });
  collectDefaultMetrics({ register: registry, prefix: metricPrefix });
  return registry;
}

export interface HttpMetrics {
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly durationSeconds: Histogram<'route' | 'method' | 'status'>;
  observe(route: string, method: string, status: number, seconds: number): void;
}

const httpMetricsByRegistry = new WeakMap<Registry, HttpMetrics>();

/**
 * Request counts and latency by route (the pattern, never the raw path), method and status; one
 * set per registry, so that the routes of every replica a node hosts count in the same families.
 */
export function createHttpMetrics(registry: Registry): HttpMetrics {
  let metrics = httpMetricsByRegistry.get(registry);
  if (metrics === undefined) {
    metrics = newHttpMetrics(registry);
    httpMetricsByRegistry.set(registry, metrics);
  }
  return metrics;
}

function newHttpMetrics(registry: Registry): HttpMetrics {
  const labelNames = ['route', 'method', 'status'] as const;
  const requests = new Counter({
    name: `${metricPrefix}http_requests_total`,
    help: 'HTTP requests answered, by route, method and status.',
    labelNames,
    registers: [registry],
  });
  const durationSeconds = new Histogram({
    name: `${metricPrefix}http_request_duration_seconds`,
    help: 'Time from request arrival to the end of the response, by route, method and status.',
    labelNames,
    buckets: latencyBucketsSeconds,
    registers: [registry],
  });
  // Resolving a label set costs an object and a label-name check per call; the children of each
  // (route, method, status) are resolved once and kept. The sets are bounded: routes are patterns,
  // methods are the ones node's HTTP parser accepts, and statuses are three digits.
  const children = new Map<string, Map<string, Map<number, ObservationChildren>>>();
  function childrenOf(route: string, method: string, status: number): ObservationChildren {
    let byMethod = children.get(route);
    if (byMethod === undefined) {
      byMethod = new Map();
      children.set(route, byMethod);
    }
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) {
      byStatus = new Map();
      byMethod.set(method, byStatus);
    }
    let resolved = byStatus.get(status);
    if (resolved === undefined) {
      const labels = { route, method, status: String(status) };
      resolved = { requests: requests.labels(labels), durationSeconds: durationSeconds.labels(labels) };
      byStatus.set(status, resolved);
    }
    return resolved;
  }
  return {
    requests,
    durationSeconds,
    observe(route, method, status, seconds) {
      const resolved = childrenOf(route, method, status);
      resolved.requests.inc();
      resolved.durationSeconds.observe(seconds);
    },
  };
}

interface ObservationChildren {
  readonly requests: { inc(value?: number): void };
  readonly durationSeconds: { observe(value: number): void };
}
