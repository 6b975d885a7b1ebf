import type { ChartBand, ChartLane, ChartSeries, ChartSpec } from '../report/chart-spec.js';
import { escapeHtml } from '../report/html-report.js';
import { encodePng } from '../report/png-encoder.js';
import { Raster } from '../report/raster.js';
import { drawRasterChart } from '../report/raster-chart.js';
import { renderSvgChart } from '../report/svg-chart.js';

/** A fault injected during a chaos run, as an interval of time. */
export interface ChaosFaultInterval {
  /** Seconds since the run started. */
  readonly startSeconds: number;
  /** Seconds since the run started; undefined when the fault was still active at the end of the run. */
  readonly endSeconds: number | undefined;
  /** The kind of fault: 'kill', 'pause', 'partition', 'power', 'member', ... */
  readonly nemesis: string;
  /** What exactly was done, e.g. 'kill -9 g1-r2 (leader)'. */
  readonly description: string;
}

/** What happened in one second of the run; `ChaosReportInput.seconds[i]` is second i. */
export interface ChaosSecond {
  /** Operations acknowledged in that second. */
  readonly ok: number;
  /** Operations that definitely failed. */
  readonly fail: number;
  /** Operations with an indeterminate outcome (timeouts, ambiguous errors). */
  readonly info: number;
  /** Latency percentiles of the operations acknowledged in that second; undefined when there were none. */
  readonly latencyP50Ms: number | undefined;
  readonly latencyP99Ms: number | undefined;
  readonly latencyMaxMs: number | undefined;
}

export interface ChaosReportInput {
  /** E.g. 'chaos seed=42 nemesis=kill,pause,partition,member'. */
  readonly title: string;
  /** Key facts printed at the top: operations, faults, linearizable, lost writes, seed, command line. */
  readonly summaryLines: readonly string[];
  readonly seconds: readonly ChaosSecond[];
  readonly faults: readonly ChaosFaultInterval[];
  /** Checker output for the keys that are not linearizable, shown verbatim. */
  readonly anomalies?: readonly string[];
}

/**
 * The well-known nemesis kinds keep the same colour from one report to the next, so that a reader
 * learns them; other kinds take the spare colours in the order they first appear.
 */
const nemesisColors: Readonly<Record<string, string>> = {
  kill: '#d62728',
  pause: '#bcbd22',
  partition: '#17becf',
  power: '#ff7f0e',
  member: '#9467bd',
};
const spareNemesisColors = ['#e377c2', '#8c564b', '#7f7f7f', '#1f77b4', '#aec7e8'];

const svgWidthPixels = 860;
const svgChartHeightPixels = 320;
const svgLaneHeightPixels = 30;
/** The SVG timeline's height besides its lanes: title, x axis ticks and label (see svg-chart.ts). */
const svgTimelineFramePixels = 82;

const pngWidthPixels = 900;
const pngHeaderPixels = 30;
const pngChartHeightPixels = 300;
const pngLaneHeightPixels = 26;
/** The PNG timeline's height besides its lanes: title, x axis ticks and label (see raster-chart.ts). */
const pngTimelineFramePixels = 86;

const xLabel = 'seconds since the start of the run';

/** Seconds with one decimal: faults are scheduled at sub-second times, and more digits are noise. */
const formatSeconds = (seconds: number): string => seconds.toFixed(1);

/**
 * How long the run lasted for the charts: the buckets, or longer when a fault is recorded past the
 * last bucket (the workload may stop a little before the nemesis does).
 */
function runLengthSeconds(input: ChaosReportInput): number {
  let lengthSeconds = input.seconds.length;
  for (const fault of input.faults) {
    for (const seconds of [fault.startSeconds, fault.endSeconds]) {
      if (seconds !== undefined && Number.isFinite(seconds)) lengthSeconds = Math.max(lengthSeconds, seconds);
    }
  }
  return lengthSeconds;
}

/** The nemesis kinds in the order they first appear, each with its colour. */
function nemesisKinds(faults: readonly ChaosFaultInterval[]): Map<string, string> {
  const kinds = new Map<string, string>();
  let spareIndex = 0;
  for (const fault of faults) {
    if (kinds.has(fault.nemesis)) continue;
    const known = Object.hasOwn(nemesisColors, fault.nemesis) ? nemesisColors[fault.nemesis] : undefined;
    const color = known ?? (spareNemesisColors[spareIndex++ % spareNemesisColors.length] as string);
    kinds.set(fault.nemesis, color);
  }
  return kinds;
}

/** The three charts of the report, on one x axis: throughput, latency and the fault timeline. */
function chaosCharts(input: ChaosReportInput): {
  throughput: ChartSpec;
  latency: ChartSpec;
  timeline: ChartSpec;
} {
  const lengthSeconds = runLengthSeconds(input);
  const kinds = nemesisKinds(input.faults);
  // A fault still active at the end of the run is drawn up to the end of the run.
  const endOf = (fault: ChaosFaultInterval): number => fault.endSeconds ?? lengthSeconds;
  const bands: ChartBand[] = input.faults.map((fault) => ({
    startX: fault.startSeconds,
    endX: endOf(fault),
    color: kinds.get(fault.nemesis) as string,
    label: fault.nemesis,
  }));
  // A bucket's value is plotted at the middle of its second, where it belongs in time.
  const perSecond = (
    name: string,
    color: string,
    value: (second: ChaosSecond) => number | undefined,
    dashed = false,
  ): ChartSeries => ({
    name,
    color,
    dashed,
    // A second without a value (no acknowledged operation to measure) is a gap in the line, so
    // that a stall shows as missing latency rather than a line drawn straight across it.
    breakAtGaps: true,
    points: input.seconds.map((second, index) => ({ x: index + 0.5, y: value(second) ?? Number.NaN })),
  });
  const throughput: ChartSpec = {
    title: 'Throughput',
    xLabel,
    yLabel: 'operations per second',
    series: [
      perSecond('ok/s', '#2ca02c', (second) => second.ok),
      perSecond('info/s', '#ff7f0e', (second) => second.info),
      perSecond('fail/s', '#d62728', (second) => second.fail),
    ],
    bands,
    xMinimumMax: lengthSeconds,
  };
  const latency: ChartSpec = {
    title: 'Latency of acknowledged operations',
    xLabel,
    yLabel: 'milliseconds',
    series: [
      perSecond('p50', '#1f77b4', (second) => second.latencyP50Ms),
      perSecond('p99', '#9467bd', (second) => second.latencyP99Ms),
      perSecond('max', '#8c564b', (second) => second.latencyMaxMs, true),
    ],
    bands,
    xMinimumMax: lengthSeconds,
  };
  const lanes: ChartLane[] = [...kinds].map(([nemesis, color]) => ({
    name: nemesis,
    color,
    bars: input.faults
      .filter((fault) => fault.nemesis === nemesis)
      .map((fault) => ({
        startX: fault.startSeconds,
        endX: endOf(fault),
        label: `${fault.description} (${formatSeconds(fault.startSeconds)} s to ${
          fault.endSeconds === undefined ? 'the end' : `${formatSeconds(fault.endSeconds)} s`
        })`,
      })),
  }));
  const timeline: ChartSpec = {
    title: lanes.length === 0 ? 'Faults (none injected)' : 'Faults',
    xLabel,
    yLabel: 'nemesis',
    series: [],
    lanes,
    xMinimumMax: lengthSeconds,
  };
  return { throughput, latency, timeline };
}

/** The timeline keeps room for one lane when there are none, so that it still reads as a chart. */
const laneCount = (timeline: ChartSpec): number => Math.max(timeline.lanes?.length ?? 0, 1);

/**
 * A self-contained HTML page (nothing fetched from anywhere): the summary, the three charts as
 * inline SVG, a table of the faults and the checker's anomalies.
 */
export function renderChaosHtml(input: ChaosReportInput): string {
  const { throughput, latency, timeline } = chaosCharts(input);
  const timelineHeightPixels = svgTimelineFramePixels + laneCount(timeline) * svgLaneHeightPixels;
  const charts = [
    renderSvgChart(throughput, svgWidthPixels, svgChartHeightPixels),
    renderSvgChart(latency, svgWidthPixels, svgChartHeightPixels),
    renderSvgChart(timeline, svgWidthPixels, timelineHeightPixels),
  ].map((svg) => `<figure>${svg}</figure>`);
  const faultRows = input.faults.map((fault) => {
    const cells = [
      formatSeconds(fault.startSeconds),
      fault.endSeconds === undefined ? 'active at the end' : formatSeconds(fault.endSeconds),
      fault.endSeconds === undefined ? '' : formatSeconds(fault.endSeconds - fault.startSeconds),
      fault.nemesis,
      fault.description,
    ];
    return `<tr>${cells.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`;
  });
  const faultTable =
    input.faults.length === 0
      ? '<p>No faults were injected.</p>'
      : `<table class="faults">
<tr><th>start s</th><th>end s</th><th>duration s</th><th>nemesis</th><th>description</th></tr>
${faultRows.join('\n')}
</table>`;
  const anomalies = input.anomalies ?? [];
  const anomalySection =
    anomalies.length === 0
      ? '<p>No anomalies reported.</p>'
      : `<pre class="anomalies">${escapeHtml(anomalies.join('\n'))}</pre>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(input.title)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; }
ul.summary { font-family: monospace; }
table { border-collapse: collapse; margin: 12px 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:nth-child(n+4), th:nth-child(n+4) { text-align: left; }
figure { margin: 16px 0; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
</style>
</head>
<body>
<h1>${escapeHtml(input.title)}</h1>
<ul class="summary">
${input.summaryLines.map((line) => `<li>${escapeHtml(line)}</li>`).join('\n')}
</ul>
<h2>Charts</h2>
${charts.join('\n')}
<h2>Faults</h2>
${faultTable}
<h2>Anomalies</h2>
${anomalySection}
</body>
</html>
`;
}

/** The three charts stacked in one PNG under the title, on one x axis. */
export function renderChaosPng(input: ChaosReportInput): Buffer {
  const { throughput, latency, timeline } = chaosCharts(input);
  const timelineHeightPixels = pngTimelineFramePixels + laneCount(timeline) * pngLaneHeightPixels;
  const raster = new Raster(
    pngWidthPixels,
    pngHeaderPixels + 2 * pngChartHeightPixels + timelineHeightPixels,
  );
  raster.drawText(12, 10, input.title, '#000000', 2);
  drawRasterChart(raster, throughput, 0, pngHeaderPixels, pngWidthPixels, pngChartHeightPixels);
  drawRasterChart(
    raster,
    latency,
    0,
    pngHeaderPixels + pngChartHeightPixels,
    pngWidthPixels,
    pngChartHeightPixels,
  );
  drawRasterChart(
    raster,
    timeline,
    0,
    pngHeaderPixels + 2 * pngChartHeightPixels,
    pngWidthPixels,
    timelineHeightPixels,
  );
  return encodePng(raster.widthPixels, raster.heightPixels, raster.pixels);
}
