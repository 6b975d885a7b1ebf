/**
 * Rate-limits warnings per kind. A peer that sends garbage in a loop must not flood the log: the
 * first warning of a kind is logged, the next ones within `intervalMs` are only counted, and the
 * count is reported with the next warning of that kind that gets through. Kinds are a small fixed
 * set (such as a malformed-frame reason), so the map stays small.
 */
import type { Logger } from '@impulse/common';

export class WarningLimiter {
  private readonly lastByKind = new Map<string, { loggedAtMs: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly nowMs: () => number,
  ) {}

  /** `level` lowers a kind that is routine (a joining or removed peer) to `info`. */
  warn(
    kind: string,
    fields: Record<string, unknown>,
    message: string,
    level: 'warn' | 'info' = 'warn',
  ): void {
    const now = this.nowMs();
    const last = this.lastByKind.get(kind);
    if (last !== undefined && now - last.loggedAtMs < this.intervalMs) {
      last.suppressed += 1;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.lastByKind.set(kind, { loggedAtMs: now, suppressed: 0 });
    this.logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}
