import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  StartupError,
  adminHeaders,
  ensureDataDirectory,
  startupErrorCodes,
  groupHeader,
  keyBytesMaxDefault,
  valueBytesMaxDefault,
  type ClusterConfig,
} from '@impulse/common';
import { ensureSecretFile, readFounded, writeFounded } from './founding.js';
import {
  adminTokenFileName,
  clusterSecretFileName,
  foundedFileName,
  gatewayMain,
  shardNodeMain,
} from './local-cluster.js';
import { freePort } from './ports.js';
import type { PowerCut } from './power-fs.js';
import { PowerLossDisks } from './power-loss.js';
import {
  ProcessSupervisor,
  isRunning,
  stopProcess,
  type ManagedProcess,
  type ProcessExit,
} from './supervisor.js';

export interface LocalNodeClusterOptions {
  /** Node processes (default 3). */
  readonly nodes?: number;
  /** Shard groups, each with a replica on `replicasPerGroup` of the nodes. */
  readonly groups: number;
  /** Replicas per group (default: 3, or the number of nodes when fewer); at most one per node. */
  readonly replicasPerGroup?: number;
  /** Root of every node's data directory and of the process logs. */
  readonly dataDirectory: string;
  readonly engine?: 'leveldb' | 'memory';
  readonly host?: string;
  /** 0 picks a free port. */
  readonly gatewayPort?: number;
  /** Client port of the first node; the others follow, and peer ports sit 100 above. 0: free ports. */
  readonly nodeBasePort?: number;
  /** Extra flags for every node and for the gateway. */
  readonly shardNodeArguments?: readonly string[];
  readonly gatewayArguments?: readonly string[];
  readonly logLevel?: string;
  readonly onLogLine?: (processName: string, line: string) => void;
  readonly readyTimeoutMs?: number;
  readonly onUnexpectedExit?: (exit: ProcessExit) => void;
  /** As `LocalClusterOptions.replicaStartFailures`, for nodes: `tolerate` keeps the others running. */
  readonly nodeStartFailures?: 'fail' | 'tolerate';
  /**
   * Puts something between the nodes (the chaos tool's fault-injecting proxy): called once per
   * node with the port its peer transport listens on, it answers the port the other nodes must
   * dial, which becomes the node's advertised peer address in the cluster configuration.
   */
  readonly advertisePeerPort?: (nodeId: string, listenPort: number) => Promise<number>;
  /**
   * Puts every node's data directory on a file system that can lose power (as
   * `LocalClusterOptions.powerLoss`), so that `powerCut` takes a node down with the unsynced data
   * of every replica it hosts. The data lives in `<dataDirectory>/power-backing/<node>/root`.
   * Default false.
   */
  readonly powerLoss?: boolean;
}

/** One node process and what it hosts. */
export interface NodeProcessInfo extends ManagedProcess {
  readonly nodeId: string;
  /** The port peers dial (the node's advertised peer address). */
  readonly peerPort: number;
  /** The port the node's peer transport listens on (`peerPort` unless something sits between). */
  readonly peerListenPort: number;
  readonly dataDirectory: string;
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
export class LocalNodeCluster {
  readonly nodes: NodeProcessInfo[] = [];
  gateway: ManagedProcess | undefined;
  readonly startFailures: NodeStartFailure[] = [];
  /** Replicas that did not start on a node that did (from the nodes' `/admin/status` after the start). */
  readonly failedReplicas: FailedReplica[] = [];
  /** Replicas that have started on this data root before, and those this start founded. */
  readonly foundedReplicas = new Set<string>();
  /** The replicas this start founded (their group's first start on this data root). */
  readonly bootstrappedReplicas: string[] = [];
  readonly unexpectedExits: ProcessExit[];
  private readonly supervisor: ProcessSupervisor;
  /** The nodes' power-loss file systems (mounted with `powerLoss` only). */
  private readonly disks: PowerLossDisks;
  /** The replicas each node hosts now, by node id (the configuration's, as changed at run time). */
  private readonly hosting = new Map<string, NodeReplica[]>();
  /** The highest Raft id each group has had, removed replicas included: ids are never reused. */
  private readonly highestRaftIds = new Map<string, number>();
  /** The admin token every process is given (`adminTokenPath`), once the start has made or read it. */
  private adminToken: string | undefined;

  private constructor(private readonly options: LocalNodeClusterOptions) {
    this.supervisor = new ProcessSupervisor(options);
    this.unexpectedExits = this.supervisor.unexpectedExits;
    this.disks = new PowerLossDisks({
      dataRoot: resolve(options.dataDirectory),
      logDirectory: this.logDirectory,
      supervisor: this.supervisor,
      ...(options.onLogLine === undefined ? {} : { onLogLine: options.onLogLine }),
    });
  }

  static async start(options: LocalNodeClusterOptions): Promise<LocalNodeCluster> {
    const cluster = new LocalNodeCluster(options);
    try {
      await cluster.startAll();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  get gatewayUrl(): string {
    if (this.gateway === undefined) throw new Error('the gateway is not started');
    return this.gateway.url;
  }

  get logDirectory(): string {
    return join(resolve(this.options.dataDirectory), 'logs');
  }

  get clusterSecretPath(): string {
    return join(resolve(this.options.dataDirectory), clusterSecretFileName);
  }

  /**
   * The admin token every process is given (`--admin-token-file`), made as the cluster secret is:
   * the operator's key to the admin routes, sent as `Authorization: Bearer <token>`.
   */
  get adminTokenPath(): string {
    return join(resolve(this.options.dataDirectory), adminTokenFileName);
  }

  /** The headers that carry the admin token: every request to an admin route of the cluster needs them. */
  adminHeaders(): Record<string, string> {
    if (this.adminToken === undefined) throw new Error('the cluster is not started');
    return adminHeaders(this.adminToken);
  }

  private get foundedPath(): string {
    return join(resolve(this.options.dataDirectory), foundedFileName);
  }

  /** The group ids, g1 to gN. */
  get groupIds(): string[] {
    return Array.from({ length: this.options.groups }, (_, index) => `g${index + 1}`);
  }

  clusterConfig(): ClusterConfig {
    return {
      epoch: 1,
      virtualNodesPerGroup: 160,
      valueBytesMax: valueBytesMaxDefault,
      keyBytesMax: keyBytesMaxDefault,
      nodes: this.nodes.map((node) => ({
        id: node.nodeId,
        url: node.url,
        peerAddress: `${this.host}:${node.peerPort}`,
      })),
      groups: this.groupIds.map((groupId) => ({
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
    };
  }

  node(nodeId: string): NodeProcessInfo {
    const node = this.nodes.find((candidate) => candidate.nodeId === nodeId);
    if (node === undefined) throw new Error(`no node ${nodeId}`);
    return node;
  }

  private async startAll(): Promise<void> {
    await ensureDataDirectory(this.options.dataDirectory);
    mkdirSync(this.logDirectory, { recursive: true });
    for (const replicaId of await readFounded(this.foundedPath)) this.foundedReplicas.add(replicaId);
    await ensureSecretFile(this.clusterSecretPath);
    this.adminToken = await ensureSecretFile(this.adminTokenPath);
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
    let nextPort = this.options.nodeBasePort ?? 0;
    for (let index = 0; index < nodeCount; index++) {
      const nodeId = `n${index + 1}`;
      const port = nextPort === 0 ? await freePort(this.host) : nextPort++;
      const peerListenPort = nextPort === 0 ? await freePort(this.host) : port + 100;
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
    const started = await Promise.allSettled(this.nodes.map((node) => this.startNode(node)));
    for (const [index, outcome] of started.entries()) {
      if (outcome.status === 'fulfilled') continue;
      const node = this.nodes[index] as NodeProcessInfo;
      const error = outcome.reason instanceof Error ? outcome.reason : new Error(String(outcome.reason));
      if ((this.options.nodeStartFailures ?? 'fail') === 'fail') throw error;
      await stopProcess(node);
      this.startFailures.push({ node, error });
    }
    const failed = new Set(this.startFailures.map((failure) => failure.node.nodeId));
    const running = this.nodes.filter((node) => !failed.has(node.nodeId));
    this.failedReplicas.push(...(await failedReplicasOf(running, this.adminHeaders())));
    // Recorded once every node started (or failed to): a replica that started is never given
    // --bootstrap-groups again. One that failed has not served, and may found on a later start.
    const notStarted = new Set(this.failedReplicas.map((replica) => replica.replicaId));
    const newlyFounded = running
      .flatMap((node) => node.replicas.map((replica) => replica.replicaId))
      .filter((replicaId) => !this.foundedReplicas.has(replicaId) && !notStarted.has(replicaId));
    if (newlyFounded.length > 0) {
      for (const replicaId of newlyFounded) this.foundedReplicas.add(replicaId);
      await writeFounded(this.foundedPath, [...this.foundedReplicas]);
    }
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
    const gatewayPort = this.options.gatewayPort ?? 0;
    const port = gatewayPort === 0 ? await freePort(this.host) : gatewayPort;
    this.gateway = {
      name: 'gateway',
      port,
      url: `http://${this.host}:${port}`,
      logFile: join(this.logDirectory, 'gateway.log'),
      child: undefined,
    };
    await this.supervisor.spawnAndWait(this.gateway, [
      gatewayMain,
      `--host=${this.host}`,
      `--port=${port}`,
      `--cluster=${JSON.stringify(this.clusterConfig())}`,
      `--admin-token-file=${this.adminTokenPath}`,
      `--log-level=${this.options.logLevel ?? 'info'}`,
      ...(this.options.gatewayArguments ?? []),
    ]);
  }

  private async startNode(node: NodeProcessInfo, extraArguments: readonly string[] = []): Promise<void> {
    if (this.options.powerLoss === true) {
      await this.disks.mount(node.nodeId, this.powerBackingDirectory(node.nodeId), node.dataDirectory);
    }
    // Only a replica never started on this data root founds its group; any other start must find
    // its group's state in the node's data directory, or is refused (decision 0009).
    const bootstrapGroups = node.replicas
      .filter((replica) => !this.foundedReplicas.has(replica.replicaId))
      .map((replica) => replica.groupId);
    this.bootstrappedReplicas.push(
      ...node.replicas
        .filter((replica) => !this.foundedReplicas.has(replica.replicaId))
        .map((replica) => replica.replicaId),
    );
    await this.supervisor.spawnAndWait(node, [
      shardNodeMain,
      `--node-id=${node.nodeId}`,
      `--host=${this.host}`,
      `--port=${node.port}`,
      `--peer-port=${node.peerListenPort}`,
      `--engine=${this.options.engine ?? 'leveldb'}`,
      `--data-dir=${node.dataDirectory}`,
      `--cluster=${JSON.stringify(this.clusterConfig())}`,
      `--cluster-secret-file=${this.clusterSecretPath}`,
      `--admin-token-file=${this.adminTokenPath}`,
      `--log-level=${this.options.logLevel ?? 'info'}`,
      ...(bootstrapGroups.length > 0 ? [`--bootstrap-groups=${bootstrapGroups.join(',')}`] : []),
      ...(this.options.shardNodeArguments ?? []),
      ...extraArguments,
    ]);
  }

  isRunning(name: string): boolean {
    const managed = name === 'gateway' ? this.gateway : this.node(name);
    return managed !== undefined && isRunning(managed);
  }

  /**
   * Whether the named node runs and has finished starting (it answered `/readyz`): a fault
   * injector must leave a node alone while it starts, or it fails the start it interrupts.
   */
  isReady(nodeId: string): boolean {
    return this.supervisor.isReady(this.node(nodeId));
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
    await adminRequest(node, this.adminHeaders(), 'POST', '/admin/replicas', {
      ...replica,
      members: members.map((member) => ({
        replicaId: member.replicaId,
        raftId: member.raftId,
        url: member.url,
        peerAddress: member.peerAddress,
      })),
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
    await adminRequest(node, this.adminHeaders(), 'DELETE', `/admin/replicas/${replica.groupId}?force=true`);
    this.hosting.set(
      node.nodeId,
      this.replicasOn(node.nodeId).filter((hosted) => hosted.replicaId !== replicaId),
    );
  }

  /** Where a node's power-loss file system keeps its data: `<data root>/power-backing/<node>`. */
  powerBackingDirectory(nodeId: string): string {
    return this.disks.backingDirectory(nodeId);
  }

  /**
   * A power cut of the named nodes (with `powerLoss`), and so of every replica they host: each is
   * killed (`kill -9`), and once all are gone their file systems drop every write not yet made
   * durable. Resolves with what each cut dropped, in the order given; the caller brings them back
   * with `restart`. Refuses, before killing any, a node that is not running. Once they are killed,
   * a cut that fails rejects with a `PowerCutError`: the nodes are down all the same.
   */
  async powerCut(nodeIds: readonly string[]): Promise<PowerCut[]> {
    if (this.options.powerLoss !== true) {
      throw new Error('a power cut needs a cluster started with powerLoss');
    }
    return await this.disks.cut(
      nodeIds.map((nodeId) => this.node(nodeId)),
      (managed) => this.supervisor.kill(managed),
    );
  }

  /**
   * The node whose replica of `groupId` says it leads, waiting up to `timeoutMs` for one; nodes
   * that do not answer (killed, paused), do not host the group (a replica may have moved since the
   * start) or are in `excluding` are skipped.
   */
  async leaderOf(
    groupId: string,
    timeoutMs = 10_000,
    excluding: readonly string[] = [],
  ): Promise<NodeProcessInfo> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const node of this.nodes) {
        if (excluding.includes(node.nodeId) || !isRunning(node)) continue;
        try {
          const response = await fetch(`${node.url}/admin/status`, {
            headers: { [groupHeader]: groupId, ...this.adminHeaders() },
            signal: AbortSignal.timeout(500),
          });
          const status = (await response.json()) as { role?: string };
          if (status.role === 'leader') return node;
        } catch {
          // Not answering: not the leader we are looking for.
        }
      }
      await new Promise((resolveDelay) => setTimeout(resolveDelay, 25));
    }
    throw new Error(`group ${groupId} has no leader after ${timeoutMs} ms`);
  }

  /** Sends `signal` to a process (SIGSTOP/SIGCONT for pauses). */
  signal(name: string, signal: NodeJS.Signals): void {
    const managed = name === 'gateway' ? this.gateway : this.node(name);
    if (managed?.child?.pid === undefined) throw new Error(`${name} is not running`);
    managed.child.kill(signal);
  }

  /** `kill -9` of a node, and with it every replica it hosts; resolves once it is gone. */
  async kill(nodeId: string): Promise<void> {
    await this.supervisor.kill(this.node(nodeId));
  }

  /** Starts a node again on the same ports and data directory. */
  async restart(nodeId: string, extraArguments: readonly string[] = []): Promise<void> {
    const node = this.node(nodeId);
    if (isRunning(node)) throw new Error(`${nodeId} is still running`);
    await this.startNode(node, extraArguments);
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

  /**
   * SIGTERM to every process (gateway first), SIGKILL to any left after a timeout; then, with
   * `powerLoss`, unmounts the nodes' file systems (their data stays in the backing folders).
   */
  async stop(): Promise<void> {
    const processes: ManagedProcess[] = [
      ...(this.gateway === undefined ? [] : [this.gateway]),
      ...this.nodes,
    ];
    await Promise.all(processes.map((managed) => stopProcess(managed)));
    await this.disks.unmountAll();
    this.supervisor.closeLogs();
  }
}

/** Time allowed to a node's `/admin/replicas` routes, which persist a record and start or stop a replica. */
const adminRequestTimeoutMs = 20_000;

/** A node admin request that must answer 200; throws with the status and the answer otherwise. */
async function adminRequest(
  node: NodeProcessInfo,
  headers: Readonly<Record<string, string>>,
  method: 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<void> {
  const response = await fetch(`${node.url}${path}`, {
    method,
    headers: { ...headers, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(adminRequestTimeoutMs),
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`${method} ${path} on ${node.nodeId}: ${response.status} ${text.slice(0, 300)}`);
  }
}

/** The failed replicas each running node reports in its `/admin/status`. */
async function failedReplicasOf(
  nodes: readonly NodeProcessInfo[],
  headers: Readonly<Record<string, string>>,
): Promise<FailedReplica[]> {
  const failed: FailedReplica[] = [];
  for (const node of nodes) {
    const response = await fetch(`${node.url}/admin/status`, {
      headers,
      signal: AbortSignal.timeout(5_000),
    });
    if (response.status !== 200)
      throw new Error(
        `GET /admin/status on ${node.nodeId}: ${response.status} ${(await response.text()).slice(0, 300)}`,
      );
    const status = (await response.json()) as {
      replicas?: { groupId: string; health: string; message?: string; code?: string | null }[];
    };
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
