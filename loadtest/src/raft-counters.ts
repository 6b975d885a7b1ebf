import { metricSum, parsePrometheusText } from './prometheus-text.js';

/**
 * What Impulse's processes count of their Raft work, summed over the processes of a cluster (a
 * replica process's metrics, or a node's, whose replicas' metrics carry a `group` label: the sums
 * are the same either way).
 */
export interface RaftCounters {
  /**
   * `impulse_raft_log_fsync_duration_seconds_count`, summed: the Raft log fsyncs of every process,
   * each counted once (a node's one log, shared by its groups; a replica process's own log). The
   * kernel's count (`syscall-count.ts`) adds the state machines' fsyncs.
   */
  readonly logFsyncs: number;
  /** Entries committed and applied, summed over replicas: a write counts once per replica. */
  readonly committedEntries: number;
  /** Raft messages written to peer connections. */
  readonly messagesSent: number;
  /** Frames that carried Raft messages (kinds `messages` and `groupMessages`). */
  readonly messageFramesSent: number;
  /** Per-group heartbeats and responses that travelled inside a node's coalesced heartbeats. */
  readonly coalescedHeartbeatEntries: number;
}

export const zeroRaftCounters: RaftCounters = {
  logFsyncs: 0,
  committedEntries: 0,
  messagesSent: 0,
  messageFramesSent: 0,
  coalescedHeartbeatEntries: 0,
};

const messageFrameKinds = new Set(['messages', 'groupMessages']);

/** The counters of a cluster, from each of its processes' `/metrics` page. */
export function raftCountersOf(pages: readonly string[]): RaftCounters {
  let counters = zeroRaftCounters;
  for (const page of pages) {
    const samples = parsePrometheusText(page);
    counters = addCounters(counters, {
      logFsyncs: metricSum(samples, 'impulse_raft_log_fsync_duration_seconds_count'),
      committedEntries: metricSum(samples, 'impulse_raft_proposals_committed_total'),
      messagesSent: metricSum(samples, 'impulse_transport_messages_sent_total'),
      messageFramesSent: metricSum(samples, 'impulse_transport_frames_sent_total', (labels) =>
        messageFrameKinds.has(labels['kind'] ?? ''),
      ),
      coalescedHeartbeatEntries: metricSum(
        samples,
        'impulse_transport_coalesced_heartbeat_entries_sent_total',
      ),
    });
  }
  return counters;
}

function addCounters(left: RaftCounters, right: RaftCounters): RaftCounters {
  return {
    logFsyncs: left.logFsyncs + right.logFsyncs,
    committedEntries: left.committedEntries + right.committedEntries,
    messagesSent: left.messagesSent + right.messagesSent,
    messageFramesSent: left.messageFramesSent + right.messageFramesSent,
    coalescedHeartbeatEntries: left.coalescedHeartbeatEntries + right.coalescedHeartbeatEntries,
  };
}

/** What happened between two readings. */
export function countersBetween(before: RaftCounters, after: RaftCounters): RaftCounters {
  return {
    logFsyncs: after.logFsyncs - before.logFsyncs,
    committedEntries: after.committedEntries - before.committedEntries,
    messagesSent: after.messagesSent - before.messagesSent,
    messageFramesSent: after.messageFramesSent - before.messageFramesSent,
    coalescedHeartbeatEntries: after.coalescedHeartbeatEntries - before.coalescedHeartbeatEntries,
  };
}

/** Reads every URL's `/metrics` page and sums the counters. */
export async function readRaftCounters(processUrls: readonly string[]): Promise<RaftCounters> {
  const pages = await Promise.all(
    processUrls.map(async (url) => {
      const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
      return response.text();
    }),
  );
  return raftCountersOf(pages);
}
