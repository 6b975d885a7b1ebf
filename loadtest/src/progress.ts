import type { IntervalSample, RunRecorder } from './recorder.js';

/**
 * The progress line on stderr while a phase runs, once per interval: throughput of the last
 * interval, p50/p99 of everything so far, errors so far. On a terminal it rewrites one line; in a
 * log it appends lines.
 */
export class ProgressLine {
  private timer: NodeJS.Timeout | undefined;
  private startMs = 0;

  constructor(
    private readonly label: string,
    private readonly recorder: RunRecorder,
    private readonly now: () => number,
    private readonly intervalMs = 1000,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  start(): void {
    this.startMs = this.now();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
  }

  /** Closes the last (partial) interval and ends the line. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.tick();
    if (this.stream.isTTY) this.stream.write('\n');
  }

  private tick(): void {
    const elapsedSeconds = (this.now() - this.startMs) / 1000;
    const sample = this.recorder.closeInterval(elapsedSeconds);
    const line = formatProgress(this.label, sample, this.recorder);
    this.stream.write(this.stream.isTTY ? `\r\x1b[2K${line}` : `${line}\n`);
  }
}

export function formatProgress(label: string, sample: IntervalSample, recorder: RunRecorder): string {
  const overall = recorder.overall;
  return (
    `${label} ${sample.elapsedSeconds.toFixed(0).padStart(4)} s  ` +
    `${Math.round(sample.operationsPerSecond).toString().padStart(7)} ops/s  ` +
    `p50 ${(overall.percentileMicroseconds(50) / 1000).toFixed(2)} ms  ` +
    `p99 ${(overall.percentileMicroseconds(99) / 1000).toFixed(2)} ms  ` +
    `errors ${recorder.errors}`
  );
}
