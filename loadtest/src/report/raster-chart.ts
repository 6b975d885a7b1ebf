import { chartBounds, formatTick, type ChartSpec } from './chart-spec.js';
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
  const margin = { left: 64, right: 170, top: 46, bottom: 40 };
  const left = originX + margin.left;
  const top = originY + margin.top;
  const plotWidth = widthPixels - margin.left - margin.right;
  const plotHeight = heightPixels - margin.top - margin.bottom;
  const { xScale, yScale } = chartBounds(spec);
  const px = (x: number): number => left + (x / xScale.max) * plotWidth;
  const py = (y: number): number => top + plotHeight - (y / yScale.max) * plotHeight;

  raster.drawText(left, originY + 8, spec.title, '#000000', 2);
  for (const tick of yScale.ticks) {
    const y = py(tick);
    raster.drawLine(left, y, left + plotWidth, y, '#e0e0e0');
    const label = formatTick(tick);
    raster.drawText(left - 8 - Raster.textWidth(label), y - Raster.textHeight() / 2, label, '#333333');
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
  raster.drawText(originX + 4, top - 14, spec.yLabel, '#333333');

  spec.series.forEach((series, index) => {
    const points = series.points.filter((point) => Number.isFinite(point.x) && Number.isFinite(point.y));
    const dash = series.dashed === true ? 6 : 0;
    for (let at = 1; at < points.length; at++) {
      const from = points[at - 1] as { x: number; y: number };
      const to = points[at] as { x: number; y: number };
      raster.drawLine(px(from.x), py(from.y), px(to.x), py(to.y), series.color, 2, dash);
    }
    const legendX = left + plotWidth + 12;
    const legendY = top + 6 + index * 18;
    raster.drawLine(legendX, legendY + 5, legendX + 22, legendY + 5, series.color, 3, dash > 0 ? 4 : 0);
    raster.drawText(legendX + 28, legendY, series.name, '#000000');
  });
}
