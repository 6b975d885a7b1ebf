import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import {
  ConfigError,
  closeServerGracefully,
  createHttpServer,
  createMetricsRegistry,
  loadClusterConfig,
  parsePeerAddress,
  type Logger,
} from '@impulse/common';
import type { ShardNodeConfig } from './config.js';
import { DataDirectory } from './data-directory.js';
import { warnWithoutAdminToken } from './admin-token-warning.js';
import { replicaSettingsOf } from './replica-settings.js';
import { Replica, type MemberSpec } from './replica/index.js';
import { createShardApp } from './server/app.js';
import { ConsistencyChecker } from './server/consistency.js';

export function dataDirectoryOf(config: ShardNodeConfig): string {
  return resolve(config.dataDir !== '' ? config.dataDir : `data/${config.groupId}/${config.replicaId}`);
}

/**
 * The members of this replica's group, from the cluster configuration (without one, the replica is
 * a group of one), each with its advertised peer address, and the port this replica's peer
 * transport listens on (`--peer-port`, or the advertised port when 0).
 */
export function membersOf(config: ShardNodeConfig): {
  self: MemberSpec;
  members: MemberSpec[];
  peerListenPort: number;
} {
  const url = `http://${config.host}:${config.port}`;
  if (config.cluster === '' && config.clusterFile === '') {
    const self = {
      raftId: 1,
      replicaId: config.replicaId,
      url,
      peerHost: config.host,
      peerPort: config.peerPort,
    };
    return { self, members: [self], peerListenPort: config.peerPort };
  }
  const cluster = loadClusterConfig({ json: config.cluster, file: config.clusterFile });
  const group = cluster.groups.find((candidate) => candidate.id === config.groupId);
  if (group === undefined)
    throw new ConfigError([`group ${config.groupId} is not in the cluster configuration`]);
  const members = group.replicas.map((replica): MemberSpec => {
    const address = replica.peerAddress === null ? undefined : parsePeerAddress(replica.peerAddress);
    return {
      raftId: replica.raftId,
      replicaId: replica.id,
      url: replica.url,
      peerHost: address?.host ?? config.host,
      peerPort: address?.port ?? 0,
    };
  });
  const self = members.find((member) => member.replicaId === config.replicaId);
  if (self === undefined) {
    throw new ConfigError([
      `replica ${config.replicaId} is not in group ${config.groupId} of the cluster configuration`,
    ]);
  }
  if (self.peerPort !== 0) {
    // The advertised address stays what the configuration says, whatever port the transport listens
    // on: the member directory (replicated, carried in snapshots) tells peers where to dial, and
    // something may sit between the two (the chaos tool's fault proxy, a port mapping).
    return { self, members, peerListenPort: config.peerPort === 0 ? self.peerPort : config.peerPort };
  }
  // No advertised port: this replica is dialled where it listens.
  const withPort = { ...self, peerPort: config.peerPort };
  return {
    self: withPort,
    members: members.map((member) => (member === self ? withPort : member)),
    peerListenPort: config.peerPort,
  };
}

/** One replica: its Raft host (log, transport, state machine) and its HTTP server. */
export class ShardNode {
  private constructor(
    private readonly readiness: { ready: boolean },
    readonly config: ShardNodeConfig,
    private readonly logger: Logger,
    readonly replica: Replica,
    private readonly server: Server,
    private readonly dataDirectory: DataDirectory,
    /** Stops the periodic consistency checks (a no-op when they are off). */
    private readonly stopConsistencyChecks: () => void,
  ) {}

  static async start(config: ShardNodeConfig, logger: Logger): Promise<ShardNode> {
    const directory = dataDirectoryOf(config);
    const { self, members, peerListenPort } = membersOf(config);
    // Locked and identified before anything in it is opened (see data-directory.ts).
    const dataDirectory = await DataDirectory.open({
      directory,
      identity: {
        clusterId: config.clusterId,
        groupId: config.groupId,
        replicaId: config.replicaId,
        raftId: self.raftId,
        engine: config.engine,
      },
      logger,
    });
    try {
      return await ShardNode.startReplica(
        config,
        logger,
        directory,
        self,
        members,
        peerListenPort,
        dataDirectory,
      );
    } catch (error) {
      dataDirectory.release();
      throw error;
    }
  }

  private static async startReplica(
    config: ShardNodeConfig,
    logger: Logger,
    directory: string,
    self: MemberSpec,
    members: MemberSpec[],
    peerListenPort: number,
    dataDirectory: DataDirectory,
  ): Promise<ShardNode> {
    const registry = createMetricsRegistry({
      service: 'shard-node',
      group: config.groupId,
      replica: config.replicaId,
    });
    if (config.clusterSecret === undefined && members.length > 1) {
      logger.warn(
        'shard-node: no cluster secret (--cluster-secret-file or IMPULSE_CLUSTER_SECRET): peer links are not authenticated, and anyone who reaches the peer port can speak for a member',
      );
    }
    warnWithoutAdminToken(config, logger);
    const replica = await Replica.start({
      ...replicaSettingsOf(config),
      groupId: config.groupId,
      self,
      // Listen where the client API listens (0.0.0.0 in a container); peers dial the advertised address.
      peerListenHost: config.host,
      peerListenPort,
      initialMembers: members,
      join: config.join,
      bootstrap: config.bootstrap,
      dataDirectory: directory,
      logger,
      registry,
      // This process hosts one replica: one that failed leaves nothing to serve, so the process
      // exits, and its supervisor restarts it from the durable log and state machine.
      onFailure: () => {
        process.exitCode = 70;
        setImmediate(() => process.exit(70));
      },
    });
    const readiness = { ready: false };
    const consistencyChecker = new ConsistencyChecker(replica, logger, registry, config.adminToken);
    const app = createShardApp({
      config,
      replica,
      logger,
      registry,
      startedAtMs: Date.now(),
      isReady: () => readiness.ready,
      consistencyChecker,
    });
    const server = createHttpServer({ limits: config, listener: app, registry, logger });
    try {
      server.listen(config.port, config.host);
      await once(server, 'listening');
    } catch (error) {
      await replica.stop();
      throw error;
    }
    const stopConsistencyChecks =
      config.consistencyCheckInterval > 0
        ? consistencyChecker.startPeriodic(config.consistencyCheckInterval)
        : () => {};
    const node = new ShardNode(
      readiness,
      config,
      logger,
      replica,
      server,
      dataDirectory,
      stopConsistencyChecks,
    );
    readiness.ready = true;
    logger.info(
      {
        host: config.host,
        port: node.port,
        peerPort: replica.peerPort,
        engine: config.engine,
        dataDir: directory,
        members: members.map((member) => member.replicaId),
      },
      'server: listening',
    );
    return node;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * Stops taking requests, lets those in flight finish (up to the shutdown timeout), then stops
   * the replica, which flushes and closes the log and the engine. Idempotent.
   */
  async stop(): Promise<void> {
    if (!this.readiness.ready && !this.server.listening) return;
    this.readiness.ready = false;
    this.stopConsistencyChecks();
    this.logger.info('server: stopping');
    await closeServerGracefully(this.server, this.config.shutdownTimeout);
    await this.replica.stop();
    this.dataDirectory.release();
    this.logger.info('server: stopped, log and engine closed');
  }
}
