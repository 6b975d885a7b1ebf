import {
  bandLegend,
  bandOpacity,
  chartBounds,
  formatTick,
  legendLabels,
  seriesSegments,
  type ChartSpec,
} from './chart-spec.js';

const escapeXml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A line chart as a self-contained SVG element (no scripts, no external resources). */
export function renderSvgChart(spec: ChartSpec, widthPixels = 860, heightPixels = 320): string {
  // The legend column is as wide as its longest label at about 7 px a character of 12 px
  // sans-serif, plus the swatch and gap; at least 160 px.
  const legendCharacters = Math.max(0, ...legendLabels(spec).map((label) => label.length));
  const margin = { left: 70, right: Math.max(160, 12 + 28 + legendCharacters * 7 + 8), top: 36, bottom: 46 };
  const plotWidth = widthPixels - margin.left - margin.right;
  const plotHeight = heightPixels - margin.top - margin.bottom;
  const { xScale, yScale } = chartBounds(spec);
  const px = (x: number): number => margin.left + (x / xScale.max) * plotWidth;
  const py = (y: number): number => margin.top + plotHeight - (y / yScale.max) * plotHeight;
  // Spans are clamped to the plot so that a band starting before 0 cannot spill into the margin.
  const spanPixels = (startX: number, endX: number): { x: number; width: number } => {
    const from = px(Math.min(Math.max(startX, 0), xScale.max));
    const to = px(Math.min(Math.max(endX, 0), xScale.max));
    return { x: from, width: Math.max(to - from, 0) };
  };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${widthPixels}" height="${heightPixels}" viewBox="0 0 ${widthPixels} ${heightPixels}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${margin.left}" y="22" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`,
  ];
  for (const band of spec.bands ?? []) {
    const { x, width } = spanPixels(band.startX, band.endX);
    const title = band.label === undefined ? '' : `<title>${escapeXml(band.label)}</title>`;
    parts.push(
      `<rect x="${x.toFixed(1)}" y="${margin.top}" width="${width.toFixed(1)}" height="${plotHeight}" fill="${escapeXml(band.color)}" fill-opacity="${bandOpacity}">${title}</rect>`,
    );
  }
  const lanes = spec.lanes;
  if (lanes === undefined) {
    for (const tick of yScale.ticks) {
      const y = py(tick).toFixed(1);
      parts.push(
        `<line x1="${margin.left}" x2="${margin.left + plotWidth}" y1="${y}" y2="${y}" stroke="#e0e0e0"/>`,
        `<text x="${margin.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${formatTick(tick)}</text>`,
      );
    }
  } else {
    // A timeline: each lane gets an equal share of the plot height, its name in the legend column.
    const laneHeight = plotHeight / Math.max(lanes.length, 1);
    lanes.forEach((lane, index) => {
      const laneTop = margin.top + index * laneHeight;
      if (index > 0) {
        parts.push(
          `<line x1="${margin.left}" x2="${margin.left + plotWidth}" y1="${laneTop.toFixed(1)}" y2="${laneTop.toFixed(1)}" stroke="#e0e0e0"/>`,
        );
      }
      for (const bar of lane.bars) {
        const { x, width } = spanPixels(bar.startX, bar.endX);
        const title = bar.label === undefined ? '' : `<title>${escapeXml(bar.label)}</title>`;
        // The bar is at least two pixels wide so that an instantaneous event still shows.
        parts.push(
          `<rect x="${x.toFixed(1)}" y="${(laneTop + laneHeight * 0.2).toFixed(1)}" width="${Math.max(width, 2).toFixed(1)}" height="${(laneHeight * 0.6).toFixed(1)}" fill="${escapeXml(lane.color)}">${title}</rect>`,
        );
      }
      const legendX = margin.left + plotWidth + 12;
      const legendY = (laneTop + laneHeight / 2).toFixed(1);
      parts.push(
        `<rect x="${legendX}" y="${(laneTop + laneHeight / 2 - 5).toFixed(1)}" width="22" height="10" fill="${escapeXml(lane.color)}"/>`,
        `<text x="${legendX + 28}" y="${legendY}" dominant-baseline="middle">${escapeXml(lane.name)}</text>`,
      );
    });
  }
  for (const tick of xScale.ticks) {
    const x = px(tick).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${margin.top + plotHeight}" y2="${margin.top + plotHeight + 4}" stroke="#333"/>`,
      `<text x="${x}" y="${margin.top + plotHeight + 17}" text-anchor="middle">${formatTick(tick)}</text>`,
    );
  }
  parts.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`,
    `<text x="${margin.left + plotWidth / 2}" y="${heightPixels - 8}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`,
    `<text transform="translate(16 ${margin.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">${escapeXml(spec.yLabel)}</text>`,
  );
  spec.series.forEach((series, index) => {
    const dash = series.dashed === true ? ' stroke-dasharray="6 4"' : '';
    for (const segment of seriesSegments(series)) {
      if (series.breakAtGaps === true && segment.length === 1) {
        // A lone value between two gaps would be an invisible one-point line: draw a dot instead.
        const [point] = segment as [{ x: number; y: number }];
        parts.push(
          `<circle cx="${px(point.x).toFixed(1)}" cy="${py(point.y).toFixed(1)}" r="2" fill="${series.color}"><title>${escapeXml(series.name)}</title></circle>`,
        );
        continue;
      }
      const points = segment.map((point) => `${px(point.x).toFixed(1)},${py(point.y).toFixed(1)}`).join(' ');
      parts.push(
        `<polyline fill="none" stroke="${series.color}" stroke-width="2"${dash} points="${points}"><title>${escapeXml(series.name)}</title></polyline>`,
      );
    }
    const legendY = margin.top + 10 + index * 18;
    const legendX = margin.left + plotWidth + 12;
    parts.push(
      `<line x1="${legendX}" x2="${legendX + 22}" y1="${legendY}" y2="${legendY}" stroke="${series.color}" stroke-width="3"${dash}/>`,
      `<text x="${legendX + 28}" y="${legendY}" dominant-baseline="middle">${escapeXml(series.name)}</text>`,
    );
  });
  // Band kinds follow the series in the legend. The swatch is a little stronger than the band
  // itself, because a small patch at the band's opacity is too pale to tell the colours apart.
  bandLegend(spec.bands ?? []).forEach((entry, index) => {
    const legendY = margin.top + 10 + (spec.series.length + index) * 18;
    const legendX = margin.left + plotWidth + 12;
    parts.push(
      `<rect x="${legendX}" y="${legendY - 6}" width="22" height="12" fill="${escapeXml(entry.color)}" fill-opacity="${bandOpacity * 2}"/>`,
      `<text x="${legendX + 28}" y="${legendY}" dominant-baseline="middle">${escapeXml(entry.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}
