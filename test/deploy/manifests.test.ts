import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClusterConfig } from '@impulse/common';
import { parseGatewayConfig, withAdminToken } from '@impulse/gateway';
import { checkShardNodeConfig, nodeHostingOf, parseShardNodeConfig } from '@impulse/shard-node';
import {
  containerOf,
  documentsOf,
  environmentOf,
  portOf,
  readRepositoryFile,
  type ContainerSpec,
  type Manifest,
} from '../support/k8s-manifests.js';

/**
 * deploy/k8s checked against the code, without a Kubernetes cluster: the StatefulSet's pods are
 * exactly the nodes of cluster.json (names, DNS names, ports), each pod's environment is a
 * configuration its shard-node accepts and under which it hosts a replica of every group, the
 * gateway's environment is one the gateway accepts, and the bootstrap overlay patches the nodes.
 */

/** What the tests read of a pod template: its containers' mounts, and its volumes. */
interface PodSpec {
  readonly containers: { volumeMounts: { name: string; mountPath: string }[] }[];
  readonly volumes: { name: string; secret?: { secretName: string } }[];
}

describe('the Kubernetes manifests', () => {
  const nodes = documentsOf('deploy/k8s/base/nodes.yaml');
  const gateway = documentsOf('deploy/k8s/base/gateway.yaml');
  const statefulSet = nodes.find((manifest) => manifest.kind === 'StatefulSet') as Manifest;
  const service = nodes.find((manifest) => manifest.kind === 'Service') as Manifest;
  const clusterText = readRepositoryFile('deploy/k8s/base/cluster.json');
  const cluster = loadClusterConfig({ json: clusterText });
  let directory: string;
  let clusterFile: string;
  let secretFile: string;
  let adminTokenFile: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'impulse-manifests-'));
    // Where the pods mount the ConfigMap and the Secret, here as files.
    clusterFile = join(directory, 'cluster.json');
    writeFileSync(clusterFile, clusterText);
    secretFile = join(directory, 'secret');
    writeFileSync(secretFile, 'a-secret-of-thirty-two-bytes-000\n');
    adminTokenFile = join(directory, 'token');
    writeFileSync(adminTokenFile, 'an-admin-token-of-thirty-two-by\n');
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  /** A pod's environment as its process sees it, the mounted files at their test paths. */
  function environmentWithFiles(container: ContainerSpec, podName: string): Record<string, string> {
    const environment = environmentOf(container, podName);
    if (environment['IMPULSE_CLUSTER_FILE'] === '/etc/impulse/cluster.json')
      environment['IMPULSE_CLUSTER_FILE'] = clusterFile;
    if (environment['IMPULSE_CLUSTER_SECRET_FILE'] === '/etc/impulse-secret/secret')
      environment['IMPULSE_CLUSTER_SECRET_FILE'] = secretFile;
    if (environment['IMPULSE_ADMIN_TOKEN_FILE'] === '/etc/impulse-admin/token')
      environment['IMPULSE_ADMIN_TOKEN_FILE'] = adminTokenFile;
    return environment;
  }

  /** The Secret a workload mounts in the folder of `path`, as a file of that folder. */
  function secretMountedFor(manifest: Manifest, path: string): string | undefined {
    const pod = (manifest.spec['template'] as { spec: PodSpec }).spec;
    const folder = path.slice(0, path.lastIndexOf('/'));
    const mount = pod.containers[0]?.volumeMounts.find((candidate) => candidate.mountPath === folder);
    return pod.volumes.find((volume) => volume.name === mount?.name)?.secret?.secretName;
  }

  it("runs one pod per node of cluster.json, reachable at the node's addresses", () => {
    const replicas = statefulSet.spec['replicas'] as number;
    const serviceName = statefulSet.spec['serviceName'] as string;
    expect(serviceName).toBe(service.metadata.name);
    expect(service.spec['clusterIP']).toBe('None');
    const container = containerOf(statefulSet);
    const port = (name: string): number => portOf(container, name);
    expect(cluster.nodes.map((node) => [node.id, node.url, node.peerAddress])).toEqual(
      Array.from({ length: replicas }, (_, index) => {
        const pod = `${statefulSet.metadata.name}-${index}`;
        return [pod, `http://${pod}.${serviceName}:${port('http')}`, `${pod}.${serviceName}:${port('peer')}`];
      }),
    );
    // Every group has a majority of replicas on distinct nodes, each node hosting each group once.
    for (const group of cluster.groups) {
      expect(new Set(group.replicas.map((replica) => replica.node)).size).toBe(group.replicas.length);
    }
    const budget = nodes.find((manifest) => manifest.kind === 'PodDisruptionBudget') as Manifest;
    expect(budget.spec['maxUnavailable']).toBe(1);
  });

  it('gives each pod a configuration its shard-node accepts, hosting the groups cluster.json places on it', () => {
    const container = containerOf(statefulSet);
    expect(container.args).toEqual(['shard-node/dist/main.js']);
    for (const node of cluster.nodes) {
      const env = environmentWithFiles(container, node.id);
      const config = checkShardNodeConfig(parseShardNodeConfig({ argv: [], env }), env);
      expect(config.nodeId).toBe(node.id);
      expect(config.clusterSecret).toBeDefined();
      expect(config.adminToken).toBeDefined();
      const hosting = nodeHostingOf(config);
      expect(hosting.hosted.map((replica) => replica.groupId)).toEqual(
        cluster.groups
          .filter((group) => group.replicas.some((replica) => replica.node === node.id))
          .map((group) => group.id),
      );
      expect(hosting.hosted.every((replica) => !replica.bootstrap)).toBe(true);
    }
  });

  it('founds the groups only through the bootstrap overlay, which targets the nodes', () => {
    const bootstrap = documentsOf('deploy/k8s-bootstrap/kustomization.yaml')[0] as unknown as {
      patches: { target: { kind: string; labelSelector: string }; patch: string }[];
    };
    const [patch] = bootstrap.patches;
    expect(patch?.target.kind).toBe('StatefulSet');
    const [label, value] = (patch?.target.labelSelector ?? '').split('=');
    expect(statefulSet.metadata.labels?.[label as string]).toBe(value);
    expect(patch?.patch).toContain('IMPULSE_BOOTSTRAP');
    const container = containerOf(statefulSet);
    const env = { ...environmentWithFiles(container, 'impulse-node-0'), IMPULSE_BOOTSTRAP: 'true' };
    const hosting = nodeHostingOf(checkShardNodeConfig(parseShardNodeConfig({ argv: [], env }), env));
    expect(hosting.hosted.every((replica) => replica.bootstrap)).toBe(true);
  });

  it('gives the gateway a configuration it accepts, over the same cluster.json', () => {
    const deployment = gateway.find((manifest) => manifest.kind === 'Deployment') as Manifest;
    const container = containerOf(deployment);
    const env = environmentWithFiles(container, 'impulse-gateway-x');
    const config = withAdminToken(parseGatewayConfig({ argv: [], env }), env);
    expect(config.clusterFile).toBe(clusterFile);
    expect(config.adminToken).toBeDefined();
  });

  it('gives the nodes and the gateways the one admin token, from a Secret, as the cluster secret', () => {
    const deployment = gateway.find((manifest) => manifest.kind === 'Deployment') as Manifest;
    for (const workload of [statefulSet, deployment]) {
      const path = environmentOf(containerOf(workload), 'pod')['IMPULSE_ADMIN_TOKEN_FILE'] ?? '';
      expect(path, workload.metadata.name).toBe('/etc/impulse-admin/token');
      expect(secretMountedFor(workload, path), workload.metadata.name).toBe('impulse-admin-token');
      // Never a literal token in the manifests.
      expect(environmentOf(containerOf(workload), 'pod')['IMPULSE_ADMIN_TOKEN']).toBeUndefined();
    }
    const secretPath = environmentOf(containerOf(statefulSet), 'pod')['IMPULSE_CLUSTER_SECRET_FILE'] ?? '';
    expect(secretMountedFor(statefulSet, secretPath)).toBe('impulse-cluster-secret');
  });
});
