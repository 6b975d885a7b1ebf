import { median } from './median.js';
import { countersBetween, type RaftCounters } from './raft-counters.js';
import { startSyncCount, syncCallsOf, type SyncSyscall } from './syscall-count.js';
import type { RunningTarget } from './targets/running-target.js';
import type { OperationKind } from './workload.js';

/** What the servers did during a run phase, besides answering: fsyncs, peer messages and frames. */
export interface RunWork {
  /** The Raft counters' growth (Impulse only). */
  readonly raft?: RaftCounters;
  /** fdatasync and fsync calls of each server process, counted in the kernel. */
  readonly syncCalls?: Readonly<Record<string, Readonly<Record<SyncSyscall, number>>>>;
  /** Why the kernel did not count them (perf missing, not allowed), when it did not. */
  readonly syncCallsUnavailable?: string;
}

/** A measurement of a run phase's work in progress. */
export interface WorkMeter {
  stop(): Promise<RunWork>;
}

/**
 * Starts measuring a target's work: reads its Raft counters now and again at `stop()`, and counts
 * its processes' sync calls in the kernel in between (when `countSyncs` and perf allows).
 */
export async function startWorkMeter(
  running: RunningTarget,
  options: { readonly countSyncs: boolean },
): Promise<WorkMeter> {
  const syncCount = options.countSyncs ? await startSyncCount() : { reason: 'not asked for' };
  const before = await running.raftCounters?.();
  return {
    stop: async () => {
      const after = await running.raftCounters?.();
      const raft = before === undefined || after === undefined ? undefined : countersBetween(before, after);
      if (!('count' in syncCount)) {
        return { ...(raft === undefined ? {} : { raft }), syncCallsUnavailable: syncCount.reason };
      }
      const counts = await syncCount.count.stop();
      const syncCalls: Record<string, Record<SyncSyscall, number>> = {};
      for (const { name, pid } of running.processes()) syncCalls[name] = syncCallsOf(counts, [pid]);
      return { ...(raft === undefined ? {} : { raft }), syncCalls };
    },
  };
}

/** The machines a target's processes stand for: a cluster's nodes, or etcd's members. */
export function nodesOf(running: RunningTarget): number {
  return running.shape?.nodes ?? running.processes().length;
}

const writeKinds: readonly OperationKind[] = ['update', 'insert', 'readModifyWrite'];

/** The write operations of a run phase (updates, inserts, read-modify-writes), from their latency counts. */
export function writeOperationsOf(
  latencyByKind: Readonly<Record<string, { readonly count: number }>>,
): number {
  return writeKinds.reduce((sum, kind) => sum + (latencyByKind[kind]?.count ?? 0), 0);
}

/** A run's work per unit: what the benchmarks print and the docs compare. */
export interface WorkFigures {
  /** fdatasync + fsync calls per 1,000 writes, per node (the servers' calls over `nodes`). */
  readonly syncsPerThousandWritesPerNode?: number;
  /**
   * Raft log fsyncs (each once, as the processes' logs count them) per 1,000 entries committed,
   * with the entries summed over replicas: a node's shared fsync makes many groups' entries durable.
   */
  readonly logFsyncsPerThousandEntries?: number;
  /** Raft messages per frame that carried messages, over every peer connection. */
  readonly messagesPerFrame?: number;
}

/**
 * Figures of a run's work: `writes` is the run's write operations, `nodes` the number of server
 * machines the processes stand for (a cluster's nodes; etcd's members).
 */
export function workFigures(work: RunWork, writes: number, nodes: number): WorkFigures {
  const figures: {
    syncsPerThousandWritesPerNode?: number;
    logFsyncsPerThousandEntries?: number;
    messagesPerFrame?: number;
  } = {};
  if (work.syncCalls !== undefined && writes > 0 && nodes > 0) {
    let syncs = 0;
    for (const calls of Object.values(work.syncCalls)) syncs += calls.fdatasync + calls.fsync;
    figures.syncsPerThousandWritesPerNode = ((syncs / nodes) * 1000) / writes;
  }
  const raft = work.raft;
  if (raft !== undefined) {
    if (raft.committedEntries > 0) {
      figures.logFsyncsPerThousandEntries = (raft.logFsyncs / raft.committedEntries) * 1000;
    }
    if (raft.messageFramesSent > 0) figures.messagesPerFrame = raft.messagesSent / raft.messageFramesSent;
  }
  return figures;
}

/** One line about a run's work, for stderr: `impulse: 312 fsyncs per 1,000 writes per node ...`. */
export function workLine(name: string, work: RunWork, figures: WorkFigures): string {
  const parts: string[] = [];
  if (figures.syncsPerThousandWritesPerNode !== undefined) {
    parts.push(
      `${figures.syncsPerThousandWritesPerNode.toFixed(0)} fdatasync+fsync calls per 1,000 writes per node (kernel count)`,
    );
  } else if (work.syncCallsUnavailable !== undefined) {
    parts.push(`no kernel fsync count (${work.syncCallsUnavailable})`);
  }
  const raft = work.raft;
  if (raft !== undefined) {
    parts.push(
      `${raft.logFsyncs} Raft log fsyncs for ${raft.committedEntries} committed entries summed over replicas ` +
        `(${figures.logFsyncsPerThousandEntries?.toFixed(0) ?? 'n/a'} per 1,000)`,
    );
    parts.push(
      `${raft.messagesSent} peer messages in ${raft.messageFramesSent} frames (${figures.messagesPerFrame?.toFixed(1) ?? 'n/a'} per frame` +
        `${raft.coalescedHeartbeatEntries > 0 ? `; ${raft.coalescedHeartbeatEntries} heartbeats coalesced` : ''})`,
    );
  }
  return `bench: ${name}: ${parts.join('; ')}`;
}

/** The median over runs of each figure (a figure absent from a run is left out of its median). */
export function medianWorkFigures(runs: readonly WorkFigures[]): WorkFigures {
  const medianOf = (pick: (figures: WorkFigures) => number | undefined): number | undefined => {
    const values = runs.flatMap((figures) => {
      const value = pick(figures);
      return value === undefined ? [] : [value];
    });
    return values.length === 0 ? undefined : median(values);
  };
  const syncs = medianOf((figures) => figures.syncsPerThousandWritesPerNode);
  const logFsyncs = medianOf((figures) => figures.logFsyncsPerThousandEntries);
  const messages = medianOf((figures) => figures.messagesPerFrame);
  return {
    ...(syncs === undefined ? {} : { syncsPerThousandWritesPerNode: syncs }),
    ...(logFsyncs === undefined ? {} : { logFsyncsPerThousandEntries: logFsyncs }),
    ...(messages === undefined ? {} : { messagesPerFrame: messages }),
  };
}
