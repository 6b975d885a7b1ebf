/**
 * The node's policy for its shared Raft log. A segment of the node log (`NodeLog`) is deleted only
 * once no group needs entries in it, and a group compacts on its own only every `snapshotEntries`
 * applied entries: a group that stops taking writes never gets there, and keeps every segment
 * written after its last compaction, so the node's disk grows without bound under the other
 * groups' writes. The node log names the groups that keep its oldest segments
 * (`NodeLog.pinningGroups`) but does not act on it; this part does. When the log holds more than
 * `segmentsThreshold` segments, it asks each group that keeps one of the oldest ones, those over
 * the threshold, to compact now through the index that releases them (`Replica.compactNow`): the
 * replica makes its state machine durable, records a snapshot at its applied index and compacts,
 * in that order, never past what it applied. TiKV's raft-engine does the same ("force compact"
 * the regions that pin its oldest files) rather than rewriting their entries into newer files.
 *
 * A group that cannot compact that far (a follower that has not applied those entries, a failed
 * or stopped replica) keeps the segments: it is counted and logged, never forced.
 */
import { Counter, Gauge, metricPrefix, type Logger, type Registry } from '@impulse/common';
import type { PinningGroup } from '../raft-log/index.js';
import { type RequestedCompactionOutcome, type Scheduler, type Timer } from '../replica/index.js';
import { WarningLimiter } from '../transport/index.js';

export interface LogPurgeSettings {
  /**
   * Segments the node log may hold, the tail included, before the groups that keep the oldest ones
   * are asked to compact. Default 8: at the default segment size (64 MiB) the log stays near half
   * a GiB, and groups that compact on their own (every `snapshotEntries` entries) release their
   * segments long before: only a group idle or slow next to the node's traffic is asked. Each ask
   * costs the group a state machine sync (LevelDB: a memtable flush; memory engine: an image of the
   * whole state), so the threshold is set where an ask frees whole segments, not at every rotation.
   * At least 2 (the tail is never released).
   */
  readonly segmentsThreshold: number;
  /**
   * How often the node looks at its log, in milliseconds. Default 1000: a look costs one pass
   * over the groups' footprints, and between two looks the log grows by at most one second of the
   * node's writes (about one 64 MiB segment at 60 MB/s).
   */
  readonly checkIntervalMs: number;
}

export const logPurgeDefaults: LogPurgeSettings = Object.freeze({
  segmentsThreshold: 8,
  checkIntervalMs: 1_000,
});

/** How an ask ended: the replica's answer, or `notRunning` when the group has no running replica here. */
export type ForcedCompactionOutcome = RequestedCompactionOutcome | 'notRunning';

/** What the purge reads of the node log. */
export interface PurgedLog {
  pinningGroups(segmentCount: number): PinningGroup[];
  logBytes(): number;
  segmentCount(): number;
}

/** What the purge asks of a replica. */
export interface CompactableReplica {
  compactNow(throughIndex: number): Promise<RequestedCompactionOutcome>;
}

export interface LogPurgeOptions {
  readonly log: PurgedLog;
  /**
   * The running replica of a group; `changing` while the node starts or stops it (skipped: it is
   * asked at the next look); undefined when the node runs none (it failed, or the log holds a
   * group the node no longer hosts).
   */
  readonly replicaOf: (groupId: string) => CompactableReplica | 'changing' | undefined;
  readonly scheduler: Scheduler;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Default `logPurgeDefaults`; `off`: the node never asks (its log metrics are still exported). */
  readonly settings?: Partial<LogPurgeSettings> | 'off' | undefined;
  /** Told of every ask's outcome (the simulator counts them). */
  readonly onOutcome?: ((groupId: string, outcome: ForcedCompactionOutcome) => void) | undefined;
}

/** A warning per group and outcome at most this often; the ones between are counted in it. */
const warningIntervalMs = 60_000;

export class LogPurge {
  private readonly settings: LogPurgeSettings | undefined;
  /** Groups asked and not yet answered: asked again only once they answer. */
  private readonly asking = new Set<string>();
  private readonly warnings: WarningLimiter;
  private readonly metrics: LogPurgeMetrics;
  private timer: Timer | undefined;
  private stopped = false;

  constructor(private readonly options: LogPurgeOptions) {
    this.settings = options.settings === 'off' ? undefined : resolveSettings(options.settings);
    this.warnings = new WarningLimiter(options.logger, warningIntervalMs, () => options.scheduler.nowMs());
    this.metrics = logPurgeMetricsOf(options.registry, options.log);
  }

  /** Starts looking every `checkIntervalMs` (unless off). */
  start(): void {
    const settings = this.settings;
    if (settings === undefined || this.stopped || this.timer !== undefined) return;
    this.timer = this.options.scheduler.setInterval(() => this.check(), settings.checkIntervalMs);
  }

  /** Stops looking and unregisters the metrics; answers still due are dropped. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.timer?.cancel();
    this.metrics.release();
  }

  /**
   * One look: when the log holds more than `segmentsThreshold` segments, asks every group that
   * keeps one of the segments over the threshold, oldest first (and is not already asked), to
   * compact through the index that releases them all: one look brings the log back under the
   * threshold, where asking only for the oldest segment would free one segment per look. Returns
   * the groups asked.
   */
  check(): string[] {
    const settings = this.settings;
    if (settings === undefined || this.stopped) return [];
    const segments = this.options.log.segmentCount();
    if (segments <= settings.segmentsThreshold) return [];
    const asked: string[] = [];
    for (const pinning of this.options.log.pinningGroups(segments - settings.segmentsThreshold)) {
      if (this.maybeAsk(pinning, segments)) asked.push(pinning.groupId);
    }
    return asked;
  }

  private maybeAsk(pinning: PinningGroup, segments: number): boolean {
    const { groupId } = pinning;
    if (this.asking.has(groupId)) return false;
    const replica = this.options.replicaOf(groupId);
    if (replica === 'changing') return false;
    if (replica === undefined) {
      this.record(pinning, 'notRunning', segments);
      return false;
    }
    this.asking.add(groupId);
    replica
      .compactNow(pinning.compactThroughIndex)
      .catch((error: unknown) => {
        this.options.logger.error({ groupId, err: error }, 'node: a requested compaction threw');
        return 'failed' as const;
      })
      .then((outcome) => {
        this.asking.delete(groupId);
        this.record(pinning, outcome, segments);
      });
    return true;
  }

  private record(pinning: PinningGroup, outcome: ForcedCompactionOutcome, segments: number): void {
    if (this.stopped) return;
    const { groupId } = pinning;
    this.metrics.forcedCompactions.inc({ group: groupId, outcome });
    this.options.onOutcome?.(groupId, outcome);
    const fields = {
      groupId,
      outcome,
      firstIndex: pinning.firstIndex,
      compactThroughIndex: pinning.compactThroughIndex,
      segments,
      logBytes: this.options.log.logBytes(),
    };
    switch (outcome) {
      case 'compacted':
        this.options.logger.debug(fields, 'node: compacted a group that kept old node log segments');
        return;
      case 'stopped':
        this.options.logger.debug(fields, 'node: a group asked to compact stopped first');
        return;
      case 'behind':
        this.warnings.warn(
          `${groupId}/${outcome}`,
          fields,
          'node: a group keeps old node log segments and cannot compact them yet: it has not applied the entries there (a lagging follower, or a leader whose entries do not commit); asked again at every look',
        );
        return;
      case 'failed':
        this.warnings.warn(
          `${groupId}/${outcome}`,
          fields,
          'node: a group keeps old node log segments and could not make its state machine durable; its log keeps everything',
        );
        return;
      case 'notRunning':
        this.warnings.warn(
          `${groupId}/${outcome}`,
          fields,
          'node: the node log keeps old segments for a group with no running replica here (failed, or no longer hosted); they go once the replica runs and compacts, or the group is removed',
        );
        return;
    }
  }
}

function resolveSettings(input: Partial<LogPurgeSettings> = {}): LogPurgeSettings {
  const settings = { ...logPurgeDefaults, ...input };
  if (!Number.isSafeInteger(settings.segmentsThreshold) || settings.segmentsThreshold < 2)
    throw new RangeError(
      `segmentsThreshold must be an integer of at least 2, not ${settings.segmentsThreshold}`,
    );
  if (!Number.isSafeInteger(settings.checkIntervalMs) || settings.checkIntervalMs < 1)
    throw new RangeError(`checkIntervalMs must be a positive integer, not ${settings.checkIntervalMs}`);
  return Object.freeze(settings);
}

interface LogPurgeMetrics {
  readonly forcedCompactions: Counter<'group' | 'outcome'>;
  release(): void;
}

const logBytesMetric = `${metricPrefix}node_log_bytes`;
const logSegmentsMetric = `${metricPrefix}node_log_segments`;
const forcedCompactionsMetric = `${metricPrefix}node_log_forced_compactions_total`;

/** The node log's size, and the compactions the node asked for: registered with the node's other metrics. */
function logPurgeMetricsOf(registry: Registry, log: PurgedLog): LogPurgeMetrics {
  new Gauge({
    name: logBytesMetric,
    help: "Bytes of the node log's segment files: the Raft logs of every group this node hosts.",
    registers: [registry],
    collect() {
      this.set(log.logBytes());
    },
  });
  new Gauge({
    name: logSegmentsMetric,
    help: 'Segment files of the node log, the tail included. Past the purge threshold the groups that keep the oldest ones are asked to compact.',
    registers: [registry],
    collect() {
      this.set(log.segmentCount());
    },
  });
  const forcedCompactions = new Counter({
    name: forcedCompactionsMetric,
    help: 'Compactions the node asked of a group that kept old node log segments, by group and outcome: compacted; behind (it has not applied the entries there); failed (its state machine could not be made durable); stopped; notRunning (no running replica here to ask, counted at each look).',
    labelNames: ['group', 'outcome'] as const,
    registers: [registry],
  });
  return {
    forcedCompactions,
    release() {
      for (const name of [logBytesMetric, logSegmentsMetric, forcedCompactionsMetric])
        registry.removeSingleMetric(name);
    },
  };
}
