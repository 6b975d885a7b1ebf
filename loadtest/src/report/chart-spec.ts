/** A line chart, drawn the same way as inline SVG (the HTML report) and as pixels (the PNG). */
export interface ChartSeries {
  readonly name: string;
  /** CSS hex colour, #rrggbb. */
  readonly color: string;
  readonly points: ReadonlyArray<{ readonly x: number; readonly y: number }>;
  readonly dashed?: boolean;
  /**
   * When true, a point whose y is not finite (NaN: no value for that x) ends the line and the next
   * finite point starts a new one. A missing value then shows as a gap instead of a straight line
   * drawn across it, which would hide a stall. Without it, such points are skipped as before.
   */
  readonly breakAtGaps?: boolean;
}

/**
 * A shaded band across the whole height of the plot from `startX` to `endX`, drawn translucent
 * behind the grid and the lines, so that events (faults, phases) line up with the data.
 */
export interface ChartBand {
  readonly startX: number;
  readonly endX: number;
  /** CSS hex colour, #rrggbb; the renderers draw it translucent. */
  readonly color: string;
  /** Bands with the same label share one legend entry; a band without a label has none. */
  readonly label?: string;
}

/** One horizontal lane of a timeline chart, with a solid bar for each interval. */
export interface ChartLane {
  readonly name: string;
  /** CSS hex colour, #rrggbb. */
  readonly color: string;
  readonly bars: ReadonlyArray<{ readonly startX: number; readonly endX: number; readonly label?: string }>;
}

export interface ChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly ChartSeries[];
  /** Translucent bands drawn behind the data. */
  readonly bands?: readonly ChartBand[];
  /**
   * When present, the chart is a timeline: one lane per entry instead of a numeric y axis (the
   * series are still drawn, against the y scale, but a timeline normally has none).
   */
  readonly lanes?: readonly ChartLane[];
  /**
   * The x axis reaches at least this far. Charts stacked on one page set the same value so that
   * their x axes line up even when one of them has no data near the end.
   */
  readonly xMinimumMax?: number;
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
  // Bands, lane bars and the requested minimum widen the x axis only: they carry no y value.
  const spans = [...(spec.bands ?? []), ...(spec.lanes ?? []).flatMap((lane) => lane.bars)];
  for (const span of spans) {
    if (Number.isFinite(span.startX)) xMax = Math.max(xMax, span.startX);
    if (Number.isFinite(span.endX)) xMax = Math.max(xMax, span.endX);
  }
  if (spec.xMinimumMax !== undefined && Number.isFinite(spec.xMinimumMax)) {
    xMax = Math.max(xMax, spec.xMinimumMax);
  }
  return { xScale: niceScale(xMax), yScale: niceScale(yMax) };
}

export function formatTick(value: number): string {
  if (value >= 10_000) return `${Math.round(value / 1000)}k`;
  if (Number.isInteger(value)) return String(value);
  return value.toPrecision(2);
}

/**
 * The runs of finite points of a series, in order. A series that does not break at gaps is one
 * run of all its finite points, as the renderers always drew it.
 */
export function seriesSegments(series: ChartSeries): Array<Array<{ x: number; y: number }>> {
  const segments: Array<Array<{ x: number; y: number }>> = [];
  let current: Array<{ x: number; y: number }> = [];
  for (const point of series.points) {
    if (Number.isFinite(point.x) && Number.isFinite(point.y)) {
      current.push({ x: point.x, y: point.y });
    } else if (series.breakAtGaps === true && current.length > 0) {
      segments.push(current);
      current = [];
    }
  }
  if (current.length > 0 || segments.length === 0) segments.push(current);
  return segments;
}

/** The distinct band labels with the colour of the first band carrying each, for a legend. */
export function bandLegend(bands: readonly ChartBand[]): Array<{ label: string; color: string }> {
  const entries = new Map<string, string>();
  for (const band of bands) {
    if (band.label !== undefined && !entries.has(band.label)) entries.set(band.label, band.color);
  }
  return [...entries].map(([label, color]) => ({ label, color }));
}

/** Opacity of a band's colour over the white plot: light enough that lines stay readable. */
export const bandOpacity = 0.18;

export const seriesColors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

/** The labels of a chart's legend column: its series, lanes and band kinds. */
export function legendLabels(spec: ChartSpec): string[] {
  return [
    ...spec.series.map((series) => series.name),
    ...(spec.lanes ?? []).map((lane) => lane.name),
    ...bandLegend(spec.bands ?? []).map((entry) => entry.label),
  ];
}
