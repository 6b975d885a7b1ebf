/**
 * A log-linear latency histogram in the manner of HdrHistogram: values below 256 are counted
 * exactly; above, each power of two is split into 128 linear buckets, so a bucket is at most 1/128
 * of its values wide. A percentile is reported as the middle of its bucket, within 0.4% of the
 * recorded value (and never outside the recorded minimum and maximum).
 *
 * Values are whole microseconds from 1 µs up to `valueMaxMicroseconds` (about 71 minutes);
 * larger values are counted at the maximum and reported through `saturatedCount`.
 */
export class LatencyHistogram {
  static readonly valueMaxMicroseconds = 2 ** 32 - 1;
  private static readonly linearBucketsPerPowerOfTwo = 128;
  private static readonly exactBelow = 256;
  private static readonly bucketCount = 256 + 25 * 128;

  private readonly counts = new Float64Array(LatencyHistogram.bucketCount);
  private total = 0;
  private sum = 0;
  private minimum = Number.POSITIVE_INFINITY;
  private maximum = 0;
  private saturated = 0;

  record(valueMicroseconds: number, count = 1): void {
    let value = Math.max(1, Math.round(valueMicroseconds));
    if (value > LatencyHistogram.valueMaxMicroseconds) {
      value = LatencyHistogram.valueMaxMicroseconds;
      this.saturated += count;
    }
    const index = LatencyHistogram.indexOf(value);
    this.counts[index] = (this.counts[index] ?? 0) + count;
    this.total += count;
    this.sum += value * count;
    if (value < this.minimum) this.minimum = value;
    if (value > this.maximum) this.maximum = value;
  }

  get count(): number {
    return this.total;
  }

  get saturatedCount(): number {
    return this.saturated;
  }

  get minMicroseconds(): number {
    return this.total === 0 ? 0 : this.minimum;
  }

  get maxMicroseconds(): number {
    return this.maximum;
  }

  get meanMicroseconds(): number {
    return this.total === 0 ? 0 : this.sum / this.total;
  }

  /** The value at or below which `percent` of the recorded values lie (0 when empty). */
  percentileMicroseconds(percent: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil((Math.min(100, Math.max(0, percent)) / 100) * this.total));
    let seen = 0;
    for (let index = 0; index < this.counts.length; index++) {
      seen += this.counts[index] ?? 0;
      if (seen >= rank) {
        const [low, high] = LatencyHistogram.boundsOf(index);
        const middle = (low + high) / 2;
        return Math.min(this.maximum, Math.max(this.minimum, middle));
      }
    }
    return this.maximum;
  }

  /** Adds every value of `other` to this one (merging per-interval or per-target histograms). */
  add(other: LatencyHistogram): void {
    for (let index = 0; index < other.counts.length; index++) {
      this.counts[index] = (this.counts[index] ?? 0) + (other.counts[index] ?? 0);
    }
    this.total += other.total;
    this.sum += other.sum;
    this.saturated += other.saturated;
    if (other.total > 0) {
      this.minimum = Math.min(this.minimum, other.minimum);
      this.maximum = Math.max(this.maximum, other.maximum);
    }
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.sum = 0;
    this.minimum = Number.POSITIVE_INFINITY;
    this.maximum = 0;
    this.saturated = 0;
  }

  static indexOf(value: number): number {
    if (value < LatencyHistogram.exactBelow) return value;
    // Shift so that the value's top 8 bits remain: they lie in [128, 256).
    const shift = 31 - Math.clz32(value) - 7;
    const top = value >>> shift;
    return (
      LatencyHistogram.exactBelow + (shift - 1) * LatencyHistogram.linearBucketsPerPowerOfTwo + (top - 128)
    );
  }

  /** [lowest, highest] value counted in a bucket. */
  static boundsOf(index: number): [number, number] {
    if (index < LatencyHistogram.exactBelow) return [index, index];
    const offset = index - LatencyHistogram.exactBelow;
    const shift = Math.floor(offset / LatencyHistogram.linearBucketsPerPowerOfTwo) + 1;
    const top = 128 + (offset % LatencyHistogram.linearBucketsPerPowerOfTwo);
    const low = top * 2 ** shift;
    return [low, low + 2 ** shift - 1];
  }
}
