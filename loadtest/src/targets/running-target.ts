import type { RaftCounters } from '../raft-counters.js';
import type { KvTarget } from './kv-target.js';

/**
 * How an Impulse cluster is laid out. `nodes`: node processes, each hosting a replica of many
 * groups (`shard-node --node-id`, the production shape). `replicas`: one process per replica (the
 * shape before nodes); its `nodes` is the number of machines its replicas would need, one replica of
 * each group on each (the replicas per group), so that per-node figures compare.
 */
export interface ClusterShape {
  readonly kind: 'nodes' | 'replicas';
  readonly nodes: number;
  readonly groups: number;
  readonly replicasPerGroup: number;
}

/** A store started for a benchmark, with the processes that serve it (for CPU accounting). */
export interface RunningTarget {
  readonly name: string;
  readonly target: KvTarget;
  /** One line about what was started, for the report. */
  readonly description: string;
  processes(): ReadonlyArray<{ readonly name: string; readonly pid: number }>;
  /** Impulse only: the cluster's shape. */
  readonly shape?: ClusterShape;
  /**
   * Impulse only: Raft counters (log fsyncs, committed entries, peer messages and frames) summed
   * over every process, so that a run can report fsyncs per 1,000 writes and messages per frame.
   */
  raftCounters?(): Promise<RaftCounters>;
  stop(): Promise<void>;
}

/** `impulse`: the node shape (what `npm start` runs); `impulse-replicas`: a process per replica. */
export type TargetName = 'impulse' | 'impulse-replicas' | 'map' | 'etcd';
