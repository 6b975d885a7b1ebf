import { join, resolve } from 'node:path';
import type { ClusterConfig } from '@impulse/common';
import { freePort } from './ports.js';
import {
  ProcessCluster,
  clusterConfigOf,
  type ProcessClusterOptions,
  type ShardNodeProcess,
} from './process-cluster.js';
import { isRunning, stopProcess } from './supervisor.js';

export interface LocalClusterOptions extends ProcessClusterOptions {
  readonly groups: number;
  readonly replicasPerGroup?: number;
  /** First replica port; the others follow, and peer ports sit 100 above. 0 picks free ports. */
  readonly replicaBasePort?: number;
  /**
   * Puts something between the replicas of a group (the chaos tool's fault-injecting proxy): called
   * once per replica with the port its peer transport listens on, it answers the port the other
   * replicas must dial, which becomes the replica's advertised peer address.
   */
  readonly advertisePeerPort?: (replica: PeerIdentity, listenPort: number) => Promise<number>;
  /**
   * What a replica that fails to start does to the whole start. `fail` (the default, for tests and
   * tools that need every process) stops every process and rejects. `tolerate` keeps every healthy
   * process running and records the failure in `startFailures`: the other replicas of the group
   * may still hold a majority and serve, and the other groups serve anyway.
   */
  readonly replicaStartFailures?: 'fail' | 'tolerate';
  /**
   * As `ProcessClusterOptions.powerLoss`: each replica's data lives in
   * `<dataDirectory>/power-backing/<group>/<replica>/root`, mounted until `stop()` (or `retire`).
   */
  readonly powerLoss?: boolean;
}

/** A replica that did not start, and why (its own first line on stderr when it said one). */
export interface ReplicaStartFailure {
  readonly replica: ReplicaProcess;
  readonly error: Error;
}

export interface PeerIdentity {
  readonly groupId: string;
  readonly replicaId: string;
  readonly raftId: number;
}

export interface ReplicaProcess extends ShardNodeProcess {
  readonly groupId: string;
  readonly replicaId: string;
  readonly raftId: number;
  /** The advertised peer port: what the other replicas dial. */
  readonly peerPort: number;
  /** The port the replica's peer transport listens on (`peerPort` unless something sits between). */
  readonly peerListenPort: number;
  /**
   * Whether the replica joined a live group (`--join`) rather than founding it. A joiner restarts
   * with `--join` too: one killed before its first snapshot arrived must not found a group of its own.
   */
  readonly joined: boolean;
}

/**
 * The shape before nodes: a process per replica (`shard-node --group-id --replica-id`), each with
 * its own ports and data directory, and a gateway. Kept for the chaos tool's `--shape replicas`,
 * the bench's `impulse-replicas` target and the multi-process tests written for it; `npm start`
 * runs `LocalNodeCluster`. A replica is named by its replica id (`kill`, `restart`, ...), and
 * founds its group with `--bootstrap` on its first start on this data root only.
 */
export class LocalCluster extends ProcessCluster<ReplicaProcess, LocalClusterOptions> {
  readonly replicas: ReplicaProcess[] = [];
  /** Replicas that failed to start (only with `replicaStartFailures: 'tolerate'`). */
  readonly startFailures: ReplicaStartFailure[] = [];
  /** The highest Raft id each group has had, retired replicas included. */
  private readonly highestRaftIds = new Map<string, number>();

  private constructor(options: LocalClusterOptions) {
    super(options, options.replicaBasePort ?? 0);
  }

  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    return await ProcessCluster.launch(new LocalCluster(options));
  }

  clusterConfig(): ClusterConfig {
    const groupIds = [...new Set(this.replicas.map((replica) => replica.groupId))];
    return clusterConfigOf(
      [],
      groupIds.map((id) => ({
        id,
        replicas: this.group(id).map((replica) => ({
          id: replica.replicaId,
          node: null,
          url: replica.url,
          raftId: replica.raftId,
          peerAddress: `${this.host}:${replica.peerPort}`,
        })),
      })),
    );
  }

  replica(replicaId: string): ReplicaProcess {
    const replica = this.replicas.find((candidate) => candidate.replicaId === replicaId);
    if (replica === undefined) throw new Error(`no replica ${replicaId}`);
    return replica;
  }

  protected override members(): readonly ReplicaProcess[] {
    return this.replicas;
  }

  protected override member(name: string): ReplicaProcess {
    return this.replica(name);
  }

  protected override membersOf(groupId: string): readonly ReplicaProcess[] {
    return this.group(groupId);
  }

  protected override async startMembers(): Promise<void> {
    const replicasPerGroup = this.options.replicasPerGroup ?? 1;
    for (let group = 1; group <= this.options.groups; group++) {
      for (let replica = 1; replica <= replicasPerGroup; replica++) {
        const groupId = `g${group}`;
        const identity = { groupId, replicaId: `${groupId}-r${replica}`, raftId: replica };
        this.replicas.push(
          await this.replicaProcess(identity, { ...(await this.nextPorts()), joined: false }),
        );
      }
    }
    const failures = await this.startEvery(this.replicas, this.options.replicaStartFailures ?? 'fail');
    for (const { member, error } of failures) this.startFailures.push({ replica: member, error });
    const failed = new Set(this.startFailures.map((failure) => failure.replica.replicaId));
    await this.recordFounded(
      this.replicas.filter((replica) => !failed.has(replica.replicaId)).map((replica) => replica.replicaId),
    );
    if (this.startFailures.length === this.replicas.length) {
      throw this.startFailures[0]?.error ?? new Error('no replica started');
    }
  }

  /** A replica's process, not started, with its advertised peer port. */
  private async replicaProcess(
    identity: PeerIdentity,
    placement: { port: number; peerListenPort: number; joined: boolean },
  ): Promise<ReplicaProcess> {
    const peerPort =
      this.options.advertisePeerPort === undefined
        ? placement.peerListenPort
        : await this.options.advertisePeerPort(identity, placement.peerListenPort);
    return {
      name: identity.replicaId,
      ...identity,
      ...placement,
      peerPort,
      url: `http://${this.host}:${placement.port}`,
      dataDirectory: join(resolve(this.options.dataDirectory), identity.groupId, identity.replicaId),
      logFile: join(this.logDirectory, `${identity.replicaId}.log`),
      child: undefined,
    };
  }

  /**
   * Starts a new replica of `groupId` that joins the live group (`--join`): it serves once the
   * group's leader adds it (POST /admin/members), which this method does not do.
   */
  async addReplica(groupId: string): Promise<ReplicaProcess> {
    const members = this.group(groupId);
    // Never an id a retired replica had: Raft ids are not reused (etcd refuses it too), and a
    // removed member's leftovers (its messages, its place in a stale configuration) must not pass
    // for the newcomer's.
    const raftId =
      Math.max(this.highestRaftIds.get(groupId) ?? 0, ...members.map((member) => member.raftId)) + 1;
    this.highestRaftIds.set(groupId, raftId);
    const replica = await this.replicaProcess(
      { groupId, replicaId: `${groupId}-r${raftId}`, raftId },
      { port: await freePort(this.host), peerListenPort: await freePort(this.host), joined: true },
    );
    this.replicas.push(replica);
    await this.startReplica(replica);
    return replica;
  }

  /** Stops a replica for good (after its removal from the group) and forgets it. */
  async retire(replicaId: string): Promise<void> {
    const replica = this.replica(replicaId);
    await stopProcess(replica);
    await this.disks.unmount(replicaId);
    this.replicas.splice(this.replicas.indexOf(replica), 1);
  }

  /** Where a replica's power-loss file system keeps its data: `<data root>/power-backing/<group>/<replica>`. */
  powerBackingDirectory(replica: PeerIdentity): string {
    return this.disks.backingDirectory(join(replica.groupId, replica.replicaId));
  }

  protected override backingDirectoryOf(replica: ReplicaProcess): string {
    return this.powerBackingDirectory(replica);
  }

  protected override async startMember(
    replica: ReplicaProcess,
    extraArguments: readonly string[] = [],
  ): Promise<void> {
    await this.startReplica(replica, extraArguments);
  }

  private async startReplica(replica: ReplicaProcess, extraArguments: readonly string[] = []): Promise<void> {
    // A founding replica that never started on this data root founds its group; any other start
    // must find the group's Raft state in its data directory (or join), or is refused.
    const bootstrap = !replica.joined && !this.foundedReplicas.has(replica.replicaId);
    if (bootstrap) this.bootstrappedReplicas.push(replica.replicaId);
    await this.spawnMember(
      replica,
      [`--group-id=${replica.groupId}`, `--replica-id=${replica.replicaId}`],
      [...(replica.joined ? ['--join'] : []), ...(bootstrap ? ['--bootstrap'] : [])],
      extraArguments,
    );
  }

  /**
   * Each group with fewer replicas running than it has: how many run, of how many, and whether
   * they are still a majority (the group serves) or not (its keys are unavailable).
   */
  degradedGroups(): { groupId: string; running: number; replicas: number; serves: boolean }[] {
    const groupIds = [...new Set(this.replicas.map((replica) => replica.groupId))];
    return groupIds.flatMap((groupId) => {
      const members = this.group(groupId);
      const running = members.filter((replica) => isRunning(replica)).length;
      if (running === members.length) return [];
      return [{ groupId, running, replicas: members.length, serves: running > members.length / 2 }];
    });
  }

  /** The replicas of a group. */
  group(groupId: string): ReplicaProcess[] {
    return this.replicas.filter((replica) => replica.groupId === groupId);
  }
}
