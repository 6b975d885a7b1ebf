/**
 * The node process: `shard-node --node-id n1` hosts a replica of every group whose cluster
 * configuration places one on node n1, on one client port, one peer port and one data directory.
 *
 * - The replicas run in one `Node` (one Raft log for all of them, one fdatasync per round), share
 *   one tick timer per interval (`sharedIntervals`) and one `NodeTransport` (one connection per
 *   node pair, one frame per round, coalesced heartbeats).
 * - The client port routes each request to the replica of the group its `x-impulse-group` header
 *   names (`node-app.ts`); `/readyz`, `/admin/status` and `/metrics` without the header are the
 *   node's.
 * - A replica that fails is stopped and reported; the process and its other replicas go on.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import {
  ConfigError,
  ImpulseError,
  closeServerGracefully,
  createHttpServer,
  createMetricsRegistry,
  loadClusterConfig,
  parsePeerAddress,
  type ClusterConfig,
  type Logger,
  type NodeSpec,
} from '@impulse/common';
import type { ShardNodeConfig } from '../config.js';
import { DataDirectory } from '../data-directory.js';
import { warnWithoutAdminToken } from '../admin-token-warning.js';
import { replicaSettingsOf } from '../replica-settings.js';
import { sharedIntervals, systemScheduler, type MemberSpec } from '../replica/index.js';
import { ConsistencyChecker } from '../server/consistency.js';
import { createShardApp } from '../server/app.js';
import type { RequestListener } from '../server/kv.js';
import { isGroupId } from '../raft-log/index.js';
import { NodeTransport } from '../transport/index.js';
import {
  readHostedRecord,
  writeHostedRecord,
  type AddedReplica,
  type HostedRecord,
} from './hosted-record.js';
import { createNodeApp, type ReplicaToAdd } from './node-app.js';
import { Node, type HostedReplica } from './node.js';

/** What the cluster configuration says this node is and hosts. */
export interface NodeHosting {
  readonly node: NodeSpec;
  readonly hosted: readonly HostedReplica[];
  /** The port the peer transport listens on: `--peer-port`, or the node's advertised one. */
  readonly peerListenPort: number;
}

/** The member entries of a group of the cluster configuration. */
function membersOfGroup(group: ClusterConfig['groups'][number], fallbackHost: string): MemberSpec[] {
  return group.replicas.map((replica): MemberSpec => {
    const address = replica.peerAddress === null ? undefined : parsePeerAddress(replica.peerAddress);
    return {
      raftId: replica.raftId,
      replicaId: replica.id,
      url: replica.url,
      peerHost: address?.host ?? fallbackHost,
      peerPort: address?.port ?? 0,
    };
  });
}

/**
 * This node's entry of the cluster configuration and the replicas it hosts (every group with a
 * replica placed on it). Throws `ConfigError` when the node is not in the configuration.
 */
export function nodeHostingOf(config: ShardNodeConfig): NodeHosting {
  if (config.cluster === '' && config.clusterFile === '')
    throw new ConfigError([
      '--node-id needs a cluster configuration (--cluster-file or --cluster) that lists the node',
    ]);
  const cluster = loadClusterConfig({ json: config.cluster, file: config.clusterFile });
  const node = cluster.nodes.find((candidate) => candidate.id === config.nodeId);
  if (node === undefined) {
    const known = cluster.nodes.map((candidate) => candidate.id);
    throw new ConfigError([
      `node ${config.nodeId} is not in the cluster configuration's nodes (${known.length === 0 ? 'it lists none' : known.join(', ')})`,
    ]);
  }
  const bootstrapGroups = new Set(config.bootstrapGroups.split(',').filter((groupId) => groupId !== ''));
  const hosted: HostedReplica[] = [];
  for (const group of cluster.groups) {
    const replica = group.replicas.find((candidate) => candidate.node === node.id);
    if (replica === undefined) continue;
    const members = membersOfGroup(group, config.host);
    const self = members.find((member) => member.replicaId === replica.id) as MemberSpec;
    hosted.push({
      groupId: group.id,
      self,
      initialMembers: members,
      join: false,
      bootstrap: config.bootstrap || bootstrapGroups.delete(group.id),
    });
  }
  if (bootstrapGroups.size > 0) {
    throw new ConfigError([
      `--bootstrap-groups names ${[...bootstrapGroups].join(', ')}, of which node ${node.id} hosts no replica in the cluster configuration`,
    ]);
  }
  const advertised = parsePeerAddress(node.peerAddress) as { port: number };
  return { node, hosted, peerListenPort: config.peerPort === 0 ? advertised.port : config.peerPort };
}

/**
 * The replicas a node starts: those the cluster configuration places on it, but for the groups
 * removed here at run time, and those added at run time (as joiners).
 */
function hostedOf(configured: readonly HostedReplica[], record: HostedRecord): HostedReplica[] {
  const added = new Map(record.added.map((replica) => [replica.groupId, replica]));
  const removed = new Set(record.removed);
  const hosted = configured.filter((replica) => !removed.has(replica.groupId) && !added.has(replica.groupId));
  for (const replica of added.values()) {
    hosted.push({
      groupId: replica.groupId,
      self: replica.self,
      initialMembers: replica.members,
      join: true,
      bootstrap: false,
    });
  }
  return hosted;
}

export function nodeDataDirectoryOf(config: ShardNodeConfig): string {
  return resolve(config.dataDir !== '' ? config.dataDir : `data/${config.nodeId}`);
}

/** A hosted replica's HTTP routes and consistency checks, kept while the same replica runs. */
interface ReplicaRoutes {
  readonly replica: object;
  readonly listener: RequestListener;
  readonly consistencyChecker: ConsistencyChecker;
  readonly stopChecks: () => void;
}

export class NodeProcess {
  private readonly routes = new Map<string, ReplicaRoutes>();
  private ready = false;
  private readonly server: Server;

  private constructor(
    readonly config: ShardNodeConfig,
    private readonly logger: Logger,
    readonly node: Node,
    readonly transport: NodeTransport,
    private readonly dataDirectory: DataDirectory,
    private readonly registry: ReturnType<typeof createMetricsRegistry>,
    private readonly startedAtMs: number,
    private readonly spec: NodeSpec,
    private record: HostedRecord,
  ) {
    const app = createNodeApp({
      node,
      logger,
      registry,
      startedAtMs,
      isReady: () => this.ready,
      adminToken: config.adminToken,
      replicaListener: (groupId) => this.routesOf(groupId)?.listener,
      addReplica: (replica) => this.addReplica(replica),
      removeReplica: (groupId, force) => this.removeReplica(groupId, force),
    });
    this.server = createHttpServer({ limits: config, listener: app, registry, logger });
  }

  static async start(config: ShardNodeConfig, logger: Logger): Promise<NodeProcess> {
    const hosting = nodeHostingOf(config);
    const directory = nodeDataDirectoryOf(config);
    const dataDirectory = await DataDirectory.open({
      directory,
      identity: { clusterId: config.clusterId, nodeId: config.nodeId, engine: config.engine },
      logger,
    });
    let record: HostedRecord;
    try {
      record = await readHostedRecord(directory);
    } catch (error) {
      dataDirectory.release();
      throw error;
    }
    let transport: NodeTransport | undefined;
    let node: Node | undefined;
    try {
      const registry = createMetricsRegistry({ service: 'shard-node', node: config.nodeId });
      if (config.clusterSecret === undefined) {
        logger.warn(
          'shard-node: no cluster secret (--cluster-secret-file or IMPULSE_CLUSTER_SECRET): peer links are not authenticated, and anyone who reaches the peer port can speak for a node',
        );
      }
      warnWithoutAdminToken(config, logger);
      const advertised = parsePeerAddress(hosting.node.peerAddress) as { host: string; port: number };
      transport = await NodeTransport.start({
        // Listen where the client API listens (0.0.0.0 in a container); peers dial the advertised address.
        listenHost: config.host,
        listenPort: hosting.peerListenPort,
        advertisedAddress: advertised,
        clusterId: config.clusterId,
        ...(config.clusterSecret === undefined ? {} : { secret: config.clusterSecret }),
        logger,
        registry,
      });
      const openedTransport = transport;
      node = await Node.start(
        {
          nodeId: config.nodeId,
          dataDirectory: directory,
          settings: replicaSettingsOf(config),
          openTransport: (groupId, raftId) => openedTransport.openReplica(groupId, raftId),
          logger,
          registry,
          // One tick timer per interval for every hosted replica: their heartbeats leave in one round.
          scheduler: sharedIntervals(systemScheduler),
        },
        hostedOf(hosting.hosted, record),
      );
      const started = new NodeProcess(
        config,
        logger,
        node,
        transport,
        dataDirectory,
        registry,
        Date.now(),
        hosting.node,
        record,
      );
      await started.listen();
      logger.info(
        {
          nodeId: config.nodeId,
          host: config.host,
          port: started.port,
          peerPort: transport.port,
          engine: config.engine,
          dataDir: directory,
          groups: hosting.hosted.map((replica) => replica.groupId),
          failed: node.failedReplicas().map((failure) => failure.groupId),
        },
        'server: listening',
      );
      return started;
    } catch (error) {
      await node?.stop().catch(() => undefined);
      await transport?.stop().catch(() => undefined);
      dataDirectory.release();
      throw error;
    }
  }

  private async listen(): Promise<void> {
    this.server.listen(this.config.port, this.config.host);
    await once(this.server, 'listening');
    this.startReplicaRoutes();
    this.ready = true;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * The HTTP routes of the running replica of `groupId`, built the first time they are asked for
   * and again when the replica is another one (removed and added back).
   */
  private routesOf(groupId: string): ReplicaRoutes | undefined {
    const replica = this.node.replicaOf(groupId);
    const routes = this.routes.get(groupId);
    if (replica === undefined) {
      if (routes !== undefined) {
        routes.stopChecks();
        this.routes.delete(groupId);
      }
      return undefined;
    }
    if (routes?.replica === replica) return routes;
    routes?.stopChecks();
    const logger = this.logger.child({ groupId });
    const consistencyChecker = new ConsistencyChecker(replica, logger, this.registry, this.config.adminToken);
    const config = { ...this.config, groupId, replicaId: replica.status().replicaId };
    const listener = createShardApp({
      config,
      replica,
      logger,
      registry: this.registry,
      startedAtMs: this.startedAtMs,
      isReady: () => this.ready,
      consistencyChecker,
    });
    const stopChecks =
      this.config.consistencyCheckInterval > 0
        ? consistencyChecker.startPeriodic(this.config.consistencyCheckInterval)
        : () => {};
    const built = { replica, listener, consistencyChecker, stopChecks };
    this.routes.set(groupId, built);
    return built;
  }

  /**
   * Starts a replica of `wanted.groupId` here that joins its live group (`POST /admin/replicas`):
   * it waits for the leader's log or snapshot, once the leader adds it (`POST /admin/members`).
   * Recorded in `HOSTED` first, so that a restart hosts it again, as a joiner.
   */
  private async addReplica(wanted: ReplicaToAdd): Promise<unknown> {
    if (!isGroupId(wanted.groupId))
      throw new ImpulseError('INVALID_REQUEST', `${JSON.stringify(wanted.groupId)} is not a group id`);
    if (this.node.replicaOf(wanted.groupId) !== undefined)
      throw new ImpulseError(
        'MEMBERSHIP_CHANGE_REFUSED',
        `node ${this.config.nodeId} already hosts a replica of ${wanted.groupId}`,
      );
    const address = parsePeerAddress(this.spec.peerAddress) as { host: string; port: number };
    const self: MemberSpec = {
      replicaId: wanted.replicaId,
      raftId: wanted.raftId,
      url: this.spec.url,
      peerHost: address.host,
      peerPort: address.port,
    };
    const members = [...wanted.members.filter((member) => member.raftId !== self.raftId), self];
    const added: AddedReplica = { groupId: wanted.groupId, self, members };
    // Whatever an earlier replica of the group left here goes first (a removal a crash or a power
    // cut cut short): the new replica starts empty. Then the record, then the start: a crash
    // between two steps leaves nothing hosted, or a joiner on an empty directory.
    await this.node.clearLeftovers(wanted.groupId);
    await this.saveRecord({
      added: [...this.record.added.filter((replica) => replica.groupId !== wanted.groupId), added],
      removed: this.record.removed.filter((groupId) => groupId !== wanted.groupId),
    });
    try {
      const replica = await this.node.addReplica({
        groupId: wanted.groupId,
        self,
        initialMembers: members,
        join: true,
        bootstrap: false,
      });
      this.routesOf(wanted.groupId);
      return replica.status();
    } catch (error) {
      if (error instanceof ImpulseError) throw error;
      // Recorded as failed by the node (its /admin/status says why); answered with a code.
      const code = (error as { code?: unknown }).code;
      throw new ImpulseError(
        'REPLICA_FAILED',
        `the replica of ${wanted.groupId} did not start on node ${this.config.nodeId}: ${error instanceof Error ? error.message : String(error)}`,
        { details: { group: wanted.groupId, failureCode: typeof code === 'string' ? code : null } },
      );
    }
  }

  /**
   * Stops the replica of `groupId` and deletes its data (`DELETE /admin/replicas/{group}`).
   * Refused while the replica is still a voter or learner of its group, as it last knew it, unless
   * forced: deleting a member's data takes a replica from its group as surely as a lost disk.
   */
  private async removeReplica(groupId: string, force: boolean): Promise<void> {
    const replica = this.node.replicaOf(groupId);
    const failed = this.node.failedReplicas().some((failure) => failure.groupId === groupId);
    if (replica === undefined && !failed)
      throw new ImpulseError('GROUP_NOT_HOSTED', `node ${this.config.nodeId} hosts no replica of ${groupId}`);
    if (replica !== undefined && !force) {
      const status = replica.status();
      if (status.voters.includes(status.raftId) || status.learners.includes(status.raftId))
        throw new ImpulseError(
          'MEMBERSHIP_CHANGE_REFUSED',
          `the replica ${status.replicaId} of ${groupId} is still a member of its group: remove it there first (DELETE /admin/members/${status.replicaId} on the leader), or force the removal (?force=true) to drop a replica whose group no longer needs it`,
        );
    }
    await this.saveRecord({
      added: this.record.added.filter((added) => added.groupId !== groupId),
      removed: [...new Set([...this.record.removed, groupId])],
    });
    this.routes.get(groupId)?.stopChecks();
    this.routes.delete(groupId);
    await this.node.removeReplica(groupId);
  }

  private async saveRecord(record: HostedRecord): Promise<void> {
    await writeHostedRecord(nodeDataDirectoryOf(this.config), record);
    this.record = record;
  }

  /** Builds every hosted replica's routes now, so that their periodic checks run from the start. */
  private startReplicaRoutes(): void {
    for (const groupId of this.node.runningReplicas().keys()) this.routesOf(groupId);
  }

  /**
   * Stops taking requests, lets those in flight finish (up to the shutdown timeout), stops every
   * replica (flushing the node log and closing the engines), then the transport. Idempotent.
   */
  async stop(): Promise<void> {
    if (!this.ready && !this.server.listening) return;
    this.ready = false;
    for (const routes of this.routes.values()) routes.stopChecks();
    this.routes.clear();
    this.logger.info('server: stopping');
    await closeServerGracefully(this.server, this.config.shutdownTimeout);
    await this.node.stop();
    await this.transport.stop();
    this.dataDirectory.release();
    this.logger.info('server: stopped, log and engines closed');
  }
}
