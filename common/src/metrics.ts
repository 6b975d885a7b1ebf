import { Counter, Histogram, Registry, collectDefaultMetrics, type CounterConfiguration } from 'prom-client';

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

/** One series of a `FoldedCounter`: resolve it once (per group, peer...) and keep it. */
export interface FoldedCounterSeries {
  /** Adds `value` (default 1) to the series: a plain addition, shown from the next scrape on. */
  inc(value?: number): void;
}

/** A `FoldedCounter`'s prom-client configuration: it brings its own `collect`, and no exemplars. */
export type FoldedCounterConfiguration<T extends string> = Omit<
  CounterConfiguration<T>,
  'collect' | 'enableExemplars'
>;

/**
 * A prom-client counter whose hot-path increments are plain additions. prom-client builds a hash
 * string of the label set and checks the label names on every `inc`, even through a child from
 * `labels()` (a child binds the label object, it does not keep the hash); a series of a
 * `FoldedCounter` adds to a number of its own instead, and the counter's `collect` (which
 * prom-client runs on every scrape of the registry, before it reads the values) adds what each
 * series counted since the last scrape to the prom-client series. That is one hashed increment per
 * scrape and series that moved, instead of one per event.
 *
 * A scrape shows exactly what direct increments would have: the same name, help and series, with
 * the same values. A series appears at the first scrape after its first increment (even of 0, as
 * `inc(labels, 0)` creates one) and only ever grows. Series are never removed: use this only for
 * counters that keep every series for the life of the process.
 */
export class FoldedCounter<T extends string> {
  readonly counter: Counter<T>;
  /** The series incremented since the last fold, each once. */
  private readonly moved: PendingCounterSeries<T>[] = [];

  constructor(configuration: FoldedCounterConfiguration<T>) {
    const fold = (): void => this.fold();
    this.counter = new Counter<T>({ ...configuration, collect: fold });
  }

  /** The series of `labels` (every label of the counter). Resolve it once and keep it. */
  series(labels: Readonly<Record<T, string>>): FoldedCounterSeries {
    return new PendingCounterSeries(labels, this.moved);
  }

  /** Adds what every series counted since the last fold to the counter (run on each scrape). */
  private fold(): void {
    const moved = this.moved;
    for (const series of moved) {
      const value = series.pending;
      series.pending = 0;
      series.queued = false;
      this.counter.inc(series.labels, value);
    }
    moved.length = 0;
  }
}

class PendingCounterSeries<T extends string> implements FoldedCounterSeries {
  /** Counted since the last fold. */
  pending = 0;
  /** Whether the series is in `moved`, waiting for the next fold. */
  queued = false;

  constructor(
    readonly labels: Readonly<Record<T, string>>,
    private readonly moved: PendingCounterSeries<T>[],
  ) {}

  inc(value = 1): void {
    // prom-client refuses these at the call; a fold would refuse them at a scrape, far from the bug.
    if (!(value >= 0 && value < Infinity)) {
      throw new RangeError(`a counter grows by a finite amount of at least 0, not ${value}`);
    }
    this.pending += value;
    if (!this.queued) {
      this.queued = true;
      this.moved.push(this);
    }
  }
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
