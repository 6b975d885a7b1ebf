/**
 * A node: one process's host of replicas of many groups (at most one replica per group), over one
 * data directory, one Raft log shared by its groups (`NodeLog`: one fdatasync per round for every
 * group) and one metrics registry. Replicas are added and removed at run time. A replica that fails
 * (a failed write to its log, a failed apply) is stopped and reported, and the node and its other
 * replicas go on: one group's failure never exits the process or touches another group.
 *
 * Layout of the data directory: `raft/` is the node log; `engine/` is the node's LevelDB, which
 * holds every group's state machine under the group's prefix (`NodeEngine`, decision 0019);
 * `groups/<group>/state/` holds each state machine's pointer to its live generation. The node log deletes a segment only once no group needs it; `LogPurge`
 * (`log-purge.ts`) asks the groups that keep its oldest segments to compact once it grows. Time,
 * file system and transport are injected, so that the node simulator runs this same class
 * (`raft-sim/node/sim-node.ts`).
 */
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  Counter,
  Gauge,
  ImpulseError,
  metricPrefix,
  nodeFileSystem,
  syncDirectory,
  type FileSystem,
  type Logger,
  type Registry,
} from '@impulse/common';
import type { NodeId } from '../raft/index.js';
import { NodeLog, isGroupId } from '../raft-log/index.js';
import {
  Replica,
  nodeLogObserverOf,
  systemScheduler,
  type MemberSpec,
  type OpenReplicaTransport,
  type ReplicaOptions,
  type Scheduler,
} from '../replica/index.js';
import { NodeEngine } from '../storage/index.js';
import { forEachConcurrently } from './for-each-concurrently.js';
import { nodeEngineObserverOf } from './node-engine-metrics.js';
import { LogPurge, type ForcedCompactionOutcome, type LogPurgeSettings } from './log-purge.js';

/** Everything a replica takes that is the same for every replica of the node. */
export type ReplicaSettings = Omit<
  ReplicaOptions,
  | 'groupId'
  | 'self'
  | 'initialMembers'
  | 'join'
  | 'bootstrap'
  | 'dataDirectory'
  | 'logger'
  | 'registry'
  | 'onFailure'
  | 'scheduler'
  | 'openTransport'
  | 'openLog'
  | 'fileSystem'
  | 'peerListenHost'
  | 'peerListenPort'
  | 'adjustCore'
  | 'wrapEngine'
  | 'generationSpace'
>;

/** One replica the node hosts: its group, its own member entry, the founding members. */
export interface HostedReplica {
  readonly groupId: string;
  readonly self: MemberSpec;
  readonly initialMembers: readonly MemberSpec[];
  /** Joins a live group as a learner rather than founding it (see `ReplicaOptions.join`). */
  readonly join: boolean;
  /** This is the group's first start here: an empty directory founds it (`ReplicaOptions.bootstrap`). */
  readonly bootstrap: boolean;
}

export interface NodeOptions {
  readonly nodeId: string;
  readonly dataDirectory: string;
  readonly settings: ReplicaSettings;
  /** The transport of the replica of `groupId` with Raft id `raftId` (one connection per node pair). */
  readonly openTransport: (groupId: string, raftId: NodeId) => OpenReplicaTransport;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Default: the process's clock and timers. */
  readonly scheduler?: Scheduler;
  /** Default: the real file system. */
  readonly fileSystem?: FileSystem;
  /** Default: `node`, the shared log. `replica`: a log of its own per replica (`RaftLogStore`). */
  readonly logs?: 'node' | 'replica';
  /**
   * LevelDB only. Default: `node`, one LevelDB for every group's state machine (`NodeEngine`,
   * decision 0019). `replica`: a LevelDB of its own per replica (decision 0011's layout).
   */
  readonly stateEngines?: 'node' | 'replica';
  /**
   * When the node asks the groups that keep its log's oldest segments to compact (see
   * `log-purge.ts`). Default `logPurgeDefaults`; `off` never asks. Ignored with `logs: 'replica'`
   * (each replica's own log deletes its own segments).
   */
  readonly logPurge?: Partial<LogPurgeSettings> | 'off';
  /** Told of every compaction the node asked for, with its outcome (the simulator counts them). */
  readonly onForcedCompaction?: (groupId: string, outcome: ForcedCompactionOutcome) => void;
  /** Told of every replica failure, after it is recorded (the simulator counts each as a bug). */
  readonly onReplicaFailure?: (failure: ReplicaFailure, error: unknown) => void;
  /**
   * Replicas `start` opens at once. Default `replicaOpensInFlightMax`; 1 opens them one after
   * another (`npm run bench:node-start` compares the two).
   */
  readonly replicaOpensInFlightMax?: number;
  /** Test-only hooks for the replica of a group (the simulator and tests plant bugs through them). */
  readonly replicaHooks?: (groupId: string) => Pick<ReplicaOptions, 'adjustCore' | 'wrapEngine'>;
}

/** Why a hosted replica is not running, and since when. */
export interface ReplicaFailure {
  readonly groupId: string;
  readonly message: string;
  readonly code: string | null;
  readonly atMs: number;
}

/** The bound on replicas one node hosts (the node log's checkpoints list every group). */
export const nodeReplicasMax = 1024;

/**
 * Replicas a node opens at once when it starts. Opening one is mostly waiting (its state machine's
 * files on libuv's threads, its share of the node log, whose creations share one fdatasync per
 * round), so that a few at a time overlap their waits: one after another, a node of 256 groups
 * took 9 to 46 s to start. More at a time would only queue on the same four threads and disk
 * while holding every opening replica's buffers at once.
 */
export const replicaOpensInFlightMax = 8;

export class Node {
  private readonly replicas = new Map<string, Replica>();
  private readonly failures = new Map<string, ReplicaFailure>();
  /** Groups being started or stopped: a second add or remove of one of them is refused meanwhile. */
  private readonly changing = new Set<string>();
  private stopped = false;
  private readonly scheduler: Scheduler;
  private readonly fs: FileSystem;
  private readonly metrics: NodeMetrics;
  private readonly logPurge: LogPurge | undefined;

  private constructor(
    private readonly options: NodeOptions,
    private readonly nodeLog: NodeLog | undefined,
    private readonly nodeEngine: NodeEngine | undefined,
  ) {
    this.scheduler = options.scheduler ?? systemScheduler;
    this.fs = options.fileSystem ?? nodeFileSystem;
    this.metrics = nodeMetricsOf(options.registry, this);
    this.logPurge =
      nodeLog === undefined
        ? undefined
        : new LogPurge({
            log: nodeLog,
            replicaOf: (groupId) => (this.changing.has(groupId) ? 'changing' : this.replicas.get(groupId)),
            scheduler: this.scheduler,
            logger: options.logger.child({ component: 'log-purge' }),
            registry: options.registry,
            settings: options.logPurge,
            onOutcome: options.onForcedCompaction,
          });
  }

  /**
   * Opens the node's log and starts every replica in `hosted`, `options.replicaOpensInFlightMax`
   * at a time, in no particular order. A replica that cannot start is recorded as failed
   * (`failedReplicas`), and the others start all the same.
   */
  static async start(options: NodeOptions, hosted: readonly HostedReplica[]): Promise<Node> {
    const fs = options.fileSystem ?? nodeFileSystem;
    const scheduler = options.scheduler ?? systemScheduler;
    const nodeLog =
      options.logs === 'replica'
        ? undefined
        : await NodeLog.open({
            directory: join(options.dataDirectory, 'raft'),
            fileSystem: fs,
            ...(options.settings.logSegmentBytesMax === undefined
              ? {}
              : { segmentBytesMax: options.settings.logSegmentBytesMax }),
            // The log's rounds are the node's: every group's writes of one round, one fdatasync.
            schedule: (run) => scheduler.setImmediate(run),
            clockSeconds: () => scheduler.nowMs() / 1000,
            // The node's log metrics: each fsync once, not once per group whose write it carried.
            observer: nodeLogObserverOf(options.registry),
            logger: options.logger.child({ component: 'node-log' }),
          });
    let nodeEngine: NodeEngine | undefined;
    try {
      nodeEngine =
        options.settings.engine !== 'leveldb' || options.stateEngines === 'replica'
          ? undefined
          : await NodeEngine.open({
              directory: join(options.dataDirectory, 'engine'),
              observer: nodeEngineObserverOf(options.registry),
            });
    } catch (error) {
      await nodeLog?.close();
      throw error;
    }
    const node = new Node(options, nodeLog, nodeEngine);
    const inFlightMax = options.replicaOpensInFlightMax ?? replicaOpensInFlightMax;
    await forEachConcurrently(hosted, inFlightMax, async (replica) => {
      // Recorded as failed by addReplica: the node starts with its other replicas.
      await node.addReplica(replica).catch(() => undefined);
    });
    // Once the hosted replicas run: before, every group in the log would count as not running.
    node.logPurge?.start();
    return node;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** The running replica of `groupId`, if the node hosts one that has not failed. */
  replicaOf(groupId: string): Replica | undefined {
    return this.replicas.get(groupId);
  }

  /** The running replicas, by group. */
  runningReplicas(): ReadonlyMap<string, Replica> {
    return this.replicas;
  }

  /** The hosted replicas that failed, and why. */
  failedReplicas(): ReplicaFailure[] {
    return [...this.failures.values()];
  }

  /**
   * Starts a replica of `hosted.groupId` here. Refused when the node already hosts one (a node
   * holds at most one replica of a group), is at `nodeReplicasMax`, or is stopping. A replica that
   * fails to start is recorded as failed, and the error is returned to the caller too.
   */
  async addReplica(hosted: HostedReplica): Promise<Replica> {
    const { groupId } = hosted;
    if (this.stopped) throw new ImpulseError('NOT_READY', `node ${this.nodeId} is stopping`);
    if (!isGroupId(groupId))
      throw new ImpulseError('INVALID_REQUEST', `${JSON.stringify(groupId)} is not a group id`);
    if (this.replicas.has(groupId) || this.changing.has(groupId))
      throw new ImpulseError(
        'MEMBERSHIP_CHANGE_REFUSED',
        `node ${this.nodeId} already hosts a replica of ${groupId}`,
      );
    if (this.replicas.size + this.changing.size >= nodeReplicasMax)
      throw new ImpulseError(
        'TOO_MANY_REQUESTS',
        `node ${this.nodeId} hosts ${nodeReplicasMax} replicas, its most`,
      );
    this.changing.add(groupId);
    this.failures.delete(groupId);
    const logger = this.options.logger.child({ groupId, replicaId: hosted.self.replicaId });
    try {
      const nodeLog = this.nodeLog;
      const replica = await Replica.start({
        ...this.options.settings,
        ...this.options.replicaHooks?.(groupId),
        ...(this.options.settings.randomSeed === undefined
          ? {}
          : // Each group its own stream, so that a node's groups do not time out in step.
            { randomSeed: (this.options.settings.randomSeed + crc32(groupId)) >>> 0 }),
        groupId,
        self: hosted.self,
        initialMembers: hosted.initialMembers,
        join: hosted.join,
        bootstrap: hosted.bootstrap,
        peerListenHost: hosted.self.peerHost,
        dataDirectory: join(this.options.dataDirectory, 'groups', groupId),
        logger,
        registry: this.options.registry,
        scheduler: this.scheduler,
        fileSystem: this.fs,
        openTransport: this.options.openTransport(groupId, hosted.self.raftId),
        ...(nodeLog === undefined
          ? {}
          : { openLog: ({ confState, observer }) => nodeLog.group(groupId, { confState, observer }) }),
        ...(this.nodeEngine === undefined ? {} : { generationSpace: this.nodeEngine.space(groupId) }),
        onFailure: (error) => this.replicaFailed(groupId, error),
      });
      if (this.stopped) {
        await replica.stop();
        throw new ImpulseError('NOT_READY', `node ${this.nodeId} is stopping`);
      }
      this.replicas.set(groupId, replica);
      return replica;
    } catch (error) {
      this.recordFailure(groupId, error);
      throw error;
    } finally {
      this.changing.delete(groupId);
    }
  }

  /**
   * Stops the replica of `groupId` and deletes what it stored (its share of the node log and its
   * state machine): the group no longer lives here. For a replica removed from its group (or
   * moved elsewhere) only: the data is gone for good.
   */
  async removeReplica(groupId: string): Promise<void> {
    if (this.changing.has(groupId))
      throw new ImpulseError(
        'MEMBERSHIP_CHANGE_REFUSED',
        `the replica of ${groupId} is being started or stopped`,
      );
    this.changing.add(groupId);
    try {
      const replica = this.replicas.get(groupId);
      this.replicas.delete(groupId);
      this.failures.delete(groupId);
      await replica?.stop();
      await this.dropStored(groupId);
    } finally {
      this.changing.delete(groupId);
    }
  }

  /**
   * Deletes what an earlier replica of `groupId` left here, before a new replica of the group (a
   * joiner under a new raft id) starts on this node: its share of the node log and its folder,
   * which a crash between a removal's steps, or a power cut that undid a removal not yet durable,
   * may have left. A new replica must never adopt another's vote, log or state. Refused while the
   * node hosts a replica of the group.
   */
  async clearLeftovers(groupId: string): Promise<void> {
    if (!isGroupId(groupId))
      throw new ImpulseError('INVALID_REQUEST', `${JSON.stringify(groupId)} is not a group id`);
    if (this.replicas.has(groupId) || this.changing.has(groupId))
      throw new ImpulseError(
        'MEMBERSHIP_CHANGE_REFUSED',
        `node ${this.nodeId} hosts a replica of ${groupId}, or is starting or stopping one`,
      );
    this.changing.add(groupId);
    try {
      this.failures.delete(groupId);
      await this.dropStored(groupId);
    } finally {
      this.changing.delete(groupId);
    }
  }

  /**
   * Removes the group from the node log (a durable record), then its keys from the node engine,
   * then its folder, then makes the folder's removal durable: a power cut after this must not
   * bring the old state back. (Keys the power cut brings back are deleted when a replica of the
   * group is next created here: its folder has no `GENERATION`.)
   */
  private async dropStored(groupId: string): Promise<void> {
    await this.nodeLog?.removeGroup(groupId);
    await this.nodeEngine?.space(groupId).removeAll();
    const groups = join(this.options.dataDirectory, 'groups');
    await this.fs.rm(join(groups, groupId), { recursive: true, force: true });
    try {
      await syncDirectory(groups, this.fs);
    } catch (error) {
      // No groups folder: nothing was ever stored here, so nothing to make durable.
      if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
    }
  }

  /** Stops every replica, then closes the node log. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.logPurge?.stop();
    const replicas = [...this.replicas.values()];
    this.replicas.clear();
    for (const replica of replicas) await replica.stop();
    await this.nodeLog?.close();
    await this.nodeEngine?.close();
    this.metrics.release();
  }

  /**
   * A replica's Ready loop failed: it stops serving at once (the replica did that), and here it is
   * stopped for good and reported. Its log and state machine are closed as they are: a restart of
   * the node retries it from its durable state.
   */
  private replicaFailed(groupId: string, error: unknown): void {
    this.recordFailure(groupId, error);
    const running = this.replicas.get(groupId);
    if (running === undefined) return;
    this.replicas.delete(groupId);
    void running.stop().catch((stopError: unknown) => {
      this.options.logger.warn({ groupId, err: stopError }, 'node: stopping a failed replica failed');
    });
  }

  private recordFailure(groupId: string, error: unknown): void {
    const code = (error as { code?: unknown } | undefined)?.code;
    this.failures.set(groupId, {
      groupId,
      message: error instanceof Error ? error.message : String(error),
      code: typeof code === 'string' ? code : null,
      atMs: this.scheduler.wallClockMs(),
    });
    this.metrics.failures.inc({ group: groupId });
    this.options.logger.error(
      { groupId, err: error },
      'node: a replica failed; the node and its other replicas go on',
    );
  }
}

interface NodeMetrics {
  readonly failures: Counter<'group'>;
  release(): void;
}

/** The node's own metrics: replicas by state, and replica failures by group. */
function nodeMetricsOf(registry: Registry, node: Node): NodeMetrics {
  new Gauge({
    name: `${metricPrefix}node_replicas`,
    help: 'Replicas this node hosts, by state: running, or failed (stopped after a failure, listed in /admin/status).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.set({ state: 'running' }, node.runningReplicas().size);
      this.set({ state: 'failed' }, node.failedReplicas().length);
    },
  });
  const failures = new Counter({
    name: `${metricPrefix}node_replica_failures_total`,
    help: 'Replicas of this node that failed (a failed log write or apply, or a failed start), by group; the node and its other replicas go on.',
    labelNames: ['group'] as const,
    registers: [registry],
  });
  return {
    failures,
    release() {
      registry.removeSingleMetric(`${metricPrefix}node_replicas`);
      registry.removeSingleMetric(`${metricPrefix}node_replica_failures_total`);
    },
  };
}
