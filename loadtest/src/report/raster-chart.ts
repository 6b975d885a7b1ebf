import {
  bandLegend,
  bandOpacity,
  chartBounds,
  formatTick,
  legendLabels,
  seriesSegments,
  type ChartSpec,
} from './chart-spec.js';
import { Raster } from './raster.js';

/** Draws a line chart into a region of a raster, laid out like the SVG version. */
export function drawRasterChart(
  raster: Raster,
  spec: ChartSpec,
  originX: number,
  originY: number,
  widthPixels: number,
  heightPixels: number,
): void {
  // The legend column is as wide as its longest label (swatch, gap and label), at least 170 px.
  const legendWidth = Math.max(0, ...legendLabels(spec).map((label) => Raster.textWidth(label)));
  const margin = { left: 64, right: Math.max(170, 12 + 28 + legendWidth + 8), top: 46, bottom: 40 };
  const left = originX + margin.left;
  const top = originY + margin.top;
  const plotWidth = widthPixels - margin.left - margin.right;
  const plotHeight = heightPixels - margin.top - margin.bottom;
  const { xScale, yScale } = chartBounds(spec);
  const px = (x: number): number => left + (x / xScale.max) * plotWidth;
  const py = (y: number): number => top + plotHeight - (y / yScale.max) * plotHeight;
  // Spans are clamped to the plot so that a band starting before 0 cannot spill into the margin.
  const spanPixels = (startX: number, endX: number): { x: number; width: number } => {
    const from = px(Math.min(Math.max(startX, 0), xScale.max));
    const to = px(Math.min(Math.max(endX, 0), xScale.max));
    return { x: from, width: Math.max(to - from, 0) };
  };
  const legendX = left + plotWidth + 12;

  raster.drawText(left, originY + 8, spec.title, '#000000', 2);
  // Bands go first so that the grid, the frame and the lines are drawn over them.
  for (const band of spec.bands ?? []) {
    const { x, width } = spanPixels(band.startX, band.endX);
    raster.blendRect(x, top, width, plotHeight, band.color, bandOpacity);
  }
  const lanes = spec.lanes;
  if (lanes === undefined) {
    for (const tick of yScale.ticks) {
      const y = py(tick);
      raster.drawLine(left, y, left + plotWidth, y, '#e0e0e0');
      const label = formatTick(tick);
      raster.drawText(left - 8 - Raster.textWidth(label), y - Raster.textHeight() / 2, label, '#333333');
    }
  } else {
    // A timeline: each lane gets an equal share of the plot height, its name in the legend column.
    const laneHeight = plotHeight / Math.max(lanes.length, 1);
    lanes.forEach((lane, index) => {
      const laneTop = top + index * laneHeight;
      if (index > 0) raster.drawLine(left, laneTop, left + plotWidth, laneTop, '#e0e0e0');
      for (const bar of lane.bars) {
        const { x, width } = spanPixels(bar.startX, bar.endX);
        // The bar is at least two pixels wide so that an instantaneous event still shows.
        raster.fillRect(x, laneTop + laneHeight * 0.2, Math.max(width, 2), laneHeight * 0.6, lane.color);
      }
      const laneMiddle = laneTop + laneHeight / 2;
      raster.fillRect(legendX, laneMiddle - 5, 22, 10, lane.color);
      raster.drawText(legendX + 28, laneMiddle - Raster.textHeight() / 2, lane.name, '#000000');
    });
  }
  for (const tick of xScale.ticks) {
    const x = px(tick);
    raster.drawLine(x, top + plotHeight, x, top + plotHeight + 4, '#333333');
    const label = formatTick(tick);
    raster.drawText(x - Raster.textWidth(label) / 2, top + plotHeight + 8, label, '#333333');
  }
  raster.drawLine(left, top, left + plotWidth, top, '#333333');
  raster.drawLine(left, top + plotHeight, left + plotWidth, top + plotHeight, '#333333');
  raster.drawLine(left, top, left, top + plotHeight, '#333333');
  raster.drawLine(left + plotWidth, top, left + plotWidth, top + plotHeight, '#333333');
  raster.drawText(
    left + plotWidth / 2 - Raster.textWidth(spec.xLabel) / 2,
    top + plotHeight + 24,
    spec.xLabel,
    '#333333',
  );
  // High enough above the plot that it clears the label of the top y tick.
  raster.drawText(originX + 4, top - 20, spec.yLabel, '#333333');

  spec.series.forEach((series, index) => {
    const dash = series.dashed === true ? 6 : 0;
    for (const points of seriesSegments(series)) {
      if (series.breakAtGaps === true && points.length === 1) {
        // A lone value between two gaps would be an invisible one-point line: draw a dot instead.
        const [point] = points as [{ x: number; y: number }];
        raster.fillRect(px(point.x) - 1, py(point.y) - 1, 3, 3, series.color);
        continue;
      }
      for (let at = 1; at < points.length; at++) {
        const from = points[at - 1] as { x: number; y: number };
        const to = points[at] as { x: number; y: number };
        raster.drawLine(px(from.x), py(from.y), px(to.x), py(to.y), series.color, 2, dash);
      }
    }
    const legendY = top + 6 + index * 18;
    raster.drawLine(legendX, legendY + 5, legendX + 22, legendY + 5, series.color, 3, dash > 0 ? 4 : 0);
    raster.drawText(legendX + 28, legendY, series.name, '#000000');
  });
  // Band kinds follow the series in the legend. The swatch is a little stronger than the band
  // itself, because a small patch at the band's opacity is too pale to tell the colours apart.
  bandLegend(spec.bands ?? []).forEach((entry, index) => {
    const legendY = top + 6 + (spec.series.length + index) * 18;
    raster.blendRect(legendX, legendY, 22, 10, entry.color, bandOpacity * 2);
    raster.drawText(legendX + 28, legendY, entry.label, '#000000');
  });
}
