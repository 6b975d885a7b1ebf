import type { KvTarget } from './kv-target.js';

/** A store started for a benchmark, with the processes that serve it (for CPU accounting). */
export interface RunningTarget {
  readonly name: string;
  readonly target: KvTarget;
  /** One line about what was started, for the report. */
  readonly description: string;
  processes(): ReadonlyArray<{ readonly name: string; readonly pid: number }>;
  /**
   * Impulse only: Raft log fsyncs and committed entries, summed over every replica, so that a run
   * can report fsyncs per 1,000 writes (the effect of group commit).
   */
  raftCounters?(): Promise<{ readonly fsyncs: number; readonly committedEntries: number }>;
  stop(): Promise<void>;
}

export type TargetName = 'impulse' | 'map' | 'etcd';
