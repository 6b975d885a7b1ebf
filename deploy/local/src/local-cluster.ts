import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  adminHeaders,
  ensureDataDirectory,
  keyBytesMaxDefault,
  valueBytesMaxDefault,
  type ClusterConfig,
} from '@impulse/common';
import { ensureSecretFile, readFounded, writeFounded } from './founding.js';
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

/** The repository root, from `deploy/local/src` (tests) or `deploy/local/dist` (built). */
export { ProcessStartError, waitForReady, type ManagedProcess, type ProcessExit } from './supervisor.js';

export const repositoryRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const shardNodeMain = join(repositoryRoot, 'shard-node/dist/main.js');
export const gatewayMain = join(repositoryRoot, 'gateway/dist/main.js');

export interface LocalClusterOptions {
  readonly groups: number;
  readonly replicasPerGroup?: number;
  /** Root of every replica's data directory and of the process logs. */
  readonly dataDirectory: string;
  readonly engine?: 'leveldb' | 'memory';
  readonly host?: string;
  /** 0 picks a free port. */
  readonly gatewayPort?: number;
  /** First replica port; the others follow. 0 picks free ports. */
  readonly replicaBasePort?: number;
  /** Extra flags for every shard-node and for the gateway. */
  readonly shardNodeArguments?: readonly string[];
  readonly gatewayArguments?: readonly string[];
  readonly logLevel?: string;
  /** Copies each process's log lines here as well as to its log file. */
  readonly onLogLine?: (processName: string, line: string) => void;
  readonly readyTimeoutMs?: number;
  /**
   * Called when a process that had become ready exits without this cluster having stopped or
   * killed it (a crash, an exit of its own, a kill from outside). Such exits are also kept in
   * `unexpectedExits`.
   */
  readonly onUnexpectedExit?: (exit: ProcessExit) => void;
  /**
   * Puts something between the replicas of a group (the chaos tool's fault-injecting proxy): called
   * once per replica with the port its peer transport listens on, it answers the port the other
   * replicas must dial, which becomes the replica's advertised peer address.
   */
  readonly advertisePeerPort?: (replica: PeerIdentity, listenPort: number) => Promise<number>;
  /**
   * What a replica that fails to start does to the whole start. `fail` (the default, for tests and
   * tools that need every process) stops every process and rejects. `tolerate` (for `npm start`)
   * keeps every healthy process running and records the failure in `startFailures`: the other
   * replicas of the group may still hold a majority and serve, and the other groups serve anyway.
   */
  readonly replicaStartFailures?: 'fail' | 'tolerate';
  /**
   * Puts every replica's data directory on a file system that can lose power (`PowerFs`, the
   * project's FUSE pass-through that drops what was not fsynced at a cut), so that `powerCut` can
   * take a replica down with its unsynced data. The data lives in
   * `<dataDirectory>/power-backing/<group>/<replica>/root`; the mount at the replica's data
   * directory lasts from its first start to `stop()` (or `retire`). Needs `/dev/fuse` and fuse3
   * (`deploy/powerfs/build.sh` builds the daemon, installing them when missing). Default false.
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

export interface ReplicaProcess extends ManagedProcess {
  readonly groupId: string;
  readonly replicaId: string;
  readonly raftId: number;
  /** The advertised peer port: what the other replicas dial. */
  readonly peerPort: number;
  /** The port the replica's peer transport listens on (`peerPort` unless something sits between). */
  readonly peerListenPort: number;
  readonly dataDirectory: string;
  /**
   * Whether the replica joined a live group (`--join`) rather than founding it. A joiner restarts
   * with `--join` too: one killed before its first snapshot arrived must not found a group of its own.
   */
  readonly joined: boolean;
}

/**
 * The launcher's record, in the data root, of the replicas that have started there: each of them
 * founded its group (with `--bootstrap`) on its first start, and is never given `--bootstrap`
 * again, so that one whose data directory is lost later is refused rather than founding its group
 * a second time, empty (docs/decisions/0009-found-a-group-once.md).
 */
export const foundedFileName = 'FOUNDED';

/**
 * A cluster of real processes on loopback: shard-node replicas and a gateway, each with its own
 * log file. Used by `npm start`, the multi-process tests and the benchmarks.
 */
export class LocalCluster {
  readonly replicas: ReplicaProcess[] = [];
  gateway: ManagedProcess | undefined;
  /** Replicas that failed to start (only with `replicaStartFailures: 'tolerate'`). */
  readonly startFailures: ReplicaStartFailure[] = [];
  /**
   * The replicas that have started on this data root before (from its `FOUNDED` record), and
   * those this start founded their group with. Only a replica never started is given `--bootstrap`.
   */
  readonly foundedReplicas = new Set<string>();
  /** The replicas this start gave `--bootstrap` (the first start of their group on this data root). */
  readonly bootstrappedReplicas: string[] = [];
  /** Every exit of a ready process that this cluster did not cause, in order. */
  readonly unexpectedExits: ProcessExit[];
  private readonly supervisor: ProcessSupervisor;
  /** The highest Raft id each group has had, retired replicas included. */
  private readonly highestRaftIds = new Map<string, number>();
  /** The admin token every process is given (`adminTokenPath`), once the start has made or read it. */
  private adminToken: string | undefined;
  /** The replicas' power-loss file systems (mounted with `powerLoss` only). */
  private readonly disks: PowerLossDisks;

  private constructor(private readonly options: LocalClusterOptions) {
    this.supervisor = new ProcessSupervisor(options);
    this.unexpectedExits = this.supervisor.unexpectedExits;
    this.disks = new PowerLossDisks({
      dataRoot: resolve(options.dataDirectory),
      logDirectory: this.logDirectory,
      supervisor: this.supervisor,
      ...(options.onLogLine === undefined ? {} : { onLogLine: options.onLogLine }),
    });
  }

  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const cluster = new LocalCluster(options);
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

  clusterConfig(): ClusterConfig {
    const groupIds = [...new Set(this.replicas.map((replica) => replica.groupId))];
    return {
      epoch: 1,
      virtualNodesPerGroup: 160,
      valueBytesMax: valueBytesMaxDefault,
      keyBytesMax: keyBytesMaxDefault,
      nodes: [],
      groups: groupIds.map((id) => ({
        id,
        replicas: this.replicas
          .filter((replica) => replica.groupId === id)
          .map((replica) => ({
            id: replica.replicaId,
            node: null,
            url: replica.url,
            raftId: replica.raftId,
            peerAddress: `${this.host}:${replica.peerPort}`,
          })),
      })),
    };
  }

  replica(replicaId: string): ReplicaProcess {
    const replica = this.replicas.find((candidate) => candidate.replicaId === replicaId);
    if (replica === undefined) throw new Error(`no replica ${replicaId}`);
    return replica;
  }

  private async startAll(): Promise<void> {
    // Checked first: a data directory on a pseudo file system would hang the recursive mkdir below.
    await ensureDataDirectory(this.options.dataDirectory);
    mkdirSync(this.logDirectory, { recursive: true });
    for (const replicaId of await readFounded(this.foundedPath)) this.foundedReplicas.add(replicaId);
    await ensureSecretFile(this.clusterSecretPath);
    this.adminToken = await ensureSecretFile(this.adminTokenPath);
    const replicasPerGroup = this.options.replicasPerGroup ?? 1;
    let nextPort = this.options.replicaBasePort ?? 0;
    for (let group = 1; group <= this.options.groups; group++) {
      for (let replica = 1; replica <= replicasPerGroup; replica++) {
        const groupId = `g${group}`;
        const replicaId = `${groupId}-r${replica}`;
        const port = nextPort === 0 ? await freePort(this.host) : nextPort++;
        // Peer ports sit 100 above client ports when ports are fixed (7001 → 7101).
        const peerListenPort = nextPort === 0 ? await freePort(this.host) : port + 100;
        const identity = { groupId, replicaId, raftId: replica };
        this.replicas.push({
          name: replicaId,
          ...identity,
          peerPort: await this.advertisedPeerPort(identity, peerListenPort),
          peerListenPort,
          joined: false,
          port,
          url: `http://${this.host}:${port}`,
          dataDirectory: join(resolve(this.options.dataDirectory), groupId, replicaId),
          logFile: join(this.logDirectory, `${replicaId}.log`),
          child: undefined,
        });
      }
    }
    const started = await Promise.allSettled(this.replicas.map((replica) => this.startReplica(replica)));
    for (const [index, outcome] of started.entries()) {
      if (outcome.status === 'fulfilled') continue;
      const replica = this.replicas[index] as ReplicaProcess;
      const error = outcome.reason instanceof Error ? outcome.reason : new Error(String(outcome.reason));
      if ((this.options.replicaStartFailures ?? 'fail') === 'fail') throw error;
      // A replica that is still running but never became ready is stopped: it is not serving.
      await stopProcess(replica);
      this.startFailures.push({ replica, error });
    }
    // Recorded once every replica started (or failed to): a replica that started is never given
    // --bootstrap again. One that failed has not served, and may found on a later start.
    const failed = new Set(this.startFailures.map((failure) => failure.replica.replicaId));
    const running = this.replicas.filter((replica) => !failed.has(replica.replicaId));
    if (running.some((replica) => !this.foundedReplicas.has(replica.replicaId))) {
      for (const replica of running) this.foundedReplicas.add(replica.replicaId);
      await writeFounded(this.foundedPath, [...this.foundedReplicas]);
    }
    if (this.startFailures.length === this.replicas.length) {
      throw this.startFailures[0]?.error ?? new Error('no replica started');
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
    await this.startGateway();
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
    const replicaId = `${groupId}-r${raftId}`;
    const port = await freePort(this.host);
    const peerListenPort = await freePort(this.host);
    const identity = { groupId, replicaId, raftId };
    const replica: ReplicaProcess = {
      name: replicaId,
      ...identity,
      peerPort: await this.advertisedPeerPort(identity, peerListenPort),
      peerListenPort,
      joined: true,
      port,
      url: `http://${this.host}:${port}`,
      dataDirectory: join(resolve(this.options.dataDirectory), groupId, replicaId),
      logFile: join(this.logDirectory, `${replicaId}.log`),
      child: undefined,
    };
    this.replicas.push(replica);
    await this.startReplica(replica);
    return replica;
  }

  /**
   * The cluster secret every replica proves to its peers (`--cluster-secret-file`): made on the
   * data root's first start, readable by its owner only, kept for every later start.
   */
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

  private async advertisedPeerPort(identity: PeerIdentity, listenPort: number): Promise<number> {
    return this.options.advertisePeerPort === undefined
      ? listenPort
      : await this.options.advertisePeerPort(identity, listenPort);
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

  /**
   * A power cut of the named replicas (with `powerLoss`): each is killed (`kill -9`, an exit this
   * cluster caused), and once all are gone their file systems drop every write, creation, rename
   * and removal not yet made durable. Resolves with what each cut dropped, in the order given; the
   * caller brings them back with `restart`. Refuses, before killing any, a replica that is not
   * running (as `kill` does: one that died on its own must not be revived). Once they are killed,
   * a cut that fails rejects with a `PowerCutError`: the replicas are down all the same.
   */
  async powerCut(replicaIds: readonly string[]): Promise<PowerCut[]> {
    if (this.options.powerLoss !== true) {
      throw new Error('a power cut needs a cluster started with powerLoss');
    }
    return await this.disks.cut(
      replicaIds.map((replicaId) => this.replica(replicaId)),
      (managed) => this.supervisor.kill(managed),
    );
  }

  private async startReplica(replica: ReplicaProcess, extraArguments: readonly string[] = []): Promise<void> {
    if (this.options.powerLoss === true) {
      await this.disks.mount(replica.replicaId, this.powerBackingDirectory(replica), replica.dataDirectory);
    }
    // A founding replica that never started on this data root founds its group; any other start
    // must find the group's Raft state in its data directory (or join), or is refused.
    const bootstrap = !replica.joined && !this.foundedReplicas.has(replica.replicaId);
    if (bootstrap) this.bootstrappedReplicas.push(replica.replicaId);
    const argumentsList = [
      shardNodeMain,
      `--group-id=${replica.groupId}`,
      `--replica-id=${replica.replicaId}`,
      `--host=${this.host}`,
      `--port=${replica.port}`,
      `--peer-port=${replica.peerListenPort}`,
      `--engine=${this.options.engine ?? 'leveldb'}`,
      `--data-dir=${replica.dataDirectory}`,
      `--cluster=${JSON.stringify(this.clusterConfig())}`,
      `--cluster-secret-file=${this.clusterSecretPath}`,
      `--admin-token-file=${this.adminTokenPath}`,
      `--log-level=${this.options.logLevel ?? 'info'}`,
      ...(this.options.shardNodeArguments ?? []),
      ...(replica.joined ? ['--join'] : []),
      ...(bootstrap ? ['--bootstrap'] : []),
      ...extraArguments,
    ];
    await this.supervisor.spawnAndWait(replica, argumentsList);
  }

  private async startGateway(): Promise<void> {
    const gateway = this.gateway;
    if (gateway === undefined) throw new Error('the gateway is not configured');
    const argumentsList = [
      gatewayMain,
      `--host=${this.host}`,
      `--port=${gateway.port}`,
      `--cluster=${JSON.stringify(this.clusterConfig())}`,
      `--admin-token-file=${this.adminTokenPath}`,
      `--log-level=${this.options.logLevel ?? 'info'}`,
      ...(this.options.gatewayArguments ?? []),
    ];
    await this.supervisor.spawnAndWait(gateway, argumentsList);
  }

  /**
   * Whether the named replica runs and has finished starting (it answered `/readyz`): a fault
   * injector must leave a replica alone while it starts, or it fails the start it interrupts.
   */
  isReady(replicaId: string): boolean {
    return this.supervisor.isReady(this.replica(replicaId));
  }

  /** Whether the named process (a replica, or `gateway`) is running. */
  isRunning(name: string): boolean {
    const managed = name === 'gateway' ? this.gateway : this.replica(name);
    return managed !== undefined && isRunning(managed);
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

  /**
   * The replica of `groupId` that says it is the leader, waiting up to `timeoutMs` for one; replicas
   * that do not answer (killed, paused) are skipped.
   */
  async leaderOf(
    groupId: string,
    timeoutMs = 10_000,
    excluding: readonly string[] = [],
  ): Promise<ReplicaProcess> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const replica of this.group(groupId)) {
        if (excluding.includes(replica.replicaId) || replica.child === undefined) continue;
        try {
          const response = await fetch(`${replica.url}/admin/status`, {
            headers: this.adminHeaders(),
            signal: AbortSignal.timeout(500),
          });
          const status = (await response.json()) as { role?: string };
          if (status.role === 'leader') return replica;
        } catch {
          // Not answering: not the leader we are looking for.
        }
      }
      await new Promise((resolveDelay) => setTimeout(resolveDelay, 50));
    }
    throw new Error(`group ${groupId} has no leader after ${timeoutMs} ms`);
  }

  /** Sends `signal` to a process (SIGKILL for kill -9, SIGSTOP/SIGCONT for pauses). */
  signal(name: string, signal: NodeJS.Signals): void {
    const managed = name === 'gateway' ? this.gateway : this.replica(name);
    if (managed?.child?.pid === undefined) throw new Error(`${name} is not running`);
    managed.child.kill(signal);
  }

  /**
   * `kill -9` of a replica; resolves once it is gone. Refuses one that is not running: a caller that
   * restarts what it killed must never bring back a process that died on its own.
   */
  async kill(replicaId: string): Promise<void> {
    await this.supervisor.kill(this.replica(replicaId));
  }

  /**
   * Starts a replica again on the same port and data directory, with `extraArguments` added for
   * this start only (a test that plays a careless operator passes `--join` to a wiped replica).
   */
  async restart(replicaId: string, extraArguments: readonly string[] = []): Promise<void> {
    const replica = this.replica(replicaId);
    if (replica.child !== undefined && replica.child.exitCode === null && replica.child.signalCode === null) {
      throw new Error(`${replicaId} is still running`);
    }
    await this.startReplica(replica, extraArguments);
  }

  /**
   * SIGTERM to every process (gateway first), then SIGKILL to any left after a timeout; then, with
   * `powerLoss`, unmounts the replicas' file systems (their data stays in the backing folders).
   */
  async stop(): Promise<void> {
    const processes: ManagedProcess[] = [
      ...(this.gateway === undefined ? [] : [this.gateway]),
      ...this.replicas,
    ];
    await Promise.all(processes.map((managed) => stopProcess(managed)));
    await this.disks.unmountAll();
    this.supervisor.closeLogs();
  }
}

/** The file, under the data root, of the cluster secret the launcher made. */
export const clusterSecretFileName = 'cluster-secret';

/** The file, under the data root, of the admin token the launcher made. */
export const adminTokenFileName = 'admin-token';
