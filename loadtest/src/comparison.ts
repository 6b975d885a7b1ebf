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

/** The Impulse targets: both shapes of the cluster. Every other target is compared with each. */
const impulseTargets: readonly string[] = ['impulse', 'impulse-replicas'];

/**
 * "impulse / etcd: throughput 0.52x, p50 1.90x, p99 2.10x" for each Impulse target (both shapes)
 * against every other target, then the node shape against the shape with a process per replica.
 */
export function comparisonLines(summaries: readonly TargetSummary[]): string[] {
  const ran = summaries.filter((summary) => summary.runs > 0);
  const line = (left: TargetSummary, right: TargetSummary): string =>
    `${left.target} / ${right.target}: throughput ${ratio(left.operationsPerSecond, right.operationsPerSecond)}x, ` +
    `p50 ${ratio(left.p50Ms, right.p50Ms)}x, p99 ${ratio(left.p99Ms, right.p99Ms)}x`;
  const lines: string[] = [];
  for (const name of impulseTargets) {
    const impulse = ran.find((summary) => summary.target === name);
    if (impulse === undefined) continue;
    for (const other of ran) if (!impulseTargets.includes(other.target)) lines.push(line(impulse, other));
  }
  const nodes = ran.find((summary) => summary.target === 'impulse');
  const replicas = ran.find((summary) => summary.target === 'impulse-replicas');
  if (nodes !== undefined && replicas !== undefined) lines.push(line(nodes, replicas));
  return lines;
}

/**
 * The last line of `npm run bench`, in a fixed shape for scripts:
 * `bench: workload=<w> impulse=<ops/s> etcd=<ops/s> ratio=<r> p99_impulse_ms=<x> p99_etcd_ms=<y>
 * impulse_replicas=<ops/s> ratio_replicas=<r>` (`impulse` is the node shape, `impulse_replicas` the
 * shape with a process per replica, each ratio to etcd), with n/a for a target not run (or that
 * could not run the workload).
 */
export function finalLine(workload: string, summaries: readonly TargetSummary[]): string {
  const find = (name: string): TargetSummary | undefined =>
    summaries.find((summary) => summary.target === name && summary.runs > 0);
  const impulse = find('impulse');
  const replicas = find('impulse-replicas');
  const etcd = find('etcd');
  const throughput = (summary: TargetSummary | undefined): string =>
    summary === undefined ? 'n/a' : String(summary.operationsPerSecond);
  const p99 = (summary: TargetSummary | undefined): string =>
    summary === undefined ? 'n/a' : summary.p99Ms.toFixed(2);
  const toEtcd = (summary: TargetSummary | undefined): string =>
    summary === undefined || etcd === undefined
      ? 'n/a'
      : ratio(summary.operationsPerSecond, etcd.operationsPerSecond);
  return (
    `bench: workload=${workload} impulse=${throughput(impulse)} etcd=${throughput(etcd)} ratio=${toEtcd(impulse)} ` +
    `p99_impulse_ms=${p99(impulse)} p99_etcd_ms=${p99(etcd)} ` +
    `impulse_replicas=${throughput(replicas)} ratio_replicas=${toEtcd(replicas)}`
  );
}
