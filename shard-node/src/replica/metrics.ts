import { peerMessageRefusals, type PeerMessageRefusal } from './peer-message-check.js';
import {
  Counter,
  FoldedCounter,
  Gauge,
  Histogram,
  latencyBucketsSeconds,
  metricPrefix,
  type Registry,
} from '@impulse/common';
import type { ReplicaStatus } from './replica.js';

/** The Raft metrics of one replica, bound to its group's label. */
export interface ReplicaMetrics {
  readonly leaderChanges: { inc(): void };
  readonly proposalsCommitted: { inc(count?: number): void };
  readonly proposalsFailed: { inc(labels: { reason: string }, count?: number): void };
  readonly proposalsBatched: { observe(size: number): void };
  readonly snapshotsSent: { inc(): void };
  readonly snapshotsInstalled: { inc(): void };
  /** Storage faults this replica entered (one at a time: a fault lasts until the replica is rebuilt). */
  readonly storageFaults: { inc(): void };
  /** Rebuilds of this replica's state machine from its leader's snapshot, each ending a fault. */
  readonly rebuilds: { inc(): void };
  /** Peer messages dropped before the core saw them (`peer-message-check.ts`), by reason. */
  readonly peerMessagesRefused: { inc(labels: { reason: PeerMessageRefusal }): void };
  /** This replica's records written to the Raft log, and the write that carried them. */
  observeAppend(bytes: number, seconds: number): void;
  setLogBytes(bytes: number): void;
  /** The replica stopped: its gauges are no longer reported (its counters keep their totals). */
  release(): void;
}

/**
 * The Raft metrics of every replica a process hosts, labelled by `group` (a process hosts at most
 * one replica of a group). Each metric is registered once per registry, however many replicas
 * open, so that a second replica never clashes with the first. Gauges that mirror the core's state
 * (term, role, indexes) are read from each replica's `status()` when Prometheus scrapes, so the hot
 * path pays nothing for them. The Raft log's fsyncs are the log's, not a group's: a node's groups
 * share one fsync per round (`log-metrics.ts`).
 */
class ReplicaMetricsFamily {
  /** The replicas reported by the gauges, by group. */
  private readonly statuses = new Map<string, () => ReplicaStatus>();
  private readonly logBytesByGroup = new Map<string, number>();
  private readonly leaderChanges: Counter<'group'>;
  private readonly proposalsCommitted: FoldedCounter<'group'>;
  private readonly proposalsFailed: Counter<'group' | 'reason'>;
  private readonly proposalsBatched: Histogram<'group'>;
  private readonly snapshotsSent: Counter<'group'>;
  private readonly snapshotsInstalled: Counter<'group'>;
  private readonly storageFaults: Counter<'group'>;
  private readonly rebuilds: Counter<'group'>;
  private readonly peerMessagesRefused: Counter<'group' | 'reason'>;
  private readonly appendBytes: FoldedCounter<'group'>;
  private readonly appendSeconds: Histogram<'group'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const statuses = this.statuses;
    const gauge = (name: string, help: string, value: (current: ReplicaStatus) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['group'] as const,
        registers,
        collect() {
          this.reset();
          for (const [group, status] of statuses) this.set({ group }, value(status()));
        },
      });
    };
    const raft = (name: string): string => `${metricPrefix}raft_${name}`;
    gauge(raft('term'), 'The current Raft term.', (current) => current.term);
    gauge(raft('is_leader'), '1 when this replica is the leader of its group, else 0.', (current) =>
      current.role === 'leader' ? 1 : 0,
    );
    gauge(
      raft('commit_index'),
      'The highest log index known to be committed.',
      (current) => current.commitIndex,
    );
    gauge(
      raft('applied_index'),
      'The highest log index applied to the state machine.',
      (current) => current.appliedIndex,
    );
    gauge(raft('last_index'), 'The index of the last entry in the log.', (current) => current.lastIndex);
    gauge(
      raft('snapshot_index'),
      'The index of the latest snapshot (the log is compacted behind it).',
      (current) => current.snapshotIndex,
    );
    gauge(
      raft('proposals_pending'),
      'Writes proposed and not yet applied.',
      (current) => current.pendingProposals,
    );
    gauge(
      `${metricPrefix}replica_storage_fault`,
      '1 while this replica has a storage fault (its state machine is damaged: it serves nothing and never leads until rebuilt), else 0.',
      (current) => (current.storageFault === null ? 0 : 1),
    );
    const logBytesByGroup = this.logBytesByGroup;
    new Gauge({
      name: raft('log_bytes'),
      help: 'Bytes of the Raft log segment files.',
      labelNames: ['group'] as const,
      registers,
      collect() {
        this.reset();
        for (const [group, bytes] of logBytesByGroup) this.set({ group }, bytes);
      },
    });
    // The two counters a replica moves in every round of writes (appends, applies) add to plain
    // numbers, folded into prom-client's series on each scrape (`FoldedCounter`): a node of many
    // groups runs many small rounds per write. The others count rare events and stay direct.
    this.appendBytes = new FoldedCounter({
      name: raft('log_append_bytes_total'),
      help: 'Bytes appended to the Raft log.',
      labelNames: ['group'] as const,
      registers,
    });
    this.appendSeconds = new Histogram({
      name: raft('log_append_duration_seconds'),
      help: 'Time to write one batch of records to the Raft log (before fsync).',
      labelNames: ['group'] as const,
      buckets: latencyBucketsSeconds,
      registers,
    });
    this.leaderChanges = new Counter({
      name: raft('leader_changes_total'),
      help: 'Times this replica saw the leader of its group change.',
      labelNames: ['group'] as const,
      registers,
    });
    this.proposalsCommitted = new FoldedCounter({
      name: raft('proposals_committed_total'),
      help: 'Entries committed and applied by this replica.',
      labelNames: ['group'] as const,
      registers,
    });
    this.proposalsFailed = new Counter({
      name: raft('proposals_failed_total'),
      help: 'Writes that failed on this replica, by reason (not leader, timeout, Raft error code).',
      labelNames: ['group', 'reason'] as const,
      registers,
    });
    this.proposalsBatched = new Histogram({
      name: raft('proposal_batch_size'),
      help: 'Commands proposed together in one Raft append.',
      labelNames: ['group'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    this.snapshotsSent = new Counter({
      name: raft('snapshots_sent_total'),
      help: 'State machine snapshots streamed to followers.',
      labelNames: ['group'] as const,
      registers,
    });
    this.snapshotsInstalled = new Counter({
      name: raft('snapshots_installed_total'),
      help: 'State machine snapshots received from the leader and installed.',
      labelNames: ['group'] as const,
      registers,
    });
    this.storageFaults = new Counter({
      name: `${metricPrefix}replica_storage_faults_total`,
      help: 'Storage faults this replica found in its state machine (checksum mismatches, unreadable blocks, lost batches, a lost engine, a state a consistency check found divergent).',
      labelNames: ['group'] as const,
      registers,
    });
    this.peerMessagesRefused = new Counter({
      name: `${metricPrefix}replica_peer_messages_refused_total`,
      help: 'Raft messages from authenticated peers dropped before the core saw them, by reason: unknownSender (not a member, and not a leader message from a node whose address the transport proved), removedSender (a removed member still running), localOnly (a proposal, read or transfer this host only makes locally), zeroTerm, inconsistentEntries, beyondLog (a commit or index past this log), badSnapshot.',
      labelNames: ['group', 'reason'] as const,
      registers,
    });
    this.rebuilds = new Counter({
      name: `${metricPrefix}replica_rebuilds_total`,
      help: "Rebuilds of this replica's state machine from its leader's snapshot, each ending a storage fault.",
      labelNames: ['group'] as const,
      registers,
    });
  }

  /** The metrics of the replica of `group`, reported from `status` until released. */
  bind(group: string, status: () => ReplicaStatus): ReplicaMetrics {
    this.statuses.set(group, status);
    this.logBytesByGroup.set(group, 0);
    for (const reason of peerMessageRefusals) this.peerMessagesRefused.labels({ group, reason });
    const counter = (family: Counter<'group'>): { inc(count?: number): void } => {
      const child = family.labels({ group });
      return { inc: (count?: number) => child.inc(count) };
    };
    const batched = this.proposalsBatched.labels({ group });
    const appendBytes = this.appendBytes.series({ group });
    const appendSeconds = this.appendSeconds.labels({ group });
    return {
      leaderChanges: counter(this.leaderChanges),
      proposalsCommitted: this.proposalsCommitted.series({ group }),
      proposalsFailed: {
        inc: ({ reason }, count) => this.proposalsFailed.inc({ group, reason }, count ?? 1),
      },
      proposalsBatched: { observe: (size) => batched.observe(size) },
      snapshotsSent: counter(this.snapshotsSent),
      snapshotsInstalled: counter(this.snapshotsInstalled),
      storageFaults: counter(this.storageFaults),
      rebuilds: counter(this.rebuilds),
      peerMessagesRefused: { inc: ({ reason }) => this.peerMessagesRefused.inc({ group, reason }) },
      observeAppend: (bytes, seconds) => {
        appendBytes.inc(bytes);
        appendSeconds.observe(seconds);
      },
      setLogBytes: (bytes) => {
        if (this.statuses.get(group) === status) this.logBytesByGroup.set(group, bytes);
      },
      release: () => {
        // A newer replica of the group (restarted in this process) may have bound meanwhile.
        if (this.statuses.get(group) !== status) return;
        this.statuses.delete(group);
        this.logBytesByGroup.delete(group);
      },
    };
  }
}

const families = new WeakMap<Registry, ReplicaMetricsFamily>();

/** The metrics of the replica of `group`, registered in `registry` once for every replica of it. */
export function createReplicaMetrics(
  registry: Registry,
  group: string,
  status: () => ReplicaStatus,
): ReplicaMetrics {
  let family = families.get(registry);
  if (family === undefined) {
    family = new ReplicaMetricsFamily(registry);
    families.set(registry, family);
  }
  return family.bind(group, status);
}
