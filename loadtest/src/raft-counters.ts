import { metricSum, parsePrometheusText } from './prometheus-text.js';

/**
 * What Impulse's processes count of their Raft work, summed over the processes of a cluster (a
 * replica process's metrics, or a node's, whose replicas' metrics carry a `group` label: the sums
 * are the same either way).
 */
export interface RaftCounters {
  /**
   * `impulse_raft_log_fsync_duration_seconds_count`, summed: a replica process's Raft log fsyncs.
   * A node's log makes one fdatasync durable for the writes of many groups and each of those
   * groups counts it, so for nodes this is the number of (fsync, group) pairs, an upper bound of
   * the fsyncs: count them in the kernel (`syscall-count.ts`) for the real number.
   */
  readonly groupFsyncs: number;
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
  groupFsyncs: 0,
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
      groupFsyncs: metricSum(samples, 'impulse_raft_log_fsync_duration_seconds_count'),
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
    groupFsyncs: left.groupFsyncs + right.groupFsyncs,
    committedEntries: left.committedEntries + right.committedEntries,
    messagesSent: left.messagesSent + right.messagesSent,
    messageFramesSent: left.messageFramesSent + right.messageFramesSent,
    coalescedHeartbeatEntries: left.coalescedHeartbeatEntries + right.coalescedHeartbeatEntries,
  };
}

/** What happened between two readings. */
export function countersBetween(before: RaftCounters, after: RaftCounters): RaftCounters {
  return {
    groupFsyncs: after.groupFsyncs - before.groupFsyncs,
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
