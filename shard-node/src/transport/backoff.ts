/**
 * Reconnect delays: exponential, bounded, with jitter. The jitter keeps the replicas of a group
 * that lost a peer at the same moment from redialling it in lockstep; randomness is injected so
 * that a test or simulation can replay the delays.
 */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly delayMsMin: number,
    private readonly delayMsMax: number,
    private readonly random: () => number,
  ) {}

  /** The delay before the next attempt, and counts one more failure. */
  nextDelayMs(): number {
    // Doubling from the minimum, capped; the exponent is capped too so that it never overflows.
    const ceilingMs = Math.min(this.delayMsMax, this.delayMsMin * 2 ** Math.min(this.failures, 30));
    this.failures += 1;
    // "Equal jitter": at least half the ceiling, so that delays still grow, plus a random half.
    const halfMs = ceilingMs / 2;
    return Math.round(halfMs + this.random() * halfMs);
  }

  /** Forgets the failures, after a connection that worked. */
  reset(): void {
    this.failures = 0;
  }
}
