import type { TargetResult } from '../benchmark.js';
import type { IntervalSample } from '../recorder.js';
import { seriesColors, type ChartSpec } from './chart-spec.js';

/**
 * The intervals worth a point: the last one of a run is cut short by the end of the run, and a
 * rate over a few milliseconds is noise that would draw a spike.
 */
function chartedIntervals(intervals: readonly IntervalSample[]): IntervalSample[] {
  return intervals.filter((sample, index) => {
    const lengthSeconds = sample.elapsedSeconds - (intervals[index - 1]?.elapsedSeconds ?? 0);
    return lengthSeconds >= 0.5;
  });
}

/** The two charts of a report: throughput over time, and latency percentiles over time. */
export function resultCharts(results: readonly TargetResult[]): ChartSpec[] {
  const ran = results.filter((result) => result.run !== undefined);
  const throughput: ChartSpec = {
    title: 'Throughput over time',
    xLabel: 'seconds into the run phase',
    yLabel: 'operations per second',
    series: ran.map((result, index) => ({
      name: result.target,
      color: seriesColors[index % seriesColors.length] as string,
      points: chartedIntervals(result.run?.intervals ?? []).map((sample) => ({
        x: sample.elapsedSeconds,
        y: sample.operationsPerSecond,
      })),
    })),
  };
  const latency: ChartSpec = {
    title: 'Latency percentiles over time (per interval)',
    xLabel: 'seconds into the run phase',
    yLabel: 'milliseconds',
    series: ran.flatMap((result, index) => {
      const color = seriesColors[index % seriesColors.length] as string;
      const intervals = chartedIntervals(result.run?.intervals ?? []);
      return [
        {
          name: `${result.target} p50`,
          color,
          points: intervals.map((sample) => ({ x: sample.elapsedSeconds, y: sample.p50Ms })),
        },
        {
          name: `${result.target} p99`,
          color,
          dashed: true,
          points: intervals.map((sample) => ({ x: sample.elapsedSeconds, y: sample.p99Ms })),
        },
      ];
    }),
  };
  return [throughput, latency];
}
