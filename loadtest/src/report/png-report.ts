import type { TargetResult } from '../benchmark.js';
import { encodePng } from './png-encoder.js';
import { Raster } from './raster.js';
import { drawRasterChart } from './raster-chart.js';
import { resultCharts } from './result-charts.js';

const widthPixels = 900;
const chartHeightPixels = 340;

/** The report's charts, stacked, as a PNG. */
export function renderPngReport(title: string, results: readonly TargetResult[]): Buffer {
  const charts = resultCharts(results);
  const headerPixels = 30;
  const raster = new Raster(widthPixels, headerPixels + charts.length * chartHeightPixels);
  raster.drawText(12, 10, title, '#000000', 2);
  charts.forEach((chart, index) => {
    drawRasterChart(
      raster,
      chart,
      0,
      headerPixels + index * chartHeightPixels,
      widthPixels,
      chartHeightPixels,
    );
  });
  return encodePng(raster.widthPixels, raster.heightPixels, raster.pixels);
}
