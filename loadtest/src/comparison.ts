import type { TargetResult } from './benchmark.js';
import { median } from './median.js';

/** One target's numbers over its runs: medians of throughput and of each run's percentiles. */
export interface TargetSummary {
  readonly target: string;
  readonly runs: number;
  readonly failure?: string;
  readonly operationsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

export function summarizeRuns(target: string, results: readonly TargetResult[]): TargetSummary {
  const ran = results.filter((result) => result.run !== undefined);
  const failure = results.find((result) => result.failure !== undefined)?.failure;
  return {
    target,
    runs: ran.length,
    ...(failure === undefined ? {} : { failure }),
    operationsPerSecond: Math.round(median(ran.map((result) => result.run?.operationsPerSecond ?? 0))),
    p50Ms: median(ran.map((result) => result.run?.latency.p50Ms ?? 0)),
    p99Ms: median(ran.map((result) => result.run?.latency.p99Ms ?? 0)),
    errors: ran.reduce((sum, result) => sum + (result.run?.errors ?? 0), 0),
  };
}

const ratio = (numerator: number, denominator: number): string =>
  Number.isFinite(numerator) && Number.isFinite(denominator) && denominator > 0
    ? (numerator / denominator).toFixed(2)
    : 'n/a';

/** "impulse / etcd: throughput 0.52x, p50 1.90x, p99 2.10x" for every target beside Impulse. */
export function comparisonLines(summaries: readonly TargetSummary[]): string[] {
  const impulse = summaries.find((summary) => summary.target === 'impulse' && summary.runs > 0);
  if (impulse === undefined) return [];
  return summaries
    .filter((summary) => summary.target !== 'impulse' && summary.runs > 0)
    .map(
      (other) =>
        `impulse / ${other.target}: throughput ${ratio(impulse.operationsPerSecond, other.operationsPerSecond)}x, ` +
        `p50 ${ratio(impulse.p50Ms, other.p50Ms)}x, p99 ${ratio(impulse.p99Ms, other.p99Ms)}x`,
    );
}

/**
 * The last line of `npm run bench`, in a fixed shape for scripts:
 * `bench: workload=<w> impulse=<ops/s> etcd=<ops/s> ratio=<r> p99_impulse_ms=<x> p99_etcd_ms=<y>`,
 * with n/a for a target not run (or that could not run the workload).
 */
export function finalLine(workload: string, summaries: readonly TargetSummary[]): string {
  const find = (name: string): TargetSummary | undefined =>
    summaries.find((summary) => summary.target === name && summary.runs > 0);
  const impulse = find('impulse');
  const etcd = find('etcd');
  const throughput = (summary: TargetSummary | undefined): string =>
    summary === undefined ? 'n/a' : String(summary.operationsPerSecond);
  const p99 = (summary: TargetSummary | undefined): string =>
    summary === undefined ? 'n/a' : summary.p99Ms.toFixed(2);
  const throughputRatio =
    impulse === undefined || etcd === undefined
      ? 'n/a'
      : ratio(impulse.operationsPerSecond, etcd.operationsPerSecond);
  return (
    `bench: workload=${workload} impulse=${throughput(impulse)} etcd=${throughput(etcd)} ratio=${throughputRatio} ` +
    `p99_impulse_ms=${p99(impulse)} p99_etcd_ms=${p99(etcd)}`
  );
}
