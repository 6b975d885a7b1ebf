import { describe, expect, it } from 'vitest';
import { keyName } from '../src/key-name.js';
import { SeededRandom } from '../src/random.js';
import type { KvTarget } from '../src/targets/kv-target.js';
import { WorkloadOperations } from '../src/workload-operations.js';
import { OperationChooser, workloads, type OperationKind, type WorkloadName } from '../src/workload.js';

/** An in-memory target that counts what it was asked. */
class CountingTarget implements KvTarget {
  readonly name = 'counting';
  readonly values = new Map<string, Uint8Array>();
  readonly calls: string[] = [];
  async put(key: string, value: Uint8Array): Promise<void> {
    this.calls.push(`put ${key}`);
    this.values.set(key, value);
  }
  async get(key: string): Promise<Uint8Array | undefined> {
    this.calls.push(`get ${key}`);
    return this.values.get(key);
  }
  async delete(key: string): Promise<void> {
    this.values.delete(key);
  }
  async scan(startKey: string, limit: number): Promise<number> {
    this.calls.push(`scan ${startKey} ${limit}`);
    return limit;
  }
  async supportsScan(): Promise<boolean> {
    return true;
  }
  async close(): Promise<void> {}
}

describe('workloads', () => {
  it.each(Object.keys(workloads) as WorkloadName[])(
    'workload %s draws its mix in the right proportions',
    (name) => {
      const definition = workloads[name];
      const chooser = new OperationChooser(definition.proportions);
      const random = new SeededRandom(5);
      const count = 100_000;
      const seen = new Map<OperationKind, number>();
      for (let index = 0; index < count; index++) {
        const kind = chooser.choose(random.nextDouble());
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
      }
      for (const [kind, share] of Object.entries(definition.proportions)) {
        expect(Math.abs((seen.get(kind as OperationKind) ?? 0) / count - share)).toBeLessThan(0.01);
      }
      expect([...seen.keys()].every((kind) => (definition.proportions[kind] ?? 0) > 0)).toBe(true);
    },
  );

  it('has YCSB core proportions', () => {
    expect(workloads.a.proportions).toEqual({ read: 0.5, update: 0.5 });
    expect(workloads.b.proportions).toEqual({ read: 0.95, update: 0.05 });
    expect(workloads.c.proportions).toEqual({ read: 1 });
    expect(workloads.d).toMatchObject({
      proportions: { read: 0.95, insert: 0.05 },
      requestDistribution: 'latest',
    });
    expect(workloads.e.proportions).toEqual({ scan: 0.95, insert: 0.05 });
    expect(workloads.f.proportions).toEqual({ read: 0.5, readModifyWrite: 0.5 });
  });

  it('refuses proportions that do not add up to 1', () => {
    expect(() => new OperationChooser({ read: 0.5 })).toThrow(/add up to 1/);
  });

  it('loads the records, then runs the mix against a target, deterministically from the seed', async () => {
    const runOnce = async (): Promise<string[]> => {
      const target = new CountingTarget();
      const operations = new WorkloadOperations(target, {
        workload: workloads.f,
        distribution: 'zipfian',
        recordCount: 100,
        recordBytes: 64,
        seed: 21,
      });
      for (let sequence = 0; sequence < 100; sequence++) await operations.load(sequence).done;
      expect(target.values.size).toBe(100);
      expect(target.values.get(keyName(0))?.length).toBe(64);
      target.calls.length = 0;
      for (let sequence = 0; sequence < 1000; sequence++) await operations.run(sequence).done;
      expect(operations.notFound).toBe(0);
      return target.calls;
    };
    const first = await runOnce();
    // Workload F: half reads, half read-modify-writes (a get, then a put of the same key).
    const gets = first.filter((call) => call.startsWith('get')).length;
    const puts = first.filter((call) => call.startsWith('put')).length;
    expect(gets).toBe(1000);
    expect(puts / 1000).toBeGreaterThan(0.45);
    expect(puts / 1000).toBeLessThan(0.55);
    expect(await runOnce()).toEqual(first);
  });

  it('workload d inserts new keys and reads the latest ones', async () => {
    const target = new CountingTarget();
    const operations = new WorkloadOperations(target, {
      workload: workloads.d,
      distribution: 'latest',
      recordCount: 50,
      recordBytes: 8,
      seed: 4,
    });
    for (let sequence = 0; sequence < 50; sequence++) await operations.load(sequence).done;
    for (let sequence = 0; sequence < 2000; sequence++) await operations.run(sequence).done;
    expect(target.values.size).toBeGreaterThan(50 + 60);
    expect(operations.notFound).toBe(0);
  });
});
