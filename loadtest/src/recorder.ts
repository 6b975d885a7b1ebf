import { LatencyHistogram } from './histogram.js';
import type { OperationKind } from './workload.js';

/** One interval of the time series (one second by default). */
export interface IntervalSample {
  /** Seconds from the start of the run phase to the end of this interval. */
  readonly elapsedSeconds: number;
  readonly operations: number;
  readonly errors: number;
  readonly operationsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly minMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

const errorSamplesMax = 10;

/**
 * Collects every operation's latency: one histogram per operation kind and one for all, plus an
 * interval histogram that the progress line and the time series read and reset each second.
 */
export class RunRecorder {
  readonly overall = new LatencyHistogram();
  readonly byKind = new Map<OperationKind, LatencyHistogram>();
  readonly intervals: IntervalSample[] = [];
  readonly errorSamples: string[] = [];
  private readonly interval = new LatencyHistogram();
  private errorsTotal = 0;
  private intervalErrors = 0;
  private lastIntervalEndSeconds = 0;

  record(kind: OperationKind, latencyMs: number, ok: boolean, error?: unknown): void {
    const latencyMicroseconds = latencyMs * 1000;
    this.overall.record(latencyMicroseconds);
    this.interval.record(latencyMicroseconds);
    let histogram = this.byKind.get(kind);
    if (histogram === undefined) {
      histogram = new LatencyHistogram();
      this.byKind.set(kind, histogram);
    }
    histogram.record(latencyMicroseconds);
    if (!ok) {
      this.errorsTotal++;
      this.intervalErrors++;
      if (this.errorSamples.length < errorSamplesMax) {
        this.errorSamples.push(error instanceof Error ? error.message : String(error));
      }
    }
  }

  /**
   * An open-loop operation that was due but never sent before the run's deadline: an error whose
   * latency is at least the time it waited.
   */
  recordUnsent(waitedMs: number): void {
    this.overall.record(waitedMs * 1000);
    this.interval.record(waitedMs * 1000);
    this.errorsTotal++;
    this.intervalErrors++;
    if (this.errorSamples.length < errorSamplesMax) {
      this.errorSamples.push('not sent before the deadline (the target was too slow for the rate)');
    }
  }

  get errors(): number {
    return this.errorsTotal;
  }

  /** Ends the current interval at `elapsedSeconds` and starts the next. */
  closeInterval(elapsedSeconds: number): IntervalSample {
    const lengthSeconds = Math.max(1e-9, elapsedSeconds - this.lastIntervalEndSeconds);
    const sample: IntervalSample = {
      elapsedSeconds,
      operations: this.interval.count,
      errors: this.intervalErrors,
      operationsPerSecond: this.interval.count / lengthSeconds,
      p50Ms: this.interval.percentileMicroseconds(50) / 1000,
      p99Ms: this.interval.percentileMicroseconds(99) / 1000,
      p999Ms: this.interval.percentileMicroseconds(99.9) / 1000,
      maxMs: this.interval.maxMicroseconds / 1000,
    };
    this.intervals.push(sample);
    this.interval.reset();
    this.intervalErrors = 0;
    this.lastIntervalEndSeconds = elapsedSeconds;
    return sample;
  }
}

export function summarize(histogram: LatencyHistogram): LatencySummary {
  const ms = (microseconds: number): number => Math.round(microseconds) / 1000;
  return {
    count: histogram.count,
    meanMs: ms(histogram.meanMicroseconds),
    minMs: ms(histogram.minMicroseconds),
    p50Ms: ms(histogram.percentileMicroseconds(50)),
    p90Ms: ms(histogram.percentileMicroseconds(90)),
    p99Ms: ms(histogram.percentileMicroseconds(99)),
    p999Ms: ms(histogram.percentileMicroseconds(99.9)),
    maxMs: ms(histogram.maxMicroseconds),
  };
}
