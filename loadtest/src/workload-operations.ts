import { AcknowledgedCounter } from './distributions/acknowledged-counter.js';
import type { KeyDistribution } from './distributions/key-distribution.js';
import { LatestDistribution } from './distributions/latest.js';
import { ScrambledZipfianDistribution } from './distributions/scrambled-zipfian.js';
import { UniformDistribution } from './distributions/uniform.js';
import type { IssueOperation, PendingOperation } from './drivers/pending-operation.js';
import { keyName } from './key-name.js';
import { SeededRandom } from './random.js';
import type { KvTarget } from './targets/kv-target.js';
import { OperationChooser, type DistributionName, type WorkloadDefinition } from './workload.js';

export interface WorkloadOperationsOptions {
  readonly workload: WorkloadDefinition;
  readonly distribution: DistributionName;
  /** Keys written by the load phase: key numbers [0, recordCount). */
  readonly recordCount: number;
  readonly recordBytes: number;
  readonly seed: number;
}

/** Distinct values written round-robin; generating bytes per operation would cost the client CPU. */
const valuePoolSize = 16;

export function createKeyDistribution(
  name: DistributionName,
  random: SeededRandom,
  counter: AcknowledgedCounter,
): KeyDistribution {
  // Reads and updates draw only from keys whose insert is acknowledged, as YCSB's
  // CoreWorkload.nextKeynum does, so a read never races the insert of its key.
  const itemCount = (): number => Math.max(1, counter.latest() + 1);
  switch (name) {
    case 'zipfian':
      return new ScrambledZipfianDistribution(random, itemCount);
    case 'uniform':
      return new UniformDistribution(random, itemCount);
    case 'latest':
      return new LatestDistribution(random, () => Math.max(0, counter.latest()));
  }
}

/**
 * Turns a workload into operations on a target: the load phase inserts the records, the run
 * phase draws each operation's kind and key from one seeded generator, in issue order.
 */
export class WorkloadOperations {
  private readonly random: SeededRandom;
  private readonly chooser: OperationChooser;
  private readonly counter: AcknowledgedCounter;
  private readonly keys: KeyDistribution;
  private readonly values: Buffer[] = [];
  private nextValue = 0;
  /** Reads of a key that was absent (not an error: e.g. a failed insert). */
  notFound = 0;

  constructor(
    private readonly target: KvTarget,
    private readonly options: WorkloadOperationsOptions,
  ) {
    this.random = new SeededRandom(options.seed);
    this.chooser = new OperationChooser(options.workload.proportions);
    this.counter = new AcknowledgedCounter(options.recordCount);
    this.keys = createKeyDistribution(options.distribution, this.random, this.counter);
    const valueRandom = new SeededRandom(options.seed ^ 0x5bd1e995);
    for (let index = 0; index < valuePoolSize; index++) {
      const value = Buffer.alloc(options.recordBytes);
      for (let byte = 0; byte < value.length; byte++) value[byte] = 32 + (valueRandom.nextUint32() % 95);
      this.values.push(value);
    }
  }

  /** The load phase: operation `sequence` inserts key number `sequence`. */
  readonly load: IssueOperation = (sequence) => ({
    kind: 'insert',
    done: this.target.put(keyName(sequence), this.value()),
  });

  /** The run phase: the workload's mix. */
  readonly run: IssueOperation = (): PendingOperation => {
    const kind = this.chooser.choose(this.random.nextDouble());
    switch (kind) {
      case 'read': {
        const key = keyName(this.keys.nextKeyNumber());
        return { kind, done: this.read(key) };
      }
      case 'update':
        return { kind, done: this.target.put(keyName(this.keys.nextKeyNumber()), this.value()) };
      case 'insert': {
        const keyNumber = this.counter.next();
        // A failed insert is acknowledged too: otherwise "latest" would stop moving for good.
        const done = this.target
          .put(keyName(keyNumber), this.value())
          .finally(() => this.counter.acknowledge(keyNumber));
        return { kind, done };
      }
      case 'scan': {
        const key = keyName(this.keys.nextKeyNumber());
        const length = 1 + this.random.nextInt(this.options.workload.scanLengthMax);
        return { kind, done: this.target.scan(key, length).then(() => undefined) };
      }
      case 'readModifyWrite': {
        const key = keyName(this.keys.nextKeyNumber());
        const value = this.value();
        return { kind, done: this.read(key).then(() => this.target.put(key, value)) };
      }
    }
  };

  private async read(key: string): Promise<void> {
    const value = await this.target.get(key);
    if (value === undefined) this.notFound++;
  }

  private value(): Buffer {
    const value = this.values[this.nextValue] as Buffer;
    this.nextValue = (this.nextValue + 1) % this.values.length;
    return value;
  }
}
