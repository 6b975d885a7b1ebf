/**
 * The YCSB core workloads A to F (from YCSB's `workloads/workload[a-f]`), plus `put` and `get`
 * (every operation an update, or a read). The proportions and the request distribution are
 * YCSB's; the record is one opaque value of `recordBytes` instead of ten fields.
 */

export type OperationKind = 'read' | 'update' | 'insert' | 'scan' | 'readModifyWrite';
export const operationKinds: readonly OperationKind[] = [
  'read',
  'update',
  'insert',
  'scan',
  'readModifyWrite',
];

export type DistributionName = 'zipfian' | 'uniform' | 'latest';
export type WorkloadName = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'put' | 'get';
export const workloadNames: readonly WorkloadName[] = ['a', 'b', 'c', 'd', 'e', 'f', 'put', 'get'];

export interface WorkloadDefinition {
  readonly name: WorkloadName;
  readonly description: string;
  /** Fraction of each operation kind; they add up to 1. */
  readonly proportions: Readonly<Partial<Record<OperationKind, number>>>;
  readonly requestDistribution: DistributionName;
  /** Scans read a uniform number of records in [1, scanLengthMax] (YCSB's maxscanlength). */
  readonly scanLengthMax: number;
}

export const workloads: Readonly<Record<WorkloadName, WorkloadDefinition>> = {
  a: {
    name: 'a',
    description: 'update heavy: 50% reads, 50% updates, zipfian',
    proportions: { read: 0.5, update: 0.5 },
    requestDistribution: 'zipfian',
    scanLengthMax: 100,
  },
  b: {
    name: 'b',
    description: 'read mostly: 95% reads, 5% updates, zipfian',
    proportions: { read: 0.95, update: 0.05 },
    requestDistribution: 'zipfian',
    scanLengthMax: 100,
  },
  c: {
    name: 'c',
    description: 'read only: 100% reads, zipfian',
    proportions: { read: 1 },
    requestDistribution: 'zipfian',
    scanLengthMax: 100,
  },
  d: {
    name: 'd',
    description: 'read latest: 95% reads, 5% inserts, latest',
    proportions: { read: 0.95, insert: 0.05 },
    requestDistribution: 'latest',
    scanLengthMax: 100,
  },
  e: {
    name: 'e',
    description: 'short ranges: 95% scans (1 to 100 records), 5% inserts, zipfian',
    proportions: { scan: 0.95, insert: 0.05 },
    requestDistribution: 'zipfian',
    scanLengthMax: 100,
  },
  f: {
    name: 'f',
    description: 'read-modify-write: 50% reads, 50% read-modify-writes, zipfian',
    proportions: { read: 0.5, readModifyWrite: 0.5 },
    requestDistribution: 'zipfian',
    scanLengthMax: 100,
  },
  put: {
    name: 'put',
    description: 'writes only: 100% updates of existing keys, zipfian',
    proportions: { update: 1 },
    requestDistribution: 'zipfian',
    scanLengthMax: 100,
  },
  get: {
    name: 'get',
    description: 'reads only: 100% reads, zipfian',
    proportions: { read: 1 },
    requestDistribution: 'zipfian',
    scanLengthMax: 100,
  },
};

/** Chooses each operation's kind from the workload's proportions with a seeded uniform draw. */
export class OperationChooser {
  private readonly kinds: OperationKind[] = [];
  private readonly cumulative: number[] = [];

  constructor(proportions: Readonly<Partial<Record<OperationKind, number>>>) {
    let sum = 0;
    for (const kind of operationKinds) {
      const share = proportions[kind] ?? 0;
      if (share <= 0) continue;
      sum += share;
      this.kinds.push(kind);
      this.cumulative.push(sum);
    }
    if (this.kinds.length === 0 || Math.abs(sum - 1) > 1e-9) {
      throw new Error(`workload proportions must add up to 1 (got ${sum})`);
    }
  }

  /** `uniform01` is a draw in [0, 1). */
  choose(uniform01: number): OperationKind {
    for (let index = 0; index < this.kinds.length; index++) {
      if (uniform01 < (this.cumulative[index] as number)) return this.kinds[index] as OperationKind;
    }
    return this.kinds[this.kinds.length - 1] as OperationKind;
  }
}
