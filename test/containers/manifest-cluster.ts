import { randomBytes, randomUUID } from 'node:crypto';
import {
  GenericContainer,
  Network,
  Wait,
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
import { Resources, type ClusterNode } from './cluster.js';
import {
  dockerClient,
  imageUnderTest,
  networkNamePrefix,
  runLabel,
  suiteLabel,
  suiteLabelValue,
} from './docker.js';

/**
 * The Kubernetes manifests' container specs, run under Docker: the node StatefulSet of
 * deploy/k8s/base/nodes.yaml (one container per node of its cluster.json, named and reachable as
 * the StatefulSet's pods are, `impulse-node-0.impulse-node`, with the environment the manifest
 * gives, the cluster configuration and the secret mounted where the manifest mounts them, and
 * IMPULSE_BOOTSTRAP=true as the bootstrap overlay adds it for the first start), and the gateway of
 * deploy/k8s/base/gateway.yaml. What Kubernetes would do is not tested here; what the manifests
 * tell the processes is.
 */

const startupTimeoutMs = 60_000;

export interface ManifestNode extends ClusterNode {
  readonly nodeId: string;
}

export class ManifestCluster {
  private stopped = false;

  private constructor(
    private readonly network: StartedNetwork,
    readonly nodes: readonly ManifestNode[],
    readonly gateway: ClusterNode,
    readonly config: ClusterConfig,
    private readonly runId: string,
    private readonly adminToken: string,
  ) {}

  /** The headers that carry the admin token the manifests' Secret holds: admin requests need them. */
  adminHeaders(): Record<string, string> {
    return adminHeaders(this.adminToken);
  }

  get networkHandle(): StartedNetwork {
    return this.network;
  }

  static async start(): Promise<ManifestCluster> {
    const client = await dockerClient();
    const runId = randomUUID().slice(0, 8);
    const labels = { [suiteLabel]: suiteLabelValue, [runLabel]: runId };
    const clusterText = readRepositoryFile('deploy/k8s/base/cluster.json');
    const config = loadClusterConfig({ json: clusterText });
    const statefulSet = workloadOf('deploy/k8s/base/nodes.yaml', 'StatefulSet');
    const gatewayManifest = workloadOf('deploy/k8s/base/gateway.yaml', 'Deployment');
    const nodeSpec = containerOf(statefulSet);
    const gatewaySpec = containerOf(gatewayManifest);
    const secret = randomBytes(32).toString('hex');
    const adminToken = randomBytes(32).toString('hex');
    const network = await new Network({ nextUuid: () => `${networkNamePrefix}${runId}` }).start();
    const clusterMount = { content: clusterText, target: '/etc/impulse/cluster.json' };
    const adminTokenMount = { content: `${adminToken}\n`, target: '/etc/impulse-admin/token' };
    const mounts = [
      clusterMount,
      { content: `${secret}\n`, target: '/etc/impulse-secret/secret' },
      adminTokenMount,
    ];
    try {
      const nodeStarts = config.nodes.map(async (node): Promise<ManifestNode> => {
        const alias = `${node.id}.${String(statefulSet.spec['serviceName'])}`;
        const volume = `impulse-test-${runId}-${node.id}`;
        await client.container.dockerode.createVolume({ Name: volume, Labels: labels });
        const httpPort = portOf(nodeSpec, 'http');
        const container = await new GenericContainer(imageUnderTest)
          .withName(`impulse-test-${runId}-${node.id}`)
          .withLabels(labels)
          .withNetwork(network)
          .withNetworkAliases(alias)
          .withBindMounts([{ source: volume, target: '/data' }])
          .withCopyContentToContainer(mounts)
          // The bootstrap overlay's variable: these volumes are new, the cluster's first start.
          .withEnvironment({ ...environmentOf(nodeSpec, node.id), IMPULSE_BOOTSTRAP: 'true' })
          .withCommand(nodeSpec.args)
          .withExposedPorts(httpPort)
          .withWaitStrategy(
            Wait.forHttp('/readyz', httpPort, { abortOnContainerExit: true })
              .forStatusCode(200)
              .withReadTimeout(500),
          )
          .withStartupTimeout(startupTimeoutMs)
          .start();
        return { name: node.id, nodeId: node.id, container, aliases: [alias], port: httpPort };
      });
      const gatewayPort = portOf(gatewaySpec, 'http');
      const gatewayStart = new GenericContainer(imageUnderTest)
        .withName(`impulse-test-${runId}-gateway`)
        .withLabels(labels)
        .withNetwork(network)
        .withNetworkAliases('impulse-gateway')
        .withCopyContentToContainer([clusterMount, adminTokenMount])
        .withEnvironment(environmentOf(gatewaySpec, 'impulse-gateway-0'))
        .withCommand(gatewaySpec.args)
        .withExposedPorts(gatewayPort)
        .withWaitStrategy(
          Wait.forHttp('/readyz', gatewayPort, { abortOnContainerExit: true })
            .forStatusCode(200)
            .withReadTimeout(500),
        )
        .withStartupTimeout(startupTimeoutMs)
        .start();
      const [gatewayResult, ...nodeResults] = await Promise.allSettled([gatewayStart, ...nodeStarts]);
      const failed = [gatewayResult, ...nodeResults].find((result) => result?.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      const nodes = nodeResults.map((result) => (result as PromiseFulfilledResult<ManifestNode>).value);
      const gateway: ClusterNode = {
        name: 'gateway',
        container: (gatewayResult as PromiseFulfilledResult<StartedTestContainer>).value,
        aliases: ['impulse-gateway'],
        port: gatewayPort,
      };
      return new ManifestCluster(network, nodes, gateway, config, runId, adminToken);
    } catch (error) {
      const resources = new Resources(client, runId);
      resources.network = network;
      await resources.remove().catch((cleanupError: unknown) => {
        console.error('containers: cleanup after a failed start failed too', cleanupError);
      });
      throw error;
    }
  }

  urlOf(node: ClusterNode): string {
    return `http://${node.container.getHost()}:${node.container.getMappedPort(node.port)}`;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const resources = new Resources(await dockerClient(), this.runId);
    resources.network = this.network;
    await resources.remove();
  }
}
