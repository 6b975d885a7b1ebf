import { describe, expect, it } from 'vitest';
import { runBenchmark } from '../src/benchmark.js';
import { parseDurationSeconds } from '../src/duration.js';
import type { KvTarget } from '../src/targets/kv-target.js';
import type { RunningTarget } from '../src/targets/running-target.js';
import { workloads } from '../src/workload.js';

/** A store in a Map that counts every call, to see which phase issued what. */
class CountingTarget implements KvTarget {
  readonly name = 'counting';
  readonly values = new Map<string, Uint8Array>();
  calls = 0;

  async put(key: string, value: Uint8Array): Promise<void> {
    this.calls++;
    await new Promise((resolve) => setImmediate(resolve));
    this.values.set(key, value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.calls++;
    await new Promise((resolve) => setImmediate(resolve));
    return this.values.get(key);
  }

  async delete(key: string): Promise<void> {
    this.calls++;
    this.values.delete(key);
  }

  async scan(): Promise<number> {
    throw new Error('no scans here');
  }

  async supportsScan(): Promise<boolean> {
    return false;
  }

  async close(): Promise<void> {}
}

function running(target: CountingTarget): RunningTarget {
  return { name: 'counting', target, description: 'a Map', processes: () => [], stop: async () => {} };
}

const common = {
  workload: workloads.a,
  distribution: 'zipfian',
  recordCount: 20,
  recordBytes: 16,
  durationMs: 200,
  concurrency: 4,
  rateOperationsPerSecond: 0,
  inflightMax: 16,
  seed: 7,
} as const;

describe('runBenchmark', () => {
  it('records the run phase only: the warm-up runs the same workload first and is thrown away', async () => {
    const target = new CountingTarget();
    const result = await runBenchmark(running(target), { ...common, warmupMs: 200 });
    const loaded = result.load?.operations ?? 0;
    const recorded = result.run?.operations ?? 0;
    expect(loaded).toBe(common.recordCount);
    expect(recorded).toBeGreaterThan(0);
    // Everything the target saw beyond the load and the run phase was the warm-up's.
    const warmUp = target.calls - loaded - recorded;
    expect(warmUp).toBeGreaterThan(0);
    expect(result.run?.seconds).toBeLessThan(0.5);
  });

  it('without a warm-up, the target sees the load and the run phase, nothing else', async () => {
    const target = new CountingTarget();
    const result = await runBenchmark(running(target), { ...common, warmupMs: 0 });
    expect(target.calls).toBe((result.load?.operations ?? 0) + (result.run?.operations ?? 0));
  });
});

describe('parseDurationSeconds', () => {
  it('takes seconds, milliseconds and minutes, and refuses zero unless a phase may be skipped', () => {
    expect(parseDurationSeconds('--duration', '10')).toBe(10);
    expect(parseDurationSeconds('--duration', '500ms')).toBe(0.5);
    expect(parseDurationSeconds('--duration', '2m')).toBe(120);
    expect(() => parseDurationSeconds('--duration', '0')).toThrow(/must be above 0/);
    expect(parseDurationSeconds('--warmup', '0', 'allowed')).toBe(0);
    expect(parseDurationSeconds('--warmup', '0s', 'allowed')).toBe(0);
    expect(() => parseDurationSeconds('--warmup', 'soon', 'allowed')).toThrow(/--warmup: must be a duration/);
  });
});
