#!/usr/bin/env node
import { join } from 'node:path';
import {
  HelpRequested,
  StartupError,
  groupHeader,
  parseConfig,
  startupErrorLines,
  startupErrorOf,
} from '@impulse/common';
import { foundedFileName } from './process-cluster.js';
import { ProcessStartError } from './supervisor.js';
import { LocalNodeCluster } from './local-node-cluster.js';
import { startOptions, startProgram } from './start-options.js';

const program = 'impulse';

async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(startProgram, startOptions, { argv: process.argv.slice(2), env: process.env });
  } catch (error) {
    if (error instanceof HelpRequested) return void process.stdout.write(`${error.text}\n`);
    throw error;
  }
  if (config.replicasPerGroup > config.nodes) {
    throw new StartupError(
      'CONFIG_INVALID',
      `--replicas-per-group ${config.replicasPerGroup} needs as many nodes, and --nodes is ${config.nodes}: a node hosts at most one replica of a group`,
    );
  }
  process.stdout.write(
    `impulse: starting ${config.nodes} nodes hosting ${config.groups} shard groups of ${config.replicasPerGroup} replicas, and a gateway (data in ${config.dataDir})\n`,
  );
  const cluster = await LocalNodeCluster.start({
    nodes: config.nodes,
    groups: config.groups,
    replicasPerGroup: config.replicasPerGroup,
    dataDirectory: config.dataDir,
    engine: config.engine,
    host: config.host,
    gatewayPort: config.gatewayPort,
    nodeBasePort: config.nodeBasePort,
    logLevel: config.logLevel,
    // One node that cannot start (a damaged data directory, a port taken) must not take down the
    // others: every group keeps a majority while fewer than half of its replicas' nodes are down.
    nodeStartFailures: 'tolerate',
  });
  const failedNodes = new Set(cluster.startFailures.map((failure) => failure.node.nodeId));
  const runningNodes = cluster.nodes.filter((node) => !failedNodes.has(node.nodeId));
  const failedReplicas = cluster.failedReplicas;
  const founders = cluster.bootstrappedReplicas
    .filter((replicaId) => cluster.foundedReplicas.has(replicaId))
    .sort();
  if (founders.length > 0) {
    // Said once, when it happens: from now on a replica of this data root that lost its data is
    // refused, never founded again (docs/decisions/0009-found-a-group-once.md).
    const every = founders.length === cluster.nodes.flatMap((node) => node.replicas).length;
    process.stdout.write(
      `impulse: first start of ${every ? 'every replica' : founders.join(', ')}: founded ${founders.length === 1 ? 'its group' : 'their groups'} (recorded in ${join(config.dataDir, foundedFileName)})\n`,
    );
  }
  for (const node of runningNodes) {
    const groups = node.replicas.map((replica) => replica.groupId);
    process.stdout.write(
      `  node ${node.nodeId.padEnd(4)} ${node.url}   peers :${node.peerPort}   ${groups.length} replicas (${summarise(groups)})   data ${node.dataDirectory}\n`,
    );
  }
  for (const { node, error } of cluster.startFailures) {
    process.stderr.write(`${program}: node ${node.nodeId} did not start: ${error.message}\n`);
  }
  for (const failed of failedReplicas) {
    process.stderr.write(
      `${program}: node ${failed.nodeId}'s replica of ${failed.groupId} did not start: ${failed.message}\n`,
    );
  }
  for (const group of degradedGroups(cluster, failedNodes, failedReplicas)) {
    process.stderr.write(
      group.serves
        ? `${program}: group ${group.groupId} runs ${group.running} of its ${group.replicas} replicas, a majority: it serves, with less margin for failures\n`
        : `${program}: group ${group.groupId} runs ${group.running} of its ${group.replicas} replicas, not a majority: its keys are unavailable until more of them start\n`,
    );
  }
  process.stdout.write(`  gateway     ${cluster.gatewayUrl}\n`);
  process.stdout.write(`  logs        ${cluster.logDirectory}\n`);
  process.stdout.write(`  admin token ${cluster.adminTokenPath}\n`);
  process.stdout.write(
    `impulse: ready. Try: curl -X PUT --data-binary hello ${cluster.gatewayUrl}/kv/greeting\n`,
  );
  // The admin routes need the token this launcher made (docs/decisions/0017-admin-authentication.md).
  process.stdout.write(
    `impulse: the admin routes need the admin token: curl -H "Authorization: Bearer $(cat ${cluster.adminTokenPath})" ${cluster.gatewayUrl}/admin/cluster\n`,
  );
  process.stdout.write(
    `impulse: a node serves each group's replica by the ${groupHeader} header: curl -H "Authorization: Bearer $(cat ${cluster.adminTokenPath})" -H '${groupHeader}: g1' ${runningNodes[0]?.url ?? ''}/admin/status\n`,
  );
  process.stdout.write('impulse: Ctrl-C stops the cluster\n');

  let stopping = false;
  for (const managed of [...runningNodes, ...(cluster.gateway === undefined ? [] : [cluster.gateway])]) {
    managed.child?.once('exit', (code, signal) => {
      if (!stopping) {
        process.stderr.write(
          `impulse: ${managed.name} exited unexpectedly (code ${String(code)}, signal ${String(signal)}); see ${managed.logFile}\n`,
        );
      }
    });
  }
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`impulse: ${signal}, stopping every process\n`);
    cluster.stop().then(
      () => {
        process.stdout.write('impulse: stopped\n');
        process.exit(0);
      },
      (error: unknown) => {
        process.stderr.write(`impulse: stop failed: ${(error as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** `g1-g3` for a run of consecutive groups, else the list (shortened past eight). */
function summarise(groups: readonly string[]): string {
  if (groups.length <= 8) return groups.join(', ');
  return `${groups.slice(0, 4).join(', ')}, … ${groups.slice(-2).join(', ')}`;
}

/** Each group with fewer replicas running than it has, and whether those are still a majority. */
function degradedGroups(
  cluster: LocalNodeCluster,
  failedNodes: ReadonlySet<string>,
  failedReplicas: readonly { nodeId: string; groupId: string }[],
): { groupId: string; running: number; replicas: number; serves: boolean }[] {
  return cluster.groupIds.flatMap((groupId) => {
    const hosts = cluster.nodes.filter((node) =>
      node.replicas.some((replica) => replica.groupId === groupId),
    );
    const running = hosts.filter(
      (node) =>
        !failedNodes.has(node.nodeId) &&
        !failedReplicas.some((failed) => failed.nodeId === node.nodeId && failed.groupId === groupId),
    ).length;
    if (running === hosts.length) return [];
    return [{ groupId, running, replicas: hosts.length, serves: running > hosts.length / 2 }];
  });
}

/**
 * A failed start, as every Impulse process reports one: the cause on the first line of stderr and
 * exit 2 for a bad configuration, 1 for the environment. A child that failed is reported with its
 * own first line, and its code decides the status (its configuration came from ours).
 */
function startupFailureOf(error: unknown): StartupError {
  if (error instanceof ProcessStartError) {
    return new StartupError(error.startupCode ?? 'START_FAILED', error.message, { cause: error });
  }
  return startupErrorOf(error);
}

main().catch((error: unknown) => {
  const failure = startupFailureOf(error);
  const lines =
    error instanceof ProcessStartError
      ? [`${program}: ${failure.message}`]
      : startupErrorLines(program, failure);
  process.stderr.write(`${lines.join('\n')}\n`);
  process.exit(failure.exitCode);
});
