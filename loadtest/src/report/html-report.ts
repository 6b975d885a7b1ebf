import type { TargetResult } from '../benchmark.js';
import { resultCharts } from './result-charts.js';
import { renderSvgChart } from './svg-chart.js';

/** Text made safe for HTML content and attribute values. */
export const escapeHtml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export interface ReportContext {
  readonly title: string;
  /** Name and value pairs describing the run (workload, duration, machine...). */
  readonly settings: ReadonlyArray<readonly [string, string]>;
  readonly results: readonly TargetResult[];
  /** Lines of comparison (ratios) printed under the table. */
  readonly comparisons: readonly string[];
}

/** A self-contained HTML page: a summary table and inline SVG charts, nothing fetched from anywhere. */
export function renderHtmlReport(context: ReportContext): string {
  const rows = context.results.map((result) => {
    const run = result.run;
    if (run === undefined) {
      return `<tr><td>${escapeHtml(result.target)}</td><td colspan="8">${escapeHtml(result.failure ?? 'not run')}</td></tr>`;
    }
    const cells = [
      result.target,
      String(run.operationsPerSecond),
      run.latency.p50Ms.toFixed(2),
      run.latency.p99Ms.toFixed(2),
      run.latency.p999Ms.toFixed(2),
      run.latency.maxMs.toFixed(2),
      String(run.errors),
      result.load === undefined ? 'skipped' : String(result.load.operationsPerSecond),
      Object.entries(result.cpuSeconds ?? {})
        .map(([name, seconds]) => `${name} ${seconds}s`)
        .join(', '),
    ];
    return `<tr>${cells.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`;
  });
  const charts = resultCharts(context.results).map((chart) => `<figure>${renderSvgChart(chart)}</figure>`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(context.title)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 12px 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 16px 0; }
</style>
</head>
<body>
<h1>${escapeHtml(context.title)}</h1>
<table>
${context.settings.map(([name, value]) => `<tr><th>${escapeHtml(name)}</th><td>${escapeHtml(value)}</td></tr>`).join('\n')}
</table>
<h2>Results (run phase)</h2>
<table>
<tr><th>target</th><th>ops/s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>errors</th><th>load ops/s</th><th>CPU seconds during the run</th></tr>
${rows.join('\n')}
</table>
${context.comparisons.map((line) => `<p>${escapeHtml(line)}</p>`).join('\n')}
<h2>Charts</h2>
${charts.join('\n')}
</body>
</html>
`;
}
