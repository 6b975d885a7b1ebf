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
import { replicaRole } from './admin.js';
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
export const repositoryRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const shardNodeMain = join(repositoryRoot, 'shard-node/dist/main.js');
export const gatewayMain = join(repositoryRoot, 'gateway/dist/main.js');

/**
 * The launcher's record, in the data root, of the replicas that have started there: each of them
 * founded its group (with `--bootstrap`, or `--bootstrap-groups` on a node) on its first start,
 * and is never given it again, so that one whose data directory is lost later is refused rather
 * than founding its group a second time, empty (docs/decisions/0009-found-a-group-once.md).
 */
export const foundedFileName = 'FOUNDED';

/** The file, under the data root, of the cluster secret the launcher made. */
export const clusterSecretFileName = 'cluster-secret';

/** The file, under the data root, of the admin token the launcher made. */
export const adminTokenFileName = 'admin-token';

/** What both shapes of a local cluster are given. */
export interface ProcessClusterOptions {
  /** Root of every shard-node's data directory and of the process logs. */
  readonly dataDirectory: string;
  readonly engine?: 'leveldb' | 'memory';
  readonly host?: string;
  /** 0 picks a free port. */
  readonly gatewayPort?: number;
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
   * Puts every shard-node's data directory on a file system that can lose power (`PowerFs`, the
   * project's FUSE pass-through that drops what was not fsynced at a cut), so that `powerCut` can
   * take a process down with its unsynced data. The mount at the process's data directory lasts
   * from its first start to `stop()`. Needs `/dev/fuse` and fuse3 (`deploy/powerfs/build.sh`
   * builds the daemon, installing them when missing). Default false.
   */
  readonly powerLoss?: boolean;
}

/** A shard-node process of a local cluster: a node, or a process of one replica. */
export interface ShardNodeProcess extends ManagedProcess {
  /** The port its peer transport listens on. */
  readonly peerListenPort: number;
  readonly dataDirectory: string;
}

/** The gateway's name, wherever a process is named. */
const gatewayName = 'gateway';
/** How long a leader search waits for one replica's `/admin/status`. */
const leaderStatusTimeoutMs = 500;
const leaderPollMs = 25;

/**
 * What both shapes of a local cluster of real processes on loopback share (`LocalNodeCluster`,
 * nodes hosting replicas of many groups; `LocalCluster`, a process per replica): the data root
 * with its `FOUNDED` record, cluster secret and admin token, the supervised shard-node processes and their
 * ports, the gateway, faults (signals, `kill -9`, power cuts) and the stop. A shape says which
 * shard-node processes it runs, with which flags, and what cluster configuration they share.
 */
export abstract class ProcessCluster<
  Member extends ShardNodeProcess,
  Options extends ProcessClusterOptions = ProcessClusterOptions,
> {
  gateway: ManagedProcess | undefined;
  /**
   * The replicas that have started on this data root before (from its `FOUNDED` record), and
   * those this start founded their group with. Only a replica never started founds its group.
   */
  readonly foundedReplicas = new Set<string>();
  /** The replicas this start founded (their group's first start on this data root). */
  readonly bootstrappedReplicas: string[] = [];
  /** Every exit of a ready process that this cluster did not cause, in order. */
  readonly unexpectedExits: ProcessExit[];
  protected readonly supervisor: ProcessSupervisor;
  /** The shard-nodes' power-loss file systems (mounted with `powerLoss` only). */
  protected readonly disks: PowerLossDisks;
  /** The next fixed client port; 0: free ports. */
  private nextPort: number;
  /** The admin token every process is given (`adminTokenPath`), once the start has made or read it. */
  private adminToken: string | undefined;

  protected constructor(
    protected readonly options: Options,
    /** The first shard-node's client port; the others follow, and peer ports sit 100 above. 0: free ports. */
    basePort: number,
  ) {
    this.nextPort = basePort;
    this.supervisor = new ProcessSupervisor(options);
    this.unexpectedExits = this.supervisor.unexpectedExits;
    this.disks = new PowerLossDisks({
      dataRoot: resolve(options.dataDirectory),
      logDirectory: this.logDirectory,
      supervisor: this.supervisor,
      ...(options.onLogLine === undefined ? {} : { onLogLine: options.onLogLine }),
    });
  }

  /** Starts a cluster made by a shape's `start`; a start that fails stops whatever it started. */
  protected static async launch<Cluster extends ProcessCluster<ShardNodeProcess, ProcessClusterOptions>>(
    cluster: Cluster,
  ): Promise<Cluster> {
    try {
      await cluster.startAll();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The shard-node processes, in their order. */
  protected abstract members(): readonly Member[];

  /** The shard-node process named `name` (a replica id, or a node id); throws if there is none. */
  protected abstract member(name: string): Member;

  /** The shard-node processes that host a replica of `groupId`. */
  protected abstract membersOf(groupId: string): readonly Member[];

  /** Lays out the shard-node processes and starts them (`startEvery`); throws when none serves. */
  protected abstract startMembers(): Promise<void>;

  /** Starts one shard-node process (again), with `extraArguments` added for this start only. */
  protected abstract startMember(member: Member, extraArguments?: readonly string[]): Promise<void>;

  /** Where a shard-node's power-loss file system keeps its data. */
  protected abstract backingDirectoryOf(member: Member): string;

  /** The configuration every process of the cluster is given. */
  abstract clusterConfig(): ClusterConfig;

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

  /**
   * The cluster secret every replica proves to its peers (`--cluster-secret-file`): made on the
   * data root's first start, readable by its owner only, kept for every later start.
   */
  get clusterSecretPath(): string {
    return join(resolve(this.options.dataDirectory), clusterSecretFileName);
  }

  /**
   * The admin token every process is given (`--admin-token-file`), made as the cluster secret is:
   * the operator's key to the admin routes, sent as `Authorization: Bearer <token>`
   * (docs/decisions/0017-admin-authentication.md).
   */
  get adminTokenPath(): string {
    return join(resolve(this.options.dataDirectory), adminTokenFileName);
  }

  /** The headers that carry the admin token: every request to an admin route of the cluster needs them. */
  adminHeaders(): Record<string, string> {
    if (this.adminToken === undefined) throw new Error('the cluster is not started');
    return adminHeaders(this.adminToken);
  }

  protected get foundedPath(): string {
    return join(resolve(this.options.dataDirectory), foundedFileName);
  }

  private async startAll(): Promise<void> {
    // Checked first: a data directory on a pseudo file system would hang the recursive mkdir below.
    await ensureDataDirectory(this.options.dataDirectory);
    mkdirSync(this.logDirectory, { recursive: true });
    for (const replicaId of await readFounded(this.foundedPath)) this.foundedReplicas.add(replicaId);
    await ensureSecretFile(this.clusterSecretPath);
    this.adminToken = await ensureSecretFile(this.adminTokenPath);
    await this.startMembers();
    const gatewayPort = this.options.gatewayPort ?? 0;
    const port = gatewayPort === 0 ? await freePort(this.host) : gatewayPort;
    this.gateway = {
      name: gatewayName,
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

  /** The next shard-node's client and peer ports: fixed ones in turn (peer = client + 100), or free ones. */
  protected async nextPorts(): Promise<{ port: number; peerListenPort: number }> {
    if (this.nextPort === 0) {
      return { port: await freePort(this.host), peerListenPort: await freePort(this.host) };
    }
    const port = this.nextPort++;
    return { port, peerListenPort: port + 100 };
  }

  /**
   * Starts every member at once. One that fails either fails the whole start (`fail`, for tests
   * and tools that need every process) or, still running but never ready, is stopped, since it is
   * not serving, and answered with why (`tolerate`, for `npm start`: the others may serve).
   */
  protected async startEvery(
    members: readonly Member[],
    failures: 'fail' | 'tolerate',
  ): Promise<{ member: Member; error: Error }[]> {
    const started = await Promise.allSettled(members.map((member) => this.startMember(member)));
    const failed: { member: Member; error: Error }[] = [];
    for (const [index, outcome] of started.entries()) {
      if (outcome.status === 'fulfilled') continue;
      const member = members[index] as Member;
      const error = outcome.reason instanceof Error ? outcome.reason : new Error(String(outcome.reason));
      if (failures === 'fail') throw error;
      await stopProcess(member);
      failed.push({ member, error });
    }
    return failed;
  }

  /**
   * Adds the replicas that started to the `FOUNDED` record, durably. Called once every member
   * started (or failed to): a replica that started is never founded again; one that failed has
   * not served, and may found on a later start.
   */
  protected async recordFounded(replicaIds: readonly string[]): Promise<void> {
    const fresh = replicaIds.filter((replicaId) => !this.foundedReplicas.has(replicaId));
    if (fresh.length === 0) return;
    for (const replicaId of fresh) this.foundedReplicas.add(replicaId);
    await writeFounded(this.foundedPath, [...this.foundedReplicas]);
  }

  /**
   * Spawns a shard-node process (on its power-loss file system, with `powerLoss`) with the flags
   * every one gets, and waits until it is ready. `identity` names what it runs (`--node-id`, or
   * `--group-id` and `--replica-id`), `founding` how it founds or joins its groups.
   */
  protected async spawnMember(
    member: Member,
    identity: readonly string[],
    founding: readonly string[],
    extraArguments: readonly string[],
  ): Promise<void> {
    if (this.options.powerLoss === true) {
      await this.disks.mount(member.name, this.backingDirectoryOf(member), member.dataDirectory);
    }
    const readyTimeoutMs = this.readyTimeoutMsOf(member);
    const argumentsList = [
      shardNodeMain,
      ...identity,
      `--host=${this.host}`,
      `--port=${member.port}`,
      `--peer-port=${member.peerListenPort}`,
      `--engine=${this.options.engine ?? 'leveldb'}`,
      `--data-dir=${member.dataDirectory}`,
      `--cluster=${JSON.stringify(this.clusterConfig())}`,
      `--cluster-secret-file=${this.clusterSecretPath}`,
      `--admin-token-file=${this.adminTokenPath}`,
      `--log-level=${this.options.logLevel ?? 'info'}`,
      ...(this.options.shardNodeArguments ?? []),
      ...founding,
      ...extraArguments,
    ];
    await (readyTimeoutMs === undefined
      ? this.supervisor.spawnAndWait(member, argumentsList)
      : this.supervisor.spawnAndWait(member, argumentsList, readyTimeoutMs));
  }

  /** How long `member` may take to answer `/readyz` 200 once spawned; the supervisor's bound by default. */
  protected readyTimeoutMsOf(_member: Member): number | undefined {
    return this.options.readyTimeoutMs;
  }

  /** Whether the named process (a shard-node, or `gateway`) is running. */
  isRunning(name: string): boolean {
    const managed = name === gatewayName ? this.gateway : this.member(name);
    return managed !== undefined && isRunning(managed);
  }

  /**
   * Whether the named shard-node runs and has finished starting (it answered `/readyz`): a fault
   * injector must leave it alone while it starts, or it fails the start it interrupts.
   */
  isReady(name: string): boolean {
    return this.supervisor.isReady(this.member(name));
  }

  /** The process id of a running process (a shard-node, or the gateway), if it runs. */
  pidOf(name: string): number | undefined {
    const managed = name === gatewayName ? this.gateway : this.member(name);
    return managed?.child?.pid;
  }

  /** Sends `signal` to a process (SIGKILL for kill -9, SIGSTOP/SIGCONT for pauses). */
  signal(name: string, signal: NodeJS.Signals): void {
    const managed = name === gatewayName ? this.gateway : this.member(name);
    if (managed?.child?.pid === undefined) throw new Error(`${name} is not running`);
    managed.child.kill(signal);
  }

  /**
   * `kill -9` of a shard-node (a node takes every replica it hosts with it); resolves once it is
   * gone. Refuses one that is not running: a caller that restarts what it killed must never bring
   * back a process that died on its own.
   */
  async kill(name: string): Promise<void> {
    await this.supervisor.kill(this.member(name));
  }

  /**
   * Starts a shard-node again on the same ports and data directory, with `extraArguments` added
   * for this start only (a test that plays a careless operator passes `--join` to a wiped replica).
   */
  async restart(name: string, extraArguments: readonly string[] = []): Promise<void> {
    const member = this.member(name);
    if (isRunning(member)) throw new Error(`${name} is still running`);
    await this.startMember(member, extraArguments);
  }

  /**
   * A power cut of the named shard-nodes (with `powerLoss`), and so of every replica they host:
   * each is killed (`kill -9`, an exit this cluster caused), and once all are gone their file
   * systems drop every write, creation, rename and removal not yet made durable. Resolves with
   * what each cut dropped, in the order given; the caller brings them back with `restart`.
   * Refuses, before killing any, one that is not running (as `kill` does). Once they are killed, a
   * cut that fails rejects with a `PowerCutError`: they are down all the same.
   */
  async powerCut(names: readonly string[]): Promise<PowerCut[]> {
    if (this.options.powerLoss !== true) {
      throw new Error('a power cut needs a cluster started with powerLoss');
    }
    return await this.disks.cut(
      names.map((name) => this.member(name)),
      (managed) => this.supervisor.kill(managed),
    );
  }

  /**
   * The shard-node whose replica of `groupId` says it leads, waiting up to `timeoutMs` for one;
   * those that do not answer (killed, paused), or are named in `excluding`, are skipped.
   */
  async leaderOf(groupId: string, timeoutMs = 10_000, excluding: readonly string[] = []): Promise<Member> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const member of this.membersOf(groupId)) {
        if (excluding.includes(member.name) || !isRunning(member)) continue;
        const role = await replicaRole(member, this.adminHeaders(), groupId, leaderStatusTimeoutMs).catch(
          () => undefined,
        );
        if (role === 'leader') return member;
      }
      await new Promise((resolveDelay) => setTimeout(resolveDelay, leaderPollMs));
    }
    throw new Error(`group ${groupId} has no leader after ${timeoutMs} ms`);
  }

  /**
   * SIGTERM to every process (gateway first), SIGKILL to any left after a timeout; then, with
   * `powerLoss`, unmounts the shard-nodes' file systems (their data stays in the backing folders).
   */
  async stop(): Promise<void> {
    const processes: ManagedProcess[] = [
      ...(this.gateway === undefined ? [] : [this.gateway]),
      ...this.members(),
    ];
    await Promise.all(processes.map((managed) => stopProcess(managed)));
    await this.disks.unmountAll();
    this.supervisor.closeLogs();
  }
}

/** The part of a cluster configuration that both shapes give the same way. */
export function clusterConfigOf(
  nodes: ClusterConfig['nodes'],
  groups: ClusterConfig['groups'],
): ClusterConfig {
  return {
    epoch: 1,
    virtualNodesPerGroup: 160,
    valueBytesMax: valueBytesMaxDefault,
    keyBytesMax: keyBytesMaxDefault,
    nodes,
    groups,
  };
}
