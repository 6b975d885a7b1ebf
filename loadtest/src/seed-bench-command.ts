import { parseConfig } from '@impulse/common';
import { systemClock } from './clock.js';
import { runClosedLoop } from './drivers/closed-loop.js';
import { parseDurationSeconds } from './duration.js';
import type { HttpClientName } from './http-client.js';
import { machineInfo } from './machine.js';
import { RunRecorder, summarize, type LatencySummary } from './recorder.js';
import { createResultsDirectory, writeResultFiles } from './results-directory.js';
import { seedBenchOptions, seedBenchProgram } from './seed-bench-options.js';
import { sourceVersion } from './source-version.js';
import type { KvTarget } from './targets/kv-target.js';
import type { ClusterShape } from './targets/running-target.js';
import { startImpulseNodes } from './targets/start-impulse.js';
import type { OperationKind } from './workload.js';

type Method = 'PUT' | 'GET' | 'DELETE';
const methods: readonly Method[] = ['PUT', 'GET', 'DELETE'];
const kindOf: Record<Method, OperationKind> = { PUT: 'update', GET: 'read', DELETE: 'update' };
/** The seed's benchmarks hammer one key. */
const benchKey = 'seed-bench-key';

export interface SeedBenchLine {
  readonly engine: string;
  readonly benchmark: 'concurrent' | 'sequential';
  readonly method: Method;
  readonly clients: number;
  readonly requests: number;
  readonly errors: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly latency: LatencySummary;
}

function issueOf(target: KvTarget, method: Method, value: Buffer): () => Promise<void> {
  switch (method) {
    case 'PUT':
      return () => target.put(benchKey, value);
    case 'GET':
      return () => target.get(benchKey).then(() => undefined);
    case 'DELETE':
      return () => target.delete(benchKey);
  }
}

async function measure(
  target: KvTarget,
  method: Method,
  value: Buffer,
  clients: number,
  limit: { durationMs: number } | { requests: number },
): Promise<{ requests: number; errors: number; seconds: number; latency: LatencySummary }> {
  const recorder = new RunRecorder();
  const send = issueOf(target, method, value);
  const summary = await runClosedLoop({
    concurrency: clients,
    durationMs: 'durationMs' in limit ? limit.durationMs : Number.POSITIVE_INFINITY,
    ...('requests' in limit ? { operationsMax: limit.requests } : {}),
    issue: () => ({ kind: kindOf[method], done: send() }),
    recorder,
    clock: systemClock,
  });
  return {
    requests: recorder.overall.count,
    errors: recorder.errors,
    seconds: summary.elapsedSeconds,
    latency: summarize(recorder.overall),
  };
}

export function formatSeedLine(line: SeedBenchLine): string {
  const shape =
    line.benchmark === 'concurrent'
      ? `${line.clients} clients, ${line.seconds.toFixed(1)} s`
      : `${line.requests} requests one after another`;
  return (
    `${line.engine.padEnd(8)} ${line.benchmark.padEnd(10)} ${line.method.padEnd(6)} ` +
    `${line.requestsPerSecond.toFixed(1).padStart(10)} requests/s  (${line.requests} requests, ${line.errors} errors, ${shape}; ` +
    `p50 ${line.latency.p50Ms.toFixed(2)} ms, p99 ${line.latency.p99Ms.toFixed(2)} ms)`
  );
}

/** `npm run bench:seed`: returns the exit status. */
export async function runSeedBenchCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const config = parseConfig(seedBenchProgram, seedBenchOptions, { argv, env });
  const durationMs = parseDurationSeconds('--duration', config.duration) * 1000;
  const engines: Array<'leveldb' | 'memory'> =
    config.engines === 'both' ? ['leveldb', 'memory'] : [config.engines as 'leveldb' | 'memory'];
  const value = Buffer.alloc(config.valueBytes, 'v');
  const machine = machineInfo();
  process.stderr.write(
    `bench:seed: ${config.clients} clients for ${durationMs / 1000} s per method, then ${config.requests} sequential requests per method, ` +
      `engines ${engines.join(', ')}; ${machine.cpuCount} cores (${machine.cpuModel}) shared by the load generator and the servers\n`,
  );
  const lines: SeedBenchLine[] = [];
  /** What was measured, for result.json: the same shape for every engine. */
  let shape: ClusterShape | undefined;
  for (const engine of engines) {
    const running = await startImpulseNodes({
      nodes: config.nodes,
      groups: config.groups,
      // The seed measured a single server per shard: one replica per group keeps that comparison
      // (with as many nodes as groups, each node hosts one group).
      replicasPerGroup: 1,
      engine,
      readMode: 'readindex',
      client: config.client as HttpClientName,
      connectionsMax: config.clients,
      requestTimeoutMs: 10_000,
    });
    shape = running.shape;
    try {
      for (const benchmark of ['concurrent', 'sequential'] as const) {
        for (const method of methods) {
          // GET and DELETE of an absent key are cheaper than of a present one; the seed's GET
          // read a key that its PUT wrote, so write it first.
          if (method !== 'PUT') await running.target.put(benchKey, value);
          const clients = benchmark === 'concurrent' ? config.clients : 1;
          const measured = await measure(
            running.target,
            method,
            value,
            clients,
            benchmark === 'concurrent' ? { durationMs } : { requests: config.requests },
          );
          const line: SeedBenchLine = {
            engine,
            benchmark,
            method,
            clients,
            ...measured,
            requestsPerSecond: (measured.requests - measured.errors) / Math.max(1e-9, measured.seconds),
          };
          lines.push(line);
          process.stdout.write(`${formatSeedLine(line)}\n`);
        }
      }
    } finally {
      await running.stop();
    }
  }
  const directory = await createResultsDirectory(config.results, 'seed');
  await writeResultFiles(directory, [
    [
      'result.json',
      `${JSON.stringify({ config, machine, source: sourceVersion(), shape, lines }, null, 2)}\n`,
    ],
  ]);
  process.stdout.write(`results: ${directory}\n`);
  return lines.some((line) => line.errors > 0) ? 1 : 0;
}
