import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import {
  GenericContainer,
  Network,
  Wait,
  type ContainerRuntimeClient,
  type StartedNetwork,
  type StartedTestContainer,
} from 'testcontainers';
import { adminHeaders } from '@impulse/common';
import {
  dockerClient,
  imageUnderTest,
  networkNamePrefix,
  runLabel,
  suiteLabel,
  suiteLabelValue,
} from './docker.js';

const execFileAsync = promisify(execFile);

/** Ports inside the containers: the image's defaults (deploy/Dockerfile EXPOSE). */
export const replicaPort = 7001;
/** The Raft peer transport of a replica (100 above the client port, as `npm start` does). */
export const peerPort = 7101;
export const gatewayPort = 8080;

/** How long a process gets to answer /readyz after its container starts. */
const startupTimeoutMs = 30_000;

/**
 * Readiness over HTTP from the host: the image has no shell to run a check inside. Polled every
 * 500 ms rather than testcontainers' 1 s (starts are on every test's path), and given up at once
 * if the process exits, e.g. on a bad flag, instead of after the whole startup timeout.
 */
function readyOverHttp(port: number) {
  return Wait.forHttp('/readyz', port, { abortOnContainerExit: true })
    .forStatusCode(200)
    .withReadTimeout(500);
}

export interface ContainerClusterOptions {
  /** Number of shard groups (g1, g2, ...). */
  readonly groups: number;
  /**
   * Replicas per group (g1-r1, g1-r2, ...), each a member of its group's Raft group. Every process
   * is given the same cluster configuration, peers included.
   */
  readonly replicasPerGroup?: number;
  /** Extra flags for every shard-node. */
  readonly replicaArguments?: readonly string[];
  /** Extra flags for the gateway, e.g. a short --upstream-timeout for fault tests. */
  readonly gatewayArguments?: readonly string[];
  readonly image?: string;
}

/** A container of the cluster, as the fault helpers see it. */
export interface ClusterNode {
  /** Unique in the cluster: the replica id, or "gateway". */
  readonly name: string;
  readonly container: StartedTestContainer;
  /** Names other containers reach it by on the cluster network. */
  readonly aliases: readonly string[];
  /** The port its HTTP API listens on inside the container. */
  readonly port: number;
}

export interface ReplicaNode extends ClusterNode {
  readonly groupId: string;
  readonly replicaId: string;
  /** The named volume mounted at /data: it outlives the container's restarts. */
  readonly volume: string;
}

/**
 * A cluster of containers on its own Docker network: shard-node replicas, each with a named
 * volume, and a gateway that reaches them by their network aliases. The host talks to the
 * processes through mapped ports. `stop()` removes every container, volume and the network, and
 * `start()` does the same itself when it fails half-way.
 */
export class ContainerCluster {
  readonly replicas: readonly ReplicaNode[];
  private stopped = false;

  private constructor(
    readonly client: ContainerRuntimeClient,
    readonly network: StartedNetwork,
    replicas: readonly ReplicaNode[],
    readonly gateway: ClusterNode,
    private readonly runId: string,
    private readonly adminToken: string,
  ) {
    this.replicas = replicas;
  }

  /** The headers that carry the cluster's admin token: every admin request needs them. */
  adminHeaders(): Record<string, string> {
    return adminHeaders(this.adminToken);
  }

  static async start(options: ContainerClusterOptions): Promise<ContainerCluster> {
    const client = await dockerClient();
    const image = options.image ?? imageUnderTest;
    const replicasPerGroup = options.replicasPerGroup ?? 1;
    const runId = randomUUID().slice(0, 8);
    // The cluster secret the replicas prove to each other, as a Kubernetes Secret would give it.
    const clusterSecret = randomBytes(32).toString('hex');
    // The admin token every process is given, and the tests' admin requests carry (decision 0017).
    const adminToken = randomBytes(32).toString('hex');
    const labels = { [suiteLabel]: suiteLabelValue, [runLabel]: runId };
    const resources = new Resources(client, runId);
    try {
      const network = await new Network({ nextUuid: () => `${networkNamePrefix}${runId}` }).start();
      resources.network = network;

      const layout = Array.from({ length: options.groups }, (_, groupIndex) => {
        const groupId = `g${groupIndex + 1}`;
        return {
          id: groupId,
          replicaIds: Array.from({ length: replicasPerGroup }, (_, index) => `${groupId}-r${index + 1}`),
        };
      });
      // Replicas are found by their network aliases: for the gateway (url) and for their peers
      // (peerAddress). The Raft id is the replica's position in its group.
      const clusterConfig = JSON.stringify({
        epoch: 1,
        groups: layout.map((group) => ({
          id: group.id,
          replicas: group.replicaIds.map((id, index) => ({
            id,
            url: `http://${id}:${replicaPort}`,
            raftId: index + 1,
            peerAddress: `${id}:${peerPort}`,
          })),
        })),
      });
      const replicaStarts = layout.flatMap((group) =>
        group.replicaIds.map(async (replicaId): Promise<ReplicaNode> => {
          const volume = `impulse-test-${runId}-${replicaId}`;
          await client.container.dockerode.createVolume({ Name: volume, Labels: labels });
          const container = await new GenericContainer(image)
            .withName(`impulse-test-${runId}-${replicaId}`)
            .withLabels(labels)
            .withNetwork(network)
            .withNetworkAliases(replicaId)
            .withBindMounts([{ source: volume, target: '/data' }])
            .withEnvironment({
              IMPULSE_CLUSTER: clusterConfig,
              IMPULSE_CLUSTER_SECRET: clusterSecret,
              IMPULSE_ADMIN_TOKEN: adminToken,
            })
            .withCommand([
              'shard-node/dist/main.js',
              `--group-id=${group.id}`,
              `--replica-id=${replicaId}`,
              `--port=${replicaPort}`,
              `--peer-port=${peerPort}`,
              '--log-level=warn',
              // Each container is created with a fresh volume: the first start of its group, which
              // it founds. A restart of the container runs the same command on the same volume,
              // where --bootstrap is ignored (the group is founded); no test gives a container a
              // lost volume, which --bootstrap would found again, empty (docs/deploy.md).
              '--bootstrap',
              ...(options.replicaArguments ?? []),
            ])
            .withExposedPorts(replicaPort)
            .withWaitStrategy(readyOverHttp(replicaPort))
            .withStartupTimeout(startupTimeoutMs)
            .start();
          return {
            name: replicaId,
            container,
            aliases: [replicaId],
            port: replicaPort,
            groupId: group.id,
            replicaId,
            volume,
          };
        }),
      );

      // The gateway starts alongside the replicas: it is ready once it has read its cluster
      // configuration, and reaches the replicas only when a request comes.
      const gatewayStart = new GenericContainer(image)
        .withName(`impulse-test-${runId}-gateway`)
        .withLabels(labels)
        .withNetwork(network)
        .withNetworkAliases('gateway')
        .withEnvironment({ IMPULSE_CLUSTER: clusterConfig, IMPULSE_ADMIN_TOKEN: adminToken })
        .withCommand([
          'gateway/dist/main.js',
          `--port=${gatewayPort}`,
          '--log-level=warn',
          ...(options.gatewayArguments ?? []),
        ])
        .withExposedPorts(gatewayPort)
        .withWaitStrategy(readyOverHttp(gatewayPort))
        .withStartupTimeout(startupTimeoutMs)
        .start();
      // Wait for every start to settle before failing, so that cleanup never races a container
      // that is still being created.
      const [gatewayResult, ...replicaResults] = await Promise.allSettled([gatewayStart, ...replicaStarts]);
      const failed = [gatewayResult, ...replicaResults].find((result) => result?.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      const replicas = replicaResults.map((result) => (result as PromiseFulfilledResult<ReplicaNode>).value);
      const gateway: ClusterNode = {
        name: 'gateway',
        container: (gatewayResult as PromiseFulfilledResult<StartedTestContainer>).value,
        aliases: ['gateway'],
        port: gatewayPort,
      };
      return new ContainerCluster(client, network, replicas, gateway, runId, adminToken);
    } catch (error) {
      await resources.remove().catch((cleanupError: unknown) => {
        console.error('containers: cleanup after a failed start failed too', cleanupError);
      });
      throw error;
    }
  }

  /** The gateway's URL from the host. */
  get gatewayUrl(): string {
    return urlOf(this.gateway);
  }

  replica(replicaId: string): ReplicaNode {
    const replica = this.replicas.find((candidate) => candidate.replicaId === replicaId);
    if (replica === undefined) throw new Error(`no replica ${replicaId} in this cluster`);
    return replica;
  }

  /** A replica's URL from the host (straight to the shard-node, bypassing the gateway). */
  replicaUrl(replicaId: string): string {
    return urlOf(this.replica(replicaId));
  }

  /**
   * Up to `lines` of a node's output, for failure messages. Read with the docker CLI: testcontainers'
   * `logs()` always follows the stream, which never ends while the container runs.
   */
  async logs(node: ClusterNode, lines = 50): Promise<string> {
    try {
      const { stdout, stderr } = await execFileAsync(
        'docker',
        ['logs', '--tail', String(lines), node.container.getId()],
        { timeout: 10_000, maxBuffer: 16 * 1024 * 1024 },
      );
      return stdout + stderr;
    } catch (error) {
      return `(no logs: ${(error as Error).message})`;
    }
  }

  /** Removes every container, volume and the network, whatever state a fault left them in. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const resources = new Resources(this.client, this.runId);
    resources.network = this.network;
    await resources.remove();
  }
}

function urlOf(node: ClusterNode): string {
  // The mapped port is looked up each time: a restarted container may get a new one.
  return `http://${node.container.getHost()}:${node.container.getMappedPort(node.port)}`;
}

/**
 * What one cluster created, found by its run label rather than remembered: a container whose start
 * failed half-way (created, never ready) is removed as surely as a healthy one.
 */
export class Resources {
  network: StartedNetwork | undefined;

  constructor(
    private readonly client: ContainerRuntimeClient,
    private readonly runId: string,
  ) {}

  async remove(): Promise<void> {
    const docker = this.client.container.dockerode;
    const filters = JSON.stringify({ label: [`${runLabel}=${this.runId}`] });
    const failures: unknown[] = [];
    const ignoreNotFound = (error: unknown): void => {
      if ((error as { statusCode?: number }).statusCode !== 404) failures.push(error);
    };
    const containers = await docker.listContainers({ all: true, filters });
    await Promise.all(
      containers.map(async (info) => {
        const container = docker.getContainer(info.Id);
        // A paused container cannot be removed on older engines; a killed one needs no stop.
        if (info.State === 'paused') await container.unpause().catch(ignoreNotFound);
        await container.remove({ force: true, v: true }).catch(ignoreNotFound);
      }),
    );
    for (const volume of (await docker.listVolumes({ filters })).Volumes ?? []) {
      await docker.getVolume(volume.Name).remove().catch(ignoreNotFound);
    }
    if (this.network !== undefined) {
      await docker.getNetwork(this.network.getId()).remove().catch(ignoreNotFound);
    }
    if (failures.length > 0) throw new AggregateError(failures, 'containers: cleanup failed');
  }
}
