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
import { adminHeaders, loadClusterConfig, type ClusterConfig } from '@impulse/common';
import {
  containerOf,
  environmentOf,
  portOf,
  readRepositoryFile,
  workloadOf,
} from '../support/k8s-manifests.js';
import {
  dockerClient,
  imageUnderTest,
  networkNamePrefix,
  runLabel,
  suiteLabel,
  suiteLabelValue,
} from './docker.js';

const execFileAsync = promisify(execFile);

/**
 * How long a process gets to answer /readyz after its container starts: a node opens a replica of
 * every group it hosts, and the suite runs on a busy machine.
 */
const startupTimeoutMs = 60_000;

/** A container of the cluster, as the fault helpers see it. */
export interface ClusterContainer {
  /** Unique in the cluster: the node id, or "gateway". */
  readonly name: string;
  readonly container: StartedTestContainer;
  /** Names other containers reach it by on the cluster network. */
  readonly aliases: readonly string[];
  /** The port its HTTP API listens on inside the container. */
  readonly port: number;
}

/** A node container: one `shard-node` process hosting a replica of each group placed on it. */
export interface NodeContainer extends ClusterContainer {
  readonly nodeId: string;
  /** The named volume mounted at /data: it outlives the container's restarts. */
  readonly volume: string;
}

export interface ContainerClusterOptions {
  /** Flags added to every node's command (the manifest's), e.g. smaller snapshots. */
  readonly nodeArguments?: readonly string[];
  /** Flags added to the gateway's command, e.g. a short --upstream-timeout for fault tests. */
  readonly gatewayArguments?: readonly string[];
  readonly image?: string;
}

/** What one container of the cluster runs, as its manifest gives it. */
interface ContainerSpec {
  readonly name: string;
  readonly alias: string;
  readonly environment: Record<string, string>;
  readonly command: readonly string[];
  readonly port: number;
  /** Files copied where the manifest mounts them (the cluster configuration, the secrets). */
  readonly files: readonly { content: string; target: string }[];
  /** A named volume for /data, created with the cluster's labels. */
  readonly volume?: string;
}

/** What every container of one cluster shares. */
interface Run {
  readonly client: ContainerRuntimeClient;
  readonly network: StartedNetwork;
  readonly image: string;
  readonly runId: string;
  readonly labels: Record<string, string>;
}

/**
 * The production shape under Docker, from the Kubernetes manifests' container specs (no
 * Kubernetes can run here): one container per node of deploy/k8s/base/cluster.json (3 nodes, each
 * hosting a replica of g1, g2 and g3), with the node StatefulSet's command and environment, named
 * and reachable as its pods are (`impulse-node-0.impulse-node`), a named volume at /data, the
 * cluster configuration, a cluster secret and an admin token copied where the manifest mounts
 * them, and IMPULSE_BOOTSTRAP=true as the bootstrap overlay adds it for the first start; and the
 * gateway Deployment's container, given the configuration and the same admin token. What Kubernetes would do is not tested here; what the manifests tell
 * the processes is. The host talks to the processes through mapped ports. `stop()` removes every
 * container, volume and the network, and `start()` does the same itself when it fails half-way.
 */
export class ContainerCluster {
  private stopped = false;

  private constructor(
    readonly client: ContainerRuntimeClient,
    readonly network: StartedNetwork,
    readonly nodes: readonly NodeContainer[],
    readonly gateway: ClusterContainer,
    /** The manifests' cluster configuration, which every process of the cluster was given. */
    readonly config: ClusterConfig,
    private readonly runId: string,
    /** The admin token every process was given (decision 0017): the suite's admin requests carry it. */
    private readonly adminToken: string,
  ) {}

  /** The headers that carry the cluster's admin token: every admin request needs them. */
  adminHeaders(): Record<string, string> {
    return adminHeaders(this.adminToken);
  }

  static async start(options: ContainerClusterOptions = {}): Promise<ContainerCluster> {
    const client = await dockerClient();
    const runId = randomUUID().slice(0, 8);
    const clusterText = readRepositoryFile('deploy/k8s/base/cluster.json');
    const config = loadClusterConfig({ json: clusterText });
    const statefulSet = workloadOf('deploy/k8s/base/nodes.yaml', 'StatefulSet');
    const nodeSpec = containerOf(statefulSet);
    const gatewaySpec = containerOf(workloadOf('deploy/k8s/base/gateway.yaml', 'Deployment'));
    const clusterFile = { content: clusterText, target: '/etc/impulse/cluster.json' };
    // The cluster secret the replicas prove to each other, as the Kubernetes Secret would give it.
    const secretFile = {
      content: `${randomBytes(32).toString('hex')}\n`,
      target: '/etc/impulse-secret/secret',
    };
    // The admin token, where the manifests mount the Secret impulse-admin-token in the nodes and the
    // gateway: every admin route asks for it (docs/decisions/0017-admin-authentication.md).
    const adminToken = randomBytes(32).toString('hex');
    const adminTokenFile = { content: `${adminToken}\n`, target: '/etc/impulse-admin/token' };
    const network = await new Network({ nextUuid: () => `${networkNamePrefix}${runId}` }).start();
    const run: Run = {
      client,
      network,
      image: options.image ?? imageUnderTest,
      runId,
      labels: { [suiteLabel]: suiteLabelValue, [runLabel]: runId },
    };
    try {
      const nodeStarts = config.nodes.map(async (node): Promise<NodeContainer> => {
        const volume = `impulse-test-${runId}-${node.id}`;
        const spec: ContainerSpec = {
          name: node.id,
          alias: `${node.id}.${String(statefulSet.spec['serviceName'])}`,
          // The bootstrap overlay's variable: these volumes are new, the cluster's first start. A
          // restart of the container runs the same command on the same volume, where it founds
          // nothing (every group's state is there); no test gives a node a lost volume, which it
          // would found again, empty (docs/deploy.md, "Founding, once").
          environment: { ...environmentOf(nodeSpec, node.id), IMPULSE_BOOTSTRAP: 'true' },
          command: [...nodeSpec.args, ...(options.nodeArguments ?? [])],
          port: portOf(nodeSpec, 'http'),
          files: [clusterFile, secretFile, adminTokenFile],
          volume,
        };
        const container = await startContainer(run, spec);
        return { ...identityOf(spec, container), nodeId: node.id, volume };
      });
      // The gateway starts alongside the nodes: it is ready once it has read its cluster
      // configuration, and reaches the nodes only when a request comes.
      const gatewaySpecification: ContainerSpec = {
        name: 'gateway',
        alias: 'impulse-gateway',
        environment: environmentOf(gatewaySpec, 'impulse-gateway-0'),
        command: [...gatewaySpec.args, ...(options.gatewayArguments ?? [])],
        port: portOf(gatewaySpec, 'http'),
        files: [clusterFile, adminTokenFile],
      };
      const gatewayStart = startContainer(run, gatewaySpecification);
      // Wait for every start to settle before failing, so that cleanup never races a container
      // that is still being created.
      const [gatewayResult, ...nodeResults] = await Promise.allSettled([gatewayStart, ...nodeStarts]);
      const failed = [gatewayResult, ...nodeResults].find((result) => result?.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      const nodes = nodeResults.map((result) => (result as PromiseFulfilledResult<NodeContainer>).value);
      const gateway = identityOf(
        gatewaySpecification,
        (gatewayResult as PromiseFulfilledResult<StartedTestContainer>).value,
      );
      return new ContainerCluster(client, network, nodes, gateway, config, runId, adminToken);
    } catch (error) {
      await new Resources(client, runId, network).remove().catch((cleanupError: unknown) => {
        console.error('containers: cleanup after a failed start failed too', cleanupError);
      });
      throw error;
    }
  }

  /** The gateway's URL from the host. */
  get gatewayUrl(): string {
    return this.urlOf(this.gateway);
  }

  /** The group ids of the cluster configuration, in its order. */
  get groupIds(): string[] {
    return this.config.groups.map((group) => group.id);
  }

  /** A container's URL from the host (a node's goes straight to it, bypassing the gateway). */
  urlOf(container: ClusterContainer): string {
    // The mapped port is looked up each time: a restarted container may get a new one.
    return `http://${container.container.getHost()}:${container.container.getMappedPort(container.port)}`;
  }

  node(nodeId: string): NodeContainer {
    const node = this.nodes.find((candidate) => candidate.nodeId === nodeId);
    if (node === undefined) throw new Error(`no node ${nodeId} in this cluster`);
    return node;
  }

  /** The node hosting `replicaId` in the cluster configuration. */
  nodeOfReplica(replicaId: string): NodeContainer {
    const replica = this.config.groups
      .flatMap((group) => group.replicas)
      .find((candidate) => candidate.id === replicaId);
    if (replica === undefined || replica.node === null) {
      throw new Error(`no replica ${replicaId} on a node of this cluster`);
    }
    return this.node(replica.node);
  }

  /** The id of the replica of `groupId` that the cluster configuration places on `node`. */
  replicaIdOn(node: NodeContainer, groupId: string): string {
    const replica = this.config.groups
      .find((group) => group.id === groupId)
      ?.replicas.find((candidate) => candidate.node === node.nodeId);
    if (replica === undefined) throw new Error(`${node.nodeId} hosts no replica of ${groupId}`);
    return replica.id;
  }

  /**
   * Up to `lines` of a container's output, for failure messages. Read with the docker CLI:
   * testcontainers' `logs()` always follows the stream, which never ends while the container runs.
   */
  async logs(container: ClusterContainer, lines = 50): Promise<string> {
    try {
      const { stdout, stderr } = await execFileAsync(
        'docker',
        ['logs', '--tail', String(lines), container.container.getId()],
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
    await new Resources(this.client, this.runId, this.network).remove();
  }
}

/**
 * Starts one container of a cluster and waits until its process answers /readyz: the one way the
 * suite starts a container.
 */
async function startContainer(run: Run, spec: ContainerSpec): Promise<StartedTestContainer> {
  let container = new GenericContainer(run.image)
    .withName(`impulse-test-${run.runId}-${spec.name}`)
    .withLabels(run.labels)
    .withNetwork(run.network)
    .withNetworkAliases(spec.alias)
    .withCopyContentToContainer([...spec.files])
    .withEnvironment(spec.environment)
    .withCommand([...spec.command])
    .withExposedPorts(spec.port)
    .withWaitStrategy(readyOverHttp(spec.port))
    .withStartupTimeout(startupTimeoutMs);
  if (spec.volume !== undefined) {
    await run.client.container.dockerode.createVolume({ Name: spec.volume, Labels: run.labels });
    container = container.withBindMounts([{ source: spec.volume, target: '/data' }]);
  }
  return await container.start();
}

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

function identityOf(spec: ContainerSpec, container: StartedTestContainer): ClusterContainer {
  return { name: spec.name, container, aliases: [spec.alias], port: spec.port };
}

/**
 * What one cluster created, found by its run label rather than remembered: a container whose start
 * failed half-way (created, never ready) is removed as surely as a healthy one.
 */
class Resources {
  constructor(
    private readonly client: ContainerRuntimeClient,
    private readonly runId: string,
    private readonly network: StartedNetwork,
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
    await docker.getNetwork(this.network.getId()).remove().catch(ignoreNotFound);
    if (failures.length > 0) throw new AggregateError(failures, 'containers: cleanup failed');
  }
}
