import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  renderChaosHtml,
  renderChaosPng,
  type ChaosFaultInterval,
  type ChaosReportInput,
  type ChaosSecond,
} from '../src/chaos/chaos-report.js';
import { pngSignature } from '../src/report/png-encoder.js';

/** A PNG decoded back to RGB pixels; the encoder writes filter type 0 on every row, checked here. */
interface DecodedPng {
  readonly widthPixels: number;
  readonly heightPixels: number;
  readonly pixel: (x: number, y: number) => [number, number, number];
}

function decodePng(png: Buffer): DecodedPng {
  expect(png.subarray(0, 8).equals(pngSignature)).toBe(true);
  expect(png.toString('ascii', 12, 16)).toBe('IHDR');
  const widthPixels = png.readUInt32BE(16);
  const heightPixels = png.readUInt32BE(20);
  expect(png[24]).toBe(8); // bit depth
  expect(png[25]).toBe(2); // truecolour
  const data: Buffer[] = [];
  for (let offset = 8; offset < png.length;) {
    const length = png.readUInt32BE(offset);
    if (png.toString('ascii', offset + 4, offset + 8) === 'IDAT') {
      data.push(png.subarray(offset + 8, offset + 8 + length));
    }
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(data));
  const rowBytes = widthPixels * 3 + 1;
  expect(raw.length).toBe(rowBytes * heightPixels);
  for (let row = 0; row < heightPixels; row++) expect(raw[row * rowBytes]).toBe(0);
  const pixel = (x: number, y: number): [number, number, number] => {
    const offset = y * rowBytes + 1 + x * 3;
    return [raw[offset] as number, raw[offset + 1] as number, raw[offset + 2] as number];
  };
  return { widthPixels, heightPixels, pixel };
}

const steadySecond: ChaosSecond = {
  ok: 100,
  fail: 0,
  info: 0,
  latencyP50Ms: 2,
  latencyP99Ms: 9,
  latencyMaxMs: 20,
};
const stalledSecond: ChaosSecond = {
  ok: 0,
  fail: 3,
  info: 7,
  latencyP50Ms: undefined,
  latencyP99Ms: undefined,
  latencyMaxMs: undefined,
};

function input(seconds: readonly ChaosSecond[], faults: readonly ChaosFaultInterval[]): ChaosReportInput {
  return { title: 'chaos seed=42 nemesis=kill,pause', summaryLines: [], seconds, faults };
}

const steadyMinute = Array.from({ length: 60 }, () => steadySecond);

describe('chaos report', () => {
  const faults: ChaosFaultInterval[] = [
    { startSeconds: 10, endSeconds: 15, nemesis: 'kill', description: 'kill -9 g1-r2 (leader)' },
    { startSeconds: 30, endSeconds: 34.5, nemesis: 'pause', description: 'SIGSTOP g2-r1' },
    { startSeconds: 50, endSeconds: undefined, nemesis: 'kill', description: 'kill -9 g2-r3' },
  ];
  const seconds = steadyMinute.map((second, index) => (index >= 10 && index < 13 ? stalledSecond : second));
  const full: ChaosReportInput = {
    title: 'chaos seed=42 <kill>',
    summaryLines: ['operations: 5700 ok, 9 fail, 21 info', 'linearizable: no & "lost writes" <2>'],
    seconds,
    faults,
    anomalies: ['key k17: read 3 after write 4 was acknowledged <lost>'],
  };

  it('renders the summary escaped, a chart per SVG, a table row per fault and the anomalies', () => {
    const html = renderChaosHtml(full);
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<title>chaos seed=42 &lt;kill&gt;</title>');
    expect(html).toContain('<li>operations: 5700 ok, 9 fail, 21 info</li>');
    expect(html).toContain('<li>linearizable: no &amp; &quot;lost writes&quot; &lt;2&gt;</li>');
    expect(html).not.toContain('<2>');
    expect((html.match(/<svg /g) ?? []).length).toBe(3);
    const table = /<table class="faults">([\s\S]*?)<\/table>/.exec(html)?.[1] ?? '';
    expect((table.match(/<tr>/g) ?? []).length).toBe(1 + faults.length);
    expect(table).toContain(
      '<tr><td>10.0</td><td>15.0</td><td>5.0</td><td>kill</td><td>kill -9 g1-r2 (leader)</td></tr>',
    );
    expect(table).toContain('<td>active at the end</td>');
    expect(html).toContain(
      '<pre class="anomalies">key k17: read 3 after write 4 was acknowledged &lt;lost&gt;</pre>',
    );
    expect(html).not.toMatch(/src="http|href="http|<script/);
  });

  it('shades the faults behind both data charts and draws one timeline lane per nemesis kind', () => {
    const [throughput, latency, timeline] = renderChaosHtml(full).split('<svg ').slice(1) as [
      string,
      string,
      string,
    ];
    for (const chart of [throughput, latency]) {
      expect((chart.match(/fill-opacity="0.18"><title>/g) ?? []).length).toBe(faults.length);
    }
    // The lane names sit in the legend column, once per kind.
    expect((timeline.match(/>kill<\/text>/g) ?? []).length).toBe(1);
    expect((timeline.match(/>pause<\/text>/g) ?? []).length).toBe(1);
    for (const fault of faults) expect(timeline).toContain(`<title>${fault.description} (`);
    expect(timeline).toContain('(50.0 s to the end)');
  });

  it('breaks the latency lines where no operation was acknowledged instead of bridging the stall', () => {
    const latency = renderChaosHtml(full).split('<svg ')[2] ?? '';
    expect((latency.match(/<title>p50<\/title><\/polyline>/g) ?? []).length).toBe(2);
    const steady = renderChaosHtml(input(steadyMinute, [])).split('<svg ')[2] ?? '';
    expect((steady.match(/<title>p50<\/title><\/polyline>/g) ?? []).length).toBe(1);
  });

  it('renders a PNG of the expected size: a header, two charts and a lane per nemesis kind', () => {
    const twoKinds = decodePng(renderChaosPng(full));
    expect(twoKinds.widthPixels).toBe(900);
    // 30 for the title, 300 for each data chart, 86 for the timeline's frame and 26 for each lane.
    expect(twoKinds.heightPixels).toBe(30 + 2 * 300 + 86 + 2 * 26);
    const threeKinds = decodePng(
      renderChaosPng({
        ...full,
        faults: [...faults, { startSeconds: 40, endSeconds: 45, nemesis: 'partition', description: 'p' }],
      }),
    );
    expect(threeKinds.heightPixels).toBe(twoKinds.heightPixels + 26);
  });

  it('really shades a fault band in the PNG, where the fault is on the x axis', () => {
    const plain = decodePng(renderChaosPng(input(steadyMinute, [])));
    // The first chart's vertical middle: clear of the grid lines, the data line and the legend.
    const row = 30 + 150;
    const shadedColumns = (startSeconds: number, endSeconds: number): number[] => {
      const fault = { startSeconds, endSeconds, nemesis: 'kill', description: 'kill -9 g1-r1' };
      const shaded = decodePng(renderChaosPng(input(steadyMinute, [fault])));
      expect(shaded.heightPixels).toBe(plain.heightPixels);
      const columns: number[] = [];
      for (let x = 0; x < shaded.widthPixels; x++) {
        if (shaded.pixel(x, row).join() !== plain.pixel(x, row).join()) columns.push(x);
      }
      expect(columns.length).toBeGreaterThan(0);
      // Inside the band the pixel is tinted towards the red of 'kill'; just outside it is white.
      const first = columns[0] as number;
      const last = columns[columns.length - 1] as number;
      const [red, green, blue] = shaded.pixel((first + last) >> 1, row);
      expect(red).toBeGreaterThan(green + 20);
      expect(red).toBeGreaterThan(blue + 20);
      expect(shaded.pixel(first - 3, row)).toEqual([255, 255, 255]);
      expect(shaded.pixel(last + 3, row)).toEqual([255, 255, 255]);
      // One contiguous band.
      expect(last - first + 1).toBe(columns.length);
      return columns;
    };
    const later = shadedColumns(20, 40);
    const earlier = shadedColumns(10, 30);
    const widthPixels = later.length;
    expect(Math.abs(earlier.length - widthPixels)).toBeLessThanOrEqual(1);
    // Twenty seconds wide, so starting ten seconds earlier moves the band by half its width.
    const shiftPixels = (later[0] as number) - (earlier[0] as number);
    expect(Math.abs(shiftPixels - widthPixels / 2)).toBeLessThanOrEqual(1);
  });

  it('renders a run with no seconds and no faults', () => {
    const empty: ChaosReportInput = { title: 'empty', summaryLines: [], seconds: [], faults: [] };
    const html = renderChaosHtml(empty);
    expect((html.match(/<svg /g) ?? []).length).toBe(3);
    expect(html).toContain('No faults were injected.');
    expect(html).toContain('No anomalies reported.');
    expect(html).not.toContain('NaN');
    const png = decodePng(renderChaosPng(empty));
    expect(png.widthPixels).toBe(900);
    expect(png.heightPixels).toBe(30 + 2 * 300 + 86 + 26);
  });

  it('renders faults recorded past the last second and still active at the end', () => {
    const faultsOnly = input(
      [],
      [{ startSeconds: 5, endSeconds: undefined, nemesis: 'member', description: 'm' }],
    );
    expect(renderChaosHtml(faultsOnly)).toContain('<td>active at the end</td>');
    expect(decodePng(renderChaosPng(faultsOnly)).heightPixels).toBe(30 + 2 * 300 + 86 + 26);
  });
});
