/** A line chart, drawn the same way as inline SVG (the HTML report) and as pixels (the PNG). */
export interface ChartSeries {
  readonly name: string;
  /** CSS hex colour, #rrggbb. */
  readonly color: string;
  readonly points: ReadonlyArray<{ readonly x: number; readonly y: number }>;
  readonly dashed?: boolean;
}

export interface ChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly ChartSeries[];
}

/** Axis bounds and ticks at round numbers (1, 2 or 5 times a power of ten). */
export interface AxisScale {
  readonly max: number;
  readonly ticks: readonly number[];
}

export function niceScale(dataMax: number, ticksWanted = 5): AxisScale {
  const top = dataMax > 0 && Number.isFinite(dataMax) ? dataMax : 1;
  const rough = top / ticksWanted;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step =
    [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= rough) ?? 10 * power;
  const max = Math.ceil(top / step) * step;
  const ticks: number[] = [];
  for (let tick = 0; tick <= max + step / 2; tick += step) ticks.push(Math.round(tick * 1e6) / 1e6);
  return { max, ticks };
}

export function chartBounds(spec: ChartSpec): { xScale: AxisScale; yScale: AxisScale } {
  let xMax = 0;
  let yMax = 0;
  for (const series of spec.series) {
    for (const point of series.points) {
      if (Number.isFinite(point.x)) xMax = Math.max(xMax, point.x);
      if (Number.isFinite(point.y)) yMax = Math.max(yMax, point.y);
    }
  }
  return { xScale: niceScale(xMax), yScale: niceScale(yMax) };
}

export function formatTick(value: number): string {
  if (value >= 10_000) return `${Math.round(value / 1000)}k`;
  if (Number.isInteger(value)) return String(value);
  return value.toPrecision(2);
}

export const seriesColors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
