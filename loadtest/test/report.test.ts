import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { TargetResult } from '../src/benchmark.js';
import { comparisonLines, finalLine, summarizeRuns } from '../src/comparison.js';
import { renderHtmlReport } from '../src/report/html-report.js';
import { pngSignature } from '../src/report/png-encoder.js';
import { renderPngReport } from '../src/report/png-report.js';

function fakeResult(target: string, operationsPerSecond: number, p99Ms: number): TargetResult {
  const latency = {
    count: 100,
    meanMs: 1,
    minMs: 0.1,
    p50Ms: 1,
    p90Ms: 2,
    p99Ms,
    p999Ms: p99Ms * 2,
    maxMs: 50,
  };
  return {
    target,
    description: `${target} for the test`,
    run: {
      operations: 100,
      errors: 0,
      seconds: 3,
      operationsPerSecond,
      latency,
      mode: 'closed-loop',
      notFound: 0,
      notIssued: 0,
      latencyByKind: { read: latency },
      intervals: [1, 2, 3].map((second) => ({
        elapsedSeconds: second,
        operations: operationsPerSecond,
        errors: 0,
        operationsPerSecond: operationsPerSecond * (1 + second / 10),
        p50Ms: 1,
        p99Ms: p99Ms + second,
        p999Ms: p99Ms * 2,
        maxMs: 50,
      })),
      errorSamples: [],
    },
    cpuSeconds: { 'load-generator': 1.5 },
  };
}

const results = [
  fakeResult('impulse', 1000, 9),
  fakeResult('etcd', 2000, 4.5),
  { target: 'map', description: '', failure: 'scans are not supported by the target yet' },
];

describe('report', () => {
  it('renders an HTML page with inline SVG charts and no external resources', () => {
    const html = renderHtmlReport({
      title: 'Impulse benchmark: workload a',
      settings: [['workload', 'a']],
      results,
      comparisons: ['impulse / etcd: throughput 0.50x'],
    });
    expect(html).toMatch(/^<!doctype html>/);
    expect((html.match(/<svg /g) ?? []).length).toBe(2);
    expect(html).toContain('<polyline');
    expect(html).toContain('Throughput over time');
    expect(html).toContain('scans are not supported by the target yet');
    expect(html).not.toMatch(/src="http|href="http|<script/);
  });

  it('renders a PNG with a valid signature, IHDR and image data', () => {
    const png = renderPngReport('Impulse benchmark: workload a', results);
    expect(png.subarray(0, 8).equals(pngSignature)).toBe(true);
    expect(png.toString('ascii', 12, 16)).toBe('IHDR');
    const width = png.readUInt32BE(16);
    const height = png.readUInt32BE(20);
    expect(width).toBe(900);
    expect(height).toBeGreaterThan(600);
    expect(png[24]).toBe(8);
    expect(png[25]).toBe(2);
    const idatLength = png.readUInt32BE(33);
    expect(png.toString('ascii', 37, 41)).toBe('IDAT');
    const raw = inflateSync(png.subarray(41, 41 + idatLength));
    expect(raw.length).toBe((width * 3 + 1) * height);
    // Something was drawn: not every pixel is white.
    expect(raw.some((byte, index) => index % (width * 3 + 1) !== 0 && byte !== 255)).toBe(true);
    expect(png.toString('ascii', png.length - 8, png.length - 4)).toBe('IEND');
  });

  it('prints the last line with ratios, and n/a for a target not run', () => {
    const summaries = [
      summarizeRuns('impulse', [
        fakeResult('impulse', 1000, 9),
        fakeResult('impulse', 1200, 11),
        fakeResult('impulse', 800, 10),
      ]),
      summarizeRuns('etcd', [fakeResult('etcd', 2000, 4.5)]),
    ];
    expect(finalLine('a', summaries)).toBe(
      'bench: workload=a impulse=1000 etcd=2000 ratio=0.50 p99_impulse_ms=10.00 p99_etcd_ms=4.50 impulse_replicas=n/a ratio_replicas=n/a',
    );
    expect(finalLine('e', [summarizeRuns('impulse', [])])).toBe(
      'bench: workload=e impulse=n/a etcd=n/a ratio=n/a p99_impulse_ms=n/a p99_etcd_ms=n/a impulse_replicas=n/a ratio_replicas=n/a',
    );
  });

  it('compares both Impulse shapes with etcd, and the node shape with the shape before it', () => {
    const summaries = [
      summarizeRuns('impulse-replicas', [fakeResult('impulse-replicas', 500, 20)]),
      summarizeRuns('impulse', [fakeResult('impulse', 1000, 10)]),
      summarizeRuns('etcd', [fakeResult('etcd', 2000, 5)]),
    ];
    expect(comparisonLines(summaries)).toEqual([
      'impulse / etcd: throughput 0.50x, p50 1.00x, p99 2.00x',
      'impulse-replicas / etcd: throughput 0.25x, p50 1.00x, p99 4.00x',
      'impulse / impulse-replicas: throughput 2.00x, p50 1.00x, p99 0.50x',
    ]);
    expect(finalLine('put', summaries)).toBe(
      'bench: workload=put impulse=1000 etcd=2000 ratio=0.50 p99_impulse_ms=10.00 p99_etcd_ms=5.00 impulse_replicas=500 ratio_replicas=0.25',
    );
  });
});
