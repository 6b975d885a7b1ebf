/**
 * One simulated node: a file system that survives its crashes (and loses what was not synced at
 * a power cut), and, while it runs, one production `Replica` of each group it hosts, on the memory
 * engine, with simulated time and the simulated network. A crash, a power cut and a pause hit
 * every replica on the node at once, as they would in production.
 */
import {
  MemoryFileSystem,
  Registry,
  createLogger,
  wrapHandles,
  type FileSystem,
  type Logger,
} from '@impulse/common';
import type { Config, RaftMutant } from '../../raft/index.js';
import type { CoalescerMutant } from '../../transport/index.js';
import type { MemberSpec, ReadMode, Replica } from '../../replica/index.js';
import {
  Node,
  type ForcedCompactionOutcome,
  type HostedReplica,
  type LogPurgeSettings,
} from '../../node/index.js';
import type { Prng } from '../prng.js';
import { NodeClock, type SimTime } from './sim-clock.js';
import type { SimNetwork } from './sim-network.js';

/** Timing and sizes every replica of the simulation shares (in simulated milliseconds). */
export interface SimTiming {
  readonly tickIntervalMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatTicks: number;
  readonly snapshotEntries: number;
  readonly snapshotCatchUpEntries: number;
  readonly proposalTimeoutMs: number;
  readonly readMode: ReadMode;
  /** A new Raft log segment past this many bytes: small, so that segments come and go in a run. */
  readonly logSegmentBytesMax: number;
  /** When a node asks the groups that keep its log's oldest segments to compact. */
  readonly logPurge: LogPurgeSettings;
  /**
   * The most entry bytes the core puts in one MsgApp, when not the host's (1 MiB). A schedule sets
   * 0 (one entry per message) so that a leader's tail of an earlier term reaches a follower ahead
   * of its own term's entry, as a tail of more than 1 MiB would in production (Figure 8 rounds).
   */
  readonly messageBytesMax?: number;
}

export interface SimNodeOptions {
  readonly name: string;
  /** The replicas the node hosts at its first start (it founds their groups). */
  readonly founding: readonly HostedReplica[];
  readonly time: SimTime;
  readonly network: SimNetwork;
  readonly prng: Prng;
  readonly timing: SimTiming;
  /** A replica failed (its Ready loop stopped): in the simulator, always a bug to report. */
  readonly onFailure: (node: string, group: string, error: unknown) => void;
  /** The node asked a group to compact early (`log-purge.ts`), with this outcome. */
  readonly onForcedCompaction?: (node: string, group: string, outcome: ForcedCompactionOutcome) => void;
  readonly logger?: Logger;
  /** Planted bugs, to show the checks catch them (never set in a normal run). */
  readonly plant?: SimPlant;
  /**
   * `node`: one Raft log shared by the node's replicas (`NodeLog`, one fdatasync per round for
   * every group), as a node runs. `replica`: a log of its own per replica (`RaftLogStore`).
   */
  readonly logs?: 'node' | 'replica';
}

/** Bugs a run can plant in the production host, each breaking one rule the checks must catch. */
export interface SimPlant {
  /** One of the core's planted bugs (`raftMutants`). */
  readonly core?: RaftMutant;
  /** The node's disk acknowledges fsyncs it never does: a power cut loses acknowledged writes. */
  readonly lyingFsync?: boolean;
  /** One of the coalescer's planted bugs (`coalescerMutants`); planted in the network (`SimNetwork`). */
  readonly coalescer?: CoalescerMutant;
}

export type SimNodeState = 'up' | 'paused' | 'down';

/**
 * One simulated node: the production `Node` (its replicas, its shared log, its failure handling)
 * over a simulated disk, clock and network. The disk outlives the node's incarnations.
 */
export class SimNode {
  /** The node's disk: it outlives the node's crashes, and a power cut loses what was not synced. */
  readonly disk = new MemoryFileSystem();
  /** The file system the replicas see: the disk, or a lying view of it when one is planted. */
  private readonly fs: FileSystem;
  private node: Node | undefined;
  private clock: NodeClock | undefined;
  private incarnation = 0;
  /** The replicas the node hosts, as it would find them in its configuration on a start. */
  private readonly hosted = new Map<string, HostedReplica>();
  private crashWaiters: (() => void)[] = [];
  /** When the node last resumed from a pause (simulated ms; -Infinity if it never paused). */
  private resumedAt = -Infinity;
  private readonly logger: Logger;

  constructor(private readonly options: SimNodeOptions) {
    this.logger = options.logger ?? createLogger({ service: 'sim', level: 'silent' });
    this.fs = options.plant?.lyingFsync === true ? lyingFileSystem(this.disk) : this.disk;
    for (const replica of options.founding) this.hosted.set(replica.groupId, replica);
  }

  /** Whether the node hosts a replica of `group` (running or not). */
  hosts(group: string): boolean {
    return this.hosted.has(group);
  }

  /** The member entry of the node's replica of `group`, if it hosts one. */
  memberOf(group: string): MemberSpec | undefined {
    return this.hosted.get(group)?.self;
  }

  /**
   * Hosts a new replica (a learner joining its group); started at once when the node is up, and
   * on every later start. A replica that fails to start is reported by the node as a failure.
   */
  async addReplica(replica: HostedReplica): Promise<void> {
    this.hosted.set(replica.groupId, replica);
    const node = this.node;
    if (node !== undefined)
      await Promise.race([node.addReplica(replica).catch(() => undefined), this.untilCrash()]);
  }

  /** No longer hosts `group`: its replica is stopped and its data deleted (now, or at the next start). */
  async removeReplica(group: string): Promise<void> {
    this.hosted.delete(group);
    const node = this.node;
    if (node !== undefined) await Promise.race([node.removeReplica(group), this.untilCrash()]);
  }

  /** Resolves when the running incarnation crashes: what it was doing will never finish. */
  private untilCrash(): Promise<void> {
    return new Promise((resolve) => this.crashWaiters.push(resolve));
  }

  get name(): string {
    return this.options.name;
  }

  get state(): SimNodeState {
    if (this.clock === undefined) return 'down';
    return this.clock.paused ? 'paused' : 'up';
  }

  /** The running replicas of the current incarnation, by group (none while down). */
  get replicas(): ReadonlyMap<string, Replica> {
    return this.node?.runningReplicas() ?? new Map<string, Replica>();
  }

  /**
   * Starts the node on its disk: every replica of it (founding the groups on the very first start
   * only, as `--bootstrap` does). Resolves within one settle of simulated time: the storage and
   * transport answer through promises only.
   */
  async start(): Promise<void> {
    if (this.clock !== undefined) throw new Error(`sim: ${this.name} is already running`);
    const incarnation = ++this.incarnation;
    const clock = new NodeClock(this.options.time, 1_000_000_000 * incarnation);
    this.clock = clock;
    const { timing, plant } = this.options;
    const adjustCore = coreAdjustment(plant?.core, timing.messageBytesMax);
    const hosted = [...this.hosted.values()];
    // Founding happens on the first start only; afterwards the groups hold Raft state.
    for (const replica of hosted) this.hosted.set(replica.groupId, { ...replica, bootstrap: false });
    const node = await Node.start(
      {
        nodeId: this.name,
        dataDirectory: `/${this.name}`,
        settings: {
          clusterId: 'sim',
          engine: 'memory',
          logSync: true,
          tickIntervalMs: timing.tickIntervalMs,
          electionTimeoutTicks: timing.electionTimeoutTicks,
          heartbeatTicks: timing.heartbeatTicks,
          readMode: timing.readMode,
          snapshotEntries: timing.snapshotEntries,
          snapshotCatchUpEntries: timing.snapshotCatchUpEntries,
          logSegmentBytesMax: timing.logSegmentBytesMax,
          proposalTimeoutMs: timing.proposalTimeoutMs,
          proposalBatchMax: 64,
          randomSeed: this.options.prng.int(2 ** 31),
        },
        openTransport: (group, raftId) => this.options.network.transport(this.name, group, raftId, clock),
        logger: this.logger.child({ node: this.name }),
        registry: new Registry(),
        scheduler: clock,
        fileSystem: this.fs,
        logs: this.options.logs ?? 'node',
        logPurge: timing.logPurge,
        onForcedCompaction: (group, outcome) => {
          if (this.incarnation === incarnation) this.options.onForcedCompaction?.(this.name, group, outcome);
        },
        onReplicaFailure: (failure) => {
          if (this.incarnation === incarnation)
            this.options.onFailure(this.name, failure.groupId, new Error(failure.message));
        },
        ...(adjustCore === undefined ? {} : { replicaHooks: () => ({ adjustCore }) }),
      },
      hosted,
    );
    // Crashed while starting: that incarnation is gone, and so is what it opened.
    if (this.incarnation === incarnation) this.node = node;
  }

  /**
   * Stops the node without warning. `kill`: what was written survives (the page cache outlives a
   * process). `power`: what was not synced is lost. Open files of the old incarnation fail from
   * now on, its timers never fire, and its peers see its links go dead.
   */
  crash(kind: 'kill' | 'power'): void {
    const clock = this.clock;
    if (clock === undefined) return;
    this.incarnation++;
    clock.dead = true;
    this.clock = undefined;
    this.node = undefined;
    this.options.network.closeNode(this.name);
    for (const resolve of this.crashWaiters.splice(0)) resolve();
    if (kind === 'power') this.disk.powerCut();
    else this.disk.processCrash();
  }

  pause(): void {
    if (this.clock !== undefined) this.clock.paused = true;
  }

  resume(): void {
    if (this.clock?.paused === true) this.resumedAt = this.options.time.nowMs;
    this.clock?.resume();
  }

  /** When the node last resumed from a pause, in simulated ms (-Infinity if it never paused). */
  get resumedAtMs(): number {
    return this.resumedAt;
  }
}

/**
 * The test hook over the core's configuration, when a run needs one: a planted bug of the core,
 * and a schedule's MsgApp size. Undefined otherwise, as in production.
 */
function coreAdjustment(
  mutant: RaftMutant | undefined,
  messageBytesMax: number | undefined,
): ((config: Config) => Config) | undefined {
  if (mutant === undefined && messageBytesMax === undefined) return undefined;
  return (config: Config): Config => ({
    ...config,
    ...(mutant === undefined ? {} : { mutants: [mutant] }),
    ...(messageBytesMax === undefined ? {} : { maxSizePerMessageBytes: messageBytesMax }),
  });
}

/** A view of `disk` whose fsyncs return without syncing anything (a planted bug). */
function lyingFileSystem(disk: FileSystem): FileSystem {
  return wrapHandles(disk, () => ({ datasync: () => Promise.resolve(), sync: () => Promise.resolve() }));
}
