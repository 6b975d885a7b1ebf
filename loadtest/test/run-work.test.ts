import { describe, expect, it } from 'vitest';
import { metricSum, parsePrometheusText } from '../src/prometheus-text.js';
import { countersBetween, raftCountersOf, zeroRaftCounters } from '../src/raft-counters.js';
import { medianWorkFigures, workFigures, workLine, writeOperationsOf } from '../src/run-work.js';
import { parsePerfScript, syncCallsOf } from '../src/syscall-count.js';

/** A node's page: its log's metrics the node's, its replicas' labelled by group, its transport's by peer node. */
const nodePage = `# HELP impulse_raft_log_fsync_duration_seconds Time of one fsync of the Raft log.
# TYPE impulse_raft_log_fsync_duration_seconds histogram
impulse_raft_log_fsync_duration_seconds_bucket{le="0.001",service="shard-node",node="n1"} 3
impulse_raft_log_fsync_duration_seconds_count{service="shard-node",node="n1"} 39
impulse_raft_proposals_committed_total{group="g1",service="shard-node",node="n1"} 17
impulse_raft_proposals_committed_total{group="g2",service="shard-node",node="n1"} 20
impulse_transport_messages_sent_total{peer="127.0.0.1:26720",group="g1",type="MsgAppResp",service="shard-node",node="n1"} 34
impulse_transport_messages_sent_total{peer="127.0.0.1:26720",group="g2",type="MsgHeartbeatResp",service="shard-node",node="n1"} 23
impulse_transport_frames_sent_total{peer="127.0.0.1:26720",kind="nodeHello",service="shard-node",node="n1"} 2
impulse_transport_frames_sent_total{peer="127.0.0.1:26720",kind="auth",service="shard-node",node="n1"} 1
impulse_transport_frames_sent_total{peer="127.0.0.1:26720",kind="groupMessages",service="shard-node",node="n1"} 19
impulse_transport_coalesced_heartbeat_entries_sent_total{peer="127.0.0.1:26720",service="shard-node",node="n1"} 12
`;

/** A replica process's page: one group, its transport's frames of kind `messages`. */
const replicaPage = `impulse_raft_log_fsync_duration_seconds_count{group="g1",replica="g1-r1"} 5
impulse_raft_proposals_committed_total{group="g1"} 10
impulse_transport_messages_sent_total{peer="2",group="g1",type="MsgApp"} 8
impulse_transport_frames_sent_total{peer="2",kind="hello"} 1
impulse_transport_frames_sent_total{peer="2",kind="messages"} 4
`;

describe('Prometheus text', () => {
  it('reads names, labels (escapes included) and values, and skips comments', () => {
    const samples = parsePrometheusText(
      '# HELP x y\nplain 3\nwith{a="1",b="say \\"hi\\""} 2.5 1700000000\nbroken{a="1"} NaN\n\n',
    );
    expect(samples).toEqual([
      { name: 'plain', labels: {}, value: 3 },
      { name: 'with', labels: { a: '1', b: 'say "hi"' }, value: 2.5 },
      { name: 'broken', labels: { a: '1' }, value: Number.NaN },
    ]);
    expect(metricSum(samples, 'with')).toBe(2.5);
    expect(metricSum(samples, 'broken')).toBe(0);
  });

  it('sums a metric over every label set, or those a filter keeps', () => {
    const samples = parsePrometheusText(nodePage);
    expect(metricSum(samples, 'impulse_raft_proposals_committed_total')).toBe(37);
    expect(
      metricSum(samples, 'impulse_transport_frames_sent_total', (labels) => labels['kind'] === 'auth'),
    ).toBe(1);
    // The histogram's buckets are another metric than its count.
    expect(metricSum(samples, 'impulse_raft_log_fsync_duration_seconds_count')).toBe(39);
  });
});

describe('Raft counters', () => {
  it("sums a node's groups and a replica process's, counting only frames that carry messages", () => {
    expect(raftCountersOf([nodePage, replicaPage])).toEqual({
      logFsyncs: 44,
      committedEntries: 47,
      messagesSent: 65,
      messageFramesSent: 23,
      coalescedHeartbeatEntries: 12,
    });
    expect(raftCountersOf([])).toEqual(zeroRaftCounters);
  });

  it('subtracts two readings', () => {
    const before = raftCountersOf([replicaPage]);
    const after = raftCountersOf([replicaPage, replicaPage]);
    expect(countersBetween(before, after)).toEqual(before);
  });
});

describe('kernel sync counts', () => {
  it('reads perf script lines by process, and adds up the processes asked for', () => {
    const counts = parsePerfScript(
      [
        '  1234 syscalls:sys_enter_fdatasync: ',
        '  1234 syscalls:sys_enter_fdatasync: ',
        '  1234     syscalls:sys_enter_fsync: ',
        '    77 syscalls:sys_enter_fdatasync: ',
        '    77 syscalls:sys_enter_write: ',
        'garbage',
      ].join('\n'),
    );
    expect(counts.get(1234)).toEqual({ fdatasync: 2, fsync: 1 });
    expect(counts.get(77)).toEqual({ fdatasync: 1, fsync: 0 });
    expect(syncCallsOf(counts, [1234, 77, 5])).toEqual({ fdatasync: 3, fsync: 1 });
  });
});

describe('work figures', () => {
  const work = {
    raft: {
      ...zeroRaftCounters,
      logFsyncs: 300,
      committedEntries: 3000,
      messagesSent: 900,
      messageFramesSent: 300,
    },
    syncCalls: {
      n1: { fdatasync: 100, fsync: 2 },
      n2: { fdatasync: 98, fsync: 0 },
      gateway: { fdatasync: 0, fsync: 0 },
    },
  };

  it('gives fsyncs per 1,000 writes per node, log fsyncs per 1,000 entries, and messages per frame', () => {
    expect(workFigures(work, 1000, 2)).toEqual({
      syncsPerThousandWritesPerNode: 100,
      logFsyncsPerThousandEntries: 100,
      messagesPerFrame: 3,
    });
    expect(workFigures({}, 1000, 2)).toEqual({});
    expect(workFigures(work, 0, 2).syncsPerThousandWritesPerNode).toBeUndefined();
    expect(workLine('impulse', work, workFigures(work, 1000, 2))).toContain(
      '100 fdatasync+fsync calls per 1,000 writes per node',
    );
    expect(workLine('impulse', { syncCallsUnavailable: 'no perf' }, {})).toBe(
      'bench: impulse: no kernel fsync count (no perf)',
    );
  });

  it('counts the write operations of a run and takes medians over runs', () => {
    const latency = { count: 5 };
    expect(
      writeOperationsOf({ read: latency, update: latency, insert: latency, readModifyWrite: latency }),
    ).toBe(15);
    expect(
      medianWorkFigures([
        { syncsPerThousandWritesPerNode: 1, messagesPerFrame: 4 },
        { syncsPerThousandWritesPerNode: 3 },
        { syncsPerThousandWritesPerNode: 2, messagesPerFrame: 2 },
      ]),
    ).toEqual({ syncsPerThousandWritesPerNode: 2, messagesPerFrame: 3 });
  });
});
