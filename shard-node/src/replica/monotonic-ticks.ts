/**
 * The Raft core's clock in lease mode. A lease is judged in ticks, so the core must have been
 * ticked once for every tick interval of real (monotonic) time before it takes any input: a
 * timer fires once after the process was paused (SIGSTOP, a long GC, a blocked loop), however long
 * the pause was.
 *
 * The order matters on both sides of a lease. A leader that resumes must count the pause before
 * it answers a read from its lease. A follower that resumes must count the pause before it steps
 * the heartbeats that waited in its socket: stepped first, a heartbeat would restart its election
 * timer, and the pause counted afterwards would cut short the window in which it refuses to vote
 * for anyone else, while the leader counts its lease from that heartbeat.
 */
export class MonotonicTicks {
  private tickedUpToMs: number;

  constructor(
    private readonly intervalMs: number,
    /** Past this many ticks at once every timer in the core has fired; more change nothing. */
    private readonly dueMax: number,
    private readonly tick: () => void,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    this.tickedUpToMs = nowMs();
  }

  /** Ticks once per whole interval elapsed since the last catch-up; returns how many ticks. */
  catchUp(): number {
    const nowMs = this.nowMs();
    let due = Math.floor((nowMs - this.tickedUpToMs) / this.intervalMs);
    if (due <= 0) return 0;
    this.tickedUpToMs += due * this.intervalMs;
    if (due > this.dueMax) {
      due = this.dueMax;
      this.tickedUpToMs = nowMs;
    }
    for (let tick = 0; tick < due; tick++) this.tick();
    return due;
  }
}
