import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

/**
 * The project's Kubernetes manifests, read as the tests need them: the deploy/k8s tests check them
 * against the code, and the container suite runs their container specs under Docker.
 */

const repositoryRoot = new URL('../../', import.meta.url);

/** A file of the repository, as text. */
export const readRepositoryFile = (path: string): string =>
  readFileSync(new URL(path, repositoryRoot), 'utf8');

export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: { fieldRef?: { fieldPath: string } };
}

export interface ContainerSpec {
  readonly name: string;
  readonly args: string[];
  readonly env: EnvVar[];
  readonly ports: { name: string; containerPort: number }[];
}

export interface Manifest {
  readonly kind: string;
  readonly metadata: { name: string; labels?: Record<string, string> };
  readonly spec: Record<string, unknown>;
}

/** Every document of a YAML file of the repository. */
export function documentsOf(path: string): Manifest[] {
  return parseAllDocuments(readRepositoryFile(path)).map((document) => document.toJS() as Manifest);
}

/** The one workload of `kind` in a manifest file. */
export function workloadOf(path: string, kind: string): Manifest {
  const manifest = documentsOf(path).find((candidate) => candidate.kind === kind);
  if (manifest === undefined) throw new Error(`${path} has no ${kind}`);
  return manifest;
}

/** A workload's first container. */
export function containerOf(manifest: Manifest): ContainerSpec {
  const template = manifest.spec['template'] as { spec: { containers: ContainerSpec[] } };
  return template.spec.containers[0] as ContainerSpec;
}

/**
 * A pod's environment as its process sees it: literal values, and `metadata.name` as `podName`.
 * Any other source is refused, so that a manifest change the tests do not model fails loudly.
 */
export function environmentOf(container: ContainerSpec, podName: string): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const variable of container.env) {
    if (variable.valueFrom?.fieldRef?.fieldPath === 'metadata.name') environment[variable.name] = podName;
    else if (variable.value !== undefined) environment[variable.name] = variable.value;
    else throw new Error(`the manifest sets ${variable.name} in a way the tests do not model`);
  }
  return environment;
}

/** The container port named `name`. */
export function portOf(container: ContainerSpec, name: string): number {
  const port = container.ports.find((candidate) => candidate.name === name)?.containerPort;
  if (port === undefined) throw new Error(`no port ${name} in the manifest`);
  return port;
}
