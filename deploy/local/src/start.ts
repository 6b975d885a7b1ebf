#!/usr/bin/env node
import { join } from 'node:path';
import { HelpRequested, StartupError, parseConfig, startupErrorLines, startupErrorOf } from '@impulse/common';
import { LocalCluster, ProcessStartError, foundedFileName } from './local-cluster.js';
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
  process.stdout.write(
    `impulse: starting ${config.groups} shard groups of ${config.replicasPerGroup} replicas and a gateway (data in ${config.dataDir})\n`,
  );
  const cluster = await LocalCluster.start({
    groups: config.groups,
    replicasPerGroup: config.replicasPerGroup,
    dataDirectory: config.dataDir,
    engine: config.engine,
    host: config.host,
    gatewayPort: config.gatewayPort,
    replicaBasePort: config.replicaBasePort,
    logLevel: config.logLevel,
    // One replica that cannot start (a damaged data directory, a port taken) must not take down
    // the others: its group may still have a majority, and the other groups serve anyway.
    replicaStartFailures: 'tolerate',
  });
  const failed = new Set(cluster.startFailures.map((failure) => failure.replica));
  const founders = cluster.bootstrappedReplicas.filter((replicaId) => cluster.foundedReplicas.has(replicaId));
  if (founders.length > 0) {
    // Said once, when it happens: from now on a replica of this data root that lost its data is
    // refused, never founded again (docs/decisions/0009-found-a-group-once.md).
    process.stdout.write(
      `impulse: first start of ${founders.length === cluster.replicas.length ? 'every replica' : founders.join(', ')}: founded ${founders.length === 1 ? 'its group' : 'their groups'} (recorded in ${join(config.dataDir, foundedFileName)})\n`,
    );
  }
  for (const replica of cluster.replicas) {
    if (failed.has(replica)) continue;
    process.stdout.write(
      `  replica ${replica.replicaId.padEnd(8)} ${replica.url}   peers :${replica.peerPort}   data ${replica.dataDirectory}\n`,
    );
  }
  for (const { replica, error } of cluster.startFailures) {
    process.stderr.write(`${program}: replica ${replica.replicaId} did not start: ${error.message}\n`);
  }
  for (const group of cluster.degradedGroups()) {
    process.stderr.write(
      group.serves
        ? `${program}: group ${group.groupId} runs ${group.running} of its ${group.replicas} replicas, a majority: it serves, with less margin for failures\n`
        : `${program}: group ${group.groupId} runs ${group.running} of its ${group.replicas} replicas, not a majority: its keys are unavailable until more of them start\n`,
    );
  }
  process.stdout.write(`  gateway          ${cluster.gatewayUrl}\n`);
  process.stdout.write(`  logs             ${cluster.logDirectory}\n`);
  process.stdout.write(
    `impulse: ready. Try: curl -X PUT --data-binary hello ${cluster.gatewayUrl}/kv/greeting\n`,
  );
  process.stdout.write('impulse: Ctrl-C stops the cluster\n');

  let stopping = false;
  for (const managed of [
    ...cluster.replicas.filter((replica) => !failed.has(replica)),
    ...(cluster.gateway === undefined ? [] : [cluster.gateway]),
  ]) {
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
