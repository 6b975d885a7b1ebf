import { peerMessageRefusals } from './peer-message-check.js';
import {
  Counter,
  Gauge,
  Histogram,
  latencyBucketsSeconds,
  metricPrefix,
  type Registry,
} from '@impulse/common';
import type { ReplicaStatus } from './replica.js';

export interface ReplicaMetrics {
  readonly leaderChanges: Counter;
  readonly proposalsCommitted: Counter;
  readonly proposalsFailed: Counter<'reason'>;
  readonly proposalsBatched: Histogram;
  readonly snapshotsSent: Counter;
  readonly snapshotsInstalled: Counter;
  /** Storage faults this replica entered (one at a time: a fault lasts until the replica is rebuilt). */
  readonly storageFaults: Counter;
  /** Rebuilds of this replica's state machine from its leader's snapshot, each ending a fault. */
  readonly rebuilds: Counter;
  /** Peer messages dropped before the core saw them (`peer-message-check.ts`), by reason. */
  readonly peerMessagesRefused: Counter<'reason'>;
  observeAppend(bytes: number, seconds: number): void;
  observeFsync(seconds: number): void;
  setLogBytes(bytes: number): void;
}

/**
 * The Raft metrics of one replica. Gauges that mirror the core's state (term, role, indexes) are
 * read from `status()` when Prometheus scrapes, so the hot path pays nothing for them.
 */
export function createReplicaMetrics(registry: Registry, status: () => ReplicaStatus): ReplicaMetrics {
  const registers = [registry];
  const gauge = (name: string, help: string, value: (current: ReplicaStatus) => number): void => {
    new Gauge({
      name: `${metricPrefix}raft_${name}`,
      help,
      registers,
      collect() {
        this.set(value(status()));
      },
    });
  };
  gauge('term', 'The current Raft term.', (current) => current.term);
  gauge('is_leader', '1 when this replica is the leader of its group, else 0.', (current) =>
    current.role === 'leader' ? 1 : 0,
  );
  gauge('commit_index', 'The highest log index known to be committed.', (current) => current.commitIndex);
  gauge(
    'applied_index',
    'The highest log index applied to the state machine.',
    (current) => current.appliedIndex,
  );
  gauge('last_index', 'The index of the last entry in the log.', (current) => current.lastIndex);
  gauge(
    'snapshot_index',
    'The index of the latest snapshot (the log is compacted behind it).',
    (current) => current.snapshotIndex,
  );
  gauge('proposals_pending', 'Writes proposed and not yet applied.', (current) => current.pendingProposals);
  new Gauge({
    name: `${metricPrefix}replica_storage_fault`,
    help: '1 while this replica has a storage fault (its state machine is damaged: it serves nothing and never leads until rebuilt), else 0.',
    registers,
    collect() {
      this.set(status().storageFault === null ? 0 : 1);
    },
  });
  const logBytes = new Gauge({
    name: `${metricPrefix}raft_log_bytes`,
    help: 'Bytes of the Raft log segment files.',
    registers,
  });
  const appendBytes = new Counter({
    name: `${metricPrefix}raft_log_append_bytes_total`,
    help: 'Bytes appended to the Raft log.',
    registers,
  });
  const appendSeconds = new Histogram({
    name: `${metricPrefix}raft_log_append_duration_seconds`,
    help: 'Time to write one batch of records to the Raft log (before fsync).',
    buckets: latencyBucketsSeconds,
    registers,
  });
  const fsyncSeconds = new Histogram({
    name: `${metricPrefix}raft_log_fsync_duration_seconds`,
    help: 'Time of one fsync of the Raft log; one per Ready, however many entries it holds.',
    buckets: latencyBucketsSeconds,
    registers,
  });
  return {
    leaderChanges: new Counter({
      name: `${metricPrefix}raft_leader_changes_total`,
      help: 'Times this replica saw the leader of its group change.',
      registers,
    }),
    proposalsCommitted: new Counter({
      name: `${metricPrefix}raft_proposals_committed_total`,
      help: 'Entries committed and applied by this replica.',
      registers,
    }),
    proposalsFailed: new Counter({
      name: `${metricPrefix}raft_proposals_failed_total`,
      help: 'Writes that failed on this replica, by reason (not leader, timeout, Raft error code).',
      labelNames: ['reason'] as const,
      registers,
    }),
    proposalsBatched: new Histogram({
      name: `${metricPrefix}raft_proposal_batch_size`,
      help: 'Commands proposed together in one Raft append.',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    }),
    snapshotsSent: new Counter({
      name: `${metricPrefix}raft_snapshots_sent_total`,
      help: 'State machine snapshots streamed to followers.',
      registers,
    }),
    snapshotsInstalled: new Counter({
      name: `${metricPrefix}raft_snapshots_installed_total`,
      help: 'State machine snapshots received from the leader and installed.',
      registers,
    }),
    storageFaults: new Counter({
      name: `${metricPrefix}replica_storage_faults_total`,
      help: 'Storage faults this replica found in its state machine (checksum mismatches, unreadable blocks, lost batches, a lost engine, a state a consistency check found divergent).',
      registers,
    }),
    peerMessagesRefused: (() => {
      const counter = new Counter({
        name: `${metricPrefix}replica_peer_messages_refused_total`,
        help: 'Raft messages from authenticated peers dropped before the core saw them, by reason: unknownSender, localOnly (a proposal, read or transfer this host only makes locally), zeroTerm, inconsistentEntries, beyondLog (a commit or index past this log), badSnapshot.',
        labelNames: ['reason'] as const,
        registers,
      });
      for (const reason of peerMessageRefusals) counter.labels({ reason });
      return counter;
    })(),
    rebuilds: new Counter({
      name: `${metricPrefix}replica_rebuilds_total`,
      help: "Rebuilds of this replica's state machine from its leader's snapshot, each ending a storage fault.",
      registers,
    }),
    observeAppend(bytes, seconds) {
      appendBytes.inc(bytes);
      appendSeconds.observe(seconds);
    },
    observeFsync(seconds) {
      fsyncSeconds.observe(seconds);
    },
    setLogBytes(bytes) {
      logBytes.set(bytes);
    },
  };
}
