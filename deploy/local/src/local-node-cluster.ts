import { join, resolve } from 'node:path';
import { StartupError, startupErrorCodes, type ClusterConfig } from '@impulse/common';
import { adminRequest, nodeStatus, type AdminHeaders } from './admin.js';
import {
  ProcessCluster,
  clusterConfigOf,
  type ProcessClusterOptions,
  type ShardNodeProcess,
} from './process-cluster.js';
import { readyTimeoutMsDefault } from './supervisor.js';

export interface LocalNodeClusterOptions extends ProcessClusterOptions {
  /** Node processes (default 3). */
  readonly nodes?: number;
  /** Shard groups, each with a replica on `replicasPerGroup` of the nodes. */
  readonly groups: number;
  /** Replicas per group (default: 3, or the number of nodes when fewer); at most one per node. */
  readonly replicasPerGroup?: number;
  /** Client port of the first node; the others follow, and peer ports sit 100 above. 0: free ports. */
  readonly nodeBasePort?: number;
  /** As `LocalClusterOptions.replicaStartFailures`, for nodes: `tolerate` keeps the others running. */
  readonly nodeStartFailures?: 'fail' | 'tolerate';
  /**
   * Puts something between the nodes (the chaos tool's fault-injecting proxy): called once per
   * node with the port its peer transport listens on, it answers the port the other nodes must
   * dial, which becomes the node's advertised peer address in the cluster configuration.
   */
  readonly advertisePeerPort?: (nodeId: string, listenPort: number) => Promise<number>;
  /**
   * As `ProcessClusterOptions.powerLoss`, so that `powerCut` takes a node down with the unsynced
   * data of every replica it hosts. The data lives in `<dataDirectory>/power-backing/<node>/root`.
   */
  readonly powerLoss?: boolean;
}

/**
 * The default bound on a node's start, from spawning it to its `/readyz` answering 200: the
 * supervisor's default plus a quarter of a second per replica it hosts, since it opens them all
 * (a few at a time) before it is ready. Opening them one after another, a node of 256 groups took
 * up to 16 s to restart and a cluster of three such nodes up to 46 s to start, on 2 cores shared
 * with other work (docs/benchmarks.md); a flat 20 s timed such starts out. 256 replicas: 84 s.
 */
export function nodeReadyTimeoutMs(hostedReplicas: number): number {
  return readyTimeoutMsDefault + 250 * hostedReplicas;
}

/** One node process and what it hosts. */
export interface NodeProcessInfo extends ShardNodeProcess {
  readonly nodeId: string;
  /** The port peers dial (the node's advertised peer address). */
  readonly peerPort: number;
  /** The port the node's peer transport listens on (`peerPort` unless something sits between). */
  readonly peerListenPort: number;
  /**
   * The replicas the cluster configuration places on it, by group: those it hosts from its first
   * start. Replicas added and removed at run time (`addReplica`, `removeReplica`) are in
   * `LocalNodeCluster.replicasOn`; the configuration, like the gateway's, stays as it was.
   */
  readonly replicas: readonly NodeReplica[];
}

/** A replica of a group on a node. */
export interface NodeReplica {
  readonly groupId: string;
  readonly replicaId: string;
  readonly raftId: number;
}

/** A replica started at run time (`addReplica`): what the group's leader is given to add it. */
export interface AddedReplica extends NodeReplica {
  readonly nodeId: string;
  /** Its node's client URL. */
  readonly url: string;
  /** Its node's advertised peer address. */
  readonly peerAddress: string;
}

/** A replica a running node reports as failed: it stopped; the node and its other replicas go on. */
export interface FailedReplica {
  readonly nodeId: string;
  readonly groupId: string;
  readonly replicaId: string;
  readonly message: string;
  /** The stable code of the failure (`DATA_DIRECTORY_EMPTY`, ...), when it had one. */
  readonly code: string | null;
}

export interface NodeStartFailure {
  readonly node: NodeProcessInfo;
  readonly error: Error;
}

/**
 * A cluster of real node processes on loopback, the production shape: `nodes` processes, each
 * hosting a replica of many groups (one client port, one peer port, one data directory), and a
 * gateway. Replica `r` of group `g` lives on node `((g - 1) + (r - 1)) mod nodes`, so that with
 * three nodes and three replicas every node hosts every group, and with more nodes the groups
 * spread. Used by `npm start`, the node tests and the node benchmarks.
 *
 * Founding is recorded as for `LocalCluster` (`FOUNDED`, by replica id): a node is given
 * `--bootstrap-groups` naming only the groups whose replica on it never started on this data root.
 */
export class LocalNodeCluster extends ProcessCluster<NodeProcessInfo, LocalNodeClusterOptions> {
  readonly nodes: NodeProcessInfo[] = [];
  readonly startFailures: NodeStartFailure[] = [];
  /** Replicas that did not start on a node that did (from the nodes' `/admin/status` after the start). */
  readonly failedReplicas: FailedReplica[] = [];
  /** The replicas each node hosts now, by node id (the configuration's, as changed at run time). */
  private readonly hosting = new Map<string, NodeReplica[]>();
  /** The highest Raft id each group has had, removed replicas included: ids are never reused. */
  private readonly highestRaftIds = new Map<string, number>();

  private constructor(options: LocalNodeClusterOptions) {
    super(options, options.nodeBasePort ?? 0);
  }

  static async start(options: LocalNodeClusterOptions): Promise<LocalNodeCluster> {
    return await ProcessCluster.launch(new LocalNodeCluster(options));
  }

  /** The group ids, g1 to gN. */
  get groupIds(): string[] {
    return Array.from({ length: this.options.groups }, (_, index) => `g${index + 1}`);
  }

  clusterConfig(): ClusterConfig {
    return clusterConfigOf(
      this.nodes.map((node) => ({
        id: node.nodeId,
        url: node.url,
        peerAddress: `${this.host}:${node.peerPort}`,
      })),
      this.groupIds.map((groupId) => ({
        id: groupId,
        replicas: this.nodes
          .flatMap((node) =>
            node.replicas
              .filter((replica) => replica.groupId === groupId)
              .map((replica) => ({
                id: replica.replicaId,
                node: node.nodeId,
                url: node.url,
                raftId: replica.raftId,
                peerAddress: `${this.host}:${node.peerPort}`,
              })),
          )
          .sort((left, right) => left.raftId - right.raftId),
      })),
    );
  }

  node(nodeId: string): NodeProcessInfo {
    const node = this.nodes.find((candidate) => candidate.nodeId === nodeId);
    if (node === undefined) throw new Error(`no node ${nodeId}`);
    return node;
  }

  protected override members(): readonly NodeProcessInfo[] {
    return this.nodes;
  }

  protected override member(name: string): NodeProcessInfo {
    return this.node(name);
  }

  protected override membersOf(groupId: string): readonly NodeProcessInfo[] {
    return this.nodesOf(groupId);
  }

  protected override async startMembers(): Promise<void> {
    const nodeCount = this.options.nodes ?? 3;
    const replicasPerGroup = this.options.replicasPerGroup ?? Math.min(3, nodeCount);
    if (replicasPerGroup > nodeCount)
      throw new Error(`${replicasPerGroup} replicas per group need as many nodes; there are ${nodeCount}`);
    const placements = new Map<number, { groupId: string; replicaId: string; raftId: number }[]>();
    for (let group = 1; group <= this.options.groups; group++) {
      for (let replica = 1; replica <= replicasPerGroup; replica++) {
        const index = (group - 1 + (replica - 1)) % nodeCount;
        const list = placements.get(index) ?? [];
        list.push({ groupId: `g${group}`, replicaId: `g${group}-r${replica}`, raftId: replica });
        placements.set(index, list);
      }
    }
    for (let index = 0; index < nodeCount; index++) {
      const nodeId = `n${index + 1}`;
      const { port, peerListenPort } = await this.nextPorts();
      this.nodes.push({
        name: nodeId,
        nodeId,
        port,
        peerPort:
          this.options.advertisePeerPort === undefined
            ? peerListenPort
            : await this.options.advertisePeerPort(nodeId, peerListenPort),
        peerListenPort,
        url: `http://${this.host}:${port}`,
        dataDirectory: join(resolve(this.options.dataDirectory), nodeId),
        logFile: join(this.logDirectory, `${nodeId}.log`),
        replicas: placements.get(index) ?? [],
        child: undefined,
      });
    }
    const failures = await this.startEvery(this.nodes, this.options.nodeStartFailures ?? 'fail');
    for (const { member, error } of failures) this.startFailures.push({ node: member, error });
    const failed = new Set(this.startFailures.map((failure) => failure.node.nodeId));
    const running = this.nodes.filter((node) => !failed.has(node.nodeId));
    this.failedReplicas.push(...(await failedReplicasOf(running, this.adminHeaders())));
    const notStarted = new Set(this.failedReplicas.map((replica) => replica.replicaId));
    await this.recordFounded(
      running
        .flatMap((node) => node.replicas.map((replica) => replica.replicaId))
        .filter((replicaId) => !notStarted.has(replicaId)),
    );
    if (running.length === 0) throw this.startFailures[0]?.error ?? new Error('no node started');
    const replicaCount = running.reduce((sum, node) => sum + node.replicas.length, 0);
    const firstFailed = this.failedReplicas[0];
    if (firstFailed !== undefined && this.failedReplicas.length === replicaCount) {
      // Nodes run, but no replica: nothing would serve. Reported as its cause, with its code.
      const code = startupErrorCodes.find((candidate) => candidate === firstFailed.code) ?? 'START_FAILED';
      throw new StartupError(
        code,
        `node ${firstFailed.nodeId}'s replica of ${firstFailed.groupId} did not start: ${firstFailed.message}`,
      );
    }
  }

  protected override async startMember(
    node: NodeProcessInfo,
    extraArguments: readonly string[] = [],
  ): Promise<void> {
    // Only a replica never started on this data root founds its group; any other start must find
    // its group's state in the node's data directory, or is refused (decision 0009).
    const founders = node.replicas.filter((replica) => !this.foundedReplicas.has(replica.replicaId));
    this.bootstrappedReplicas.push(...founders.map((replica) => replica.replicaId));
    await this.spawnMember(
      node,
      [`--node-id=${node.nodeId}`],
      founders.length > 0
        ? [`--bootstrap-groups=${founders.map((replica) => replica.groupId).join(',')}`]
        : [],
      extraArguments,
    );
  }

  /** The nodes that host a replica of `groupId` now. */
  nodesOf(groupId: string): NodeProcessInfo[] {
    return this.nodes.filter((node) =>
      this.replicasOn(node.nodeId).some((replica) => replica.groupId === groupId),
    );
  }

  /** The replicas a node hosts now: the configuration's, as `addReplica` and `removeReplica` changed them. */
  replicasOn(nodeId: string): readonly NodeReplica[] {
    return this.hosting.get(nodeId) ?? this.node(nodeId).replicas;
  }

  /** The replicas of a group now, each with its node's client URL and advertised peer address. */
  groupMembers(groupId: string): AddedReplica[] {
    return this.nodes.flatMap((node) =>
      this.replicasOn(node.nodeId)
        .filter((replica) => replica.groupId === groupId)
        .map((replica) => ({
          ...replica,
          nodeId: node.nodeId,
          url: node.url,
          peerAddress: `${this.host}:${node.peerPort}`,
        })),
    );
  }

  /**
   * Starts a replica of `groupId` on `nodeId` (which must not host one) that joins the live group
   * (`POST /admin/replicas` on the node, given the group's members of the moment): it serves once
   * the group's leader adds it (`POST /admin/members` with what this answers), which this method
   * does not do. Its Raft id is one no replica of the group ever had (Raft ids are not reused).
   */
  async addReplica(groupId: string, nodeId: string): Promise<AddedReplica> {
    const node = this.node(nodeId);
    if (this.replicasOn(nodeId).some((replica) => replica.groupId === groupId)) {
      throw new Error(`${nodeId} hosts a replica of ${groupId} already`);
    }
    const members = this.groupMembers(groupId);
    const raftId =
      Math.max(this.highestRaftIds.get(groupId) ?? 0, ...members.map((member) => member.raftId)) + 1;
    this.highestRaftIds.set(groupId, raftId);
    const replica: NodeReplica = { groupId, replicaId: `${groupId}-r${raftId}`, raftId };
    await adminRequest(node, this.adminHeaders(), '/admin/replicas', {
      method: 'POST',
      body: {
        ...replica,
        members: members.map((member) => ({
          replicaId: member.replicaId,
          raftId: member.raftId,
          url: member.url,
          peerAddress: member.peerAddress,
        })),
      },
      timeoutMs: hostingRequestTimeoutMs,
    });
    this.hosting.set(nodeId, [...this.replicasOn(nodeId), replica]);
    return { ...replica, nodeId, url: node.url, peerAddress: `${this.host}:${node.peerPort}` };
  }

  /**
   * Stops a node's replica for good and deletes its data (`DELETE /admin/replicas/{group}` on the
   * node, forced: call it once the group's leader shows the replica removed, since a removed
   * replica need not ever learn of its removal).
   */
  async removeReplica(replicaId: string): Promise<void> {
    const node = this.nodes.find((candidate) =>
      this.replicasOn(candidate.nodeId).some((replica) => replica.replicaId === replicaId),
    );
    const replica = node && this.replicasOn(node.nodeId).find((hosted) => hosted.replicaId === replicaId);
    if (node === undefined || replica === undefined) throw new Error(`no node hosts ${replicaId}`);
    await adminRequest(node, this.adminHeaders(), `/admin/replicas/${replica.groupId}?force=true`, {
      method: 'DELETE',
      timeoutMs: hostingRequestTimeoutMs,
    });
    this.hosting.set(
      node.nodeId,
      this.replicasOn(node.nodeId).filter((hosted) => hosted.replicaId !== replicaId),
    );
  }

  /** Where a node's power-loss file system keeps its data: `<data root>/power-backing/<node>`. */
  powerBackingDirectory(nodeId: string): string {
    return this.disks.backingDirectory(nodeId);
  }

  /** A node opens every replica it hosts before it is ready: its bound grows with them. */
  protected override readyTimeoutMsOf(node: NodeProcessInfo): number {
    return this.options.readyTimeoutMs ?? nodeReadyTimeoutMs(this.replicasOn(node.nodeId).length);
  }

  protected override backingDirectoryOf(node: NodeProcessInfo): string {
    return this.powerBackingDirectory(node.nodeId);
  }

  /**
   * Test-only, a bug planted on purpose (with `powerLoss`): from now on the named nodes' file
   * systems acknowledge fsyncs without making anything durable, so that a power cut of a node
   * loses writes its replicas acknowledged. The chaos tool's planted-bug test uses it to show that
   * its checks fail when the store loses acknowledged writes.
   */
  async plantLyingDisks(nodeIds: readonly string[]): Promise<void> {
    await Promise.all(nodeIds.map((nodeId) => this.disks.lie(this.node(nodeId).nodeId)));
  }
}

/** Time allowed to a node's `/admin/replicas` routes, which persist a record and start or stop a replica. */
const hostingRequestTimeoutMs = 20_000;
/** Time allowed to a node's `/admin/status` after the start. */
const statusTimeoutMs = 5_000;

/** The failed replicas each running node reports in its `/admin/status`. */
async function failedReplicasOf(
  nodes: readonly NodeProcessInfo[],
  adminHeaders: AdminHeaders,
): Promise<FailedReplica[]> {
  const failed: FailedReplica[] = [];
  for (const node of nodes) {
    const status = await nodeStatus(node, adminHeaders, statusTimeoutMs);
    for (const reported of status.replicas ?? []) {
      if (reported.health !== 'failed') continue;
      const replica = node.replicas.find((candidate) => candidate.groupId === reported.groupId);
      failed.push({
        nodeId: node.nodeId,
        groupId: reported.groupId,
        replicaId: replica?.replicaId ?? `${reported.groupId}-?`,
        message: reported.message ?? '',
        code: reported.code ?? null,
      });
    }
  }
  return failed;
}
