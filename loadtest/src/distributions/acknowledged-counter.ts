/**
 * Numbers new keys for inserts and tracks the newest one below which every insert is
 * acknowledged (YCSB's AcknowledgedCounterGenerator). Inserts finish out of order under
 * concurrency; the "latest" distribution reads only keys known to be written.
 */
export class AcknowledgedCounter {
  private nextNumber: number;
  private acknowledgedBelow: number;
  private readonly pending = new Set<number>();

  /** Keys [0, start) exist already (the load phase). */
  constructor(start: number) {
    this.nextNumber = start;
    this.acknowledgedBelow = start;
  }

  /** The key number of the next insert. */
  next(): number {
    return this.nextNumber++;
  }

  acknowledge(keyNumber: number): void {
    this.pending.add(keyNumber);
    while (this.pending.delete(this.acknowledgedBelow)) this.acknowledgedBelow++;
  }

  /** The newest key number whose insert, and every insert before it, is acknowledged. */
  latest(): number {
    return this.acknowledgedBelow - 1;
  }

  /** How many keys exist or are being inserted (the key space reads and updates draw from). */
  issued(): number {
    return this.nextNumber;
  }
}
