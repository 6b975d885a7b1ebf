import { ConfigError, parseConfig } from '@impulse/common';
import { runBenchmark, type TargetResult } from './benchmark.js';
import { benchOptions, benchProgram } from './bench-options.js';
import { comparisonLines, finalLine, summarizeRuns, type TargetSummary } from './comparison.js';
import { parseDurationSeconds } from './duration.js';
import { machineInfo } from './machine.js';
import { renderHtmlReport } from './report/html-report.js';
import { renderPngReport } from './report/png-report.js';
import { createResultsDirectory, writeResultFiles } from './results-directory.js';
import { medianWorkFigures, startWorkMeter, workLine } from './run-work.js';
import { sourceVersion } from './source-version.js';
import { startTarget } from './start-target.js';
import type { RunningTarget, TargetName } from './targets/running-target.js';
import { etcdInstallHint, findEtcd } from './targets/start-etcd.js';
import { workloads, type DistributionName } from './workload.js';

const targetsOf: Record<string, TargetName[]> = {
  impulse: ['impulse'],
  'impulse-replicas': ['impulse-replicas'],
  etcd: ['etcd'],
  map: ['map'],
  both: ['impulse', 'etcd'],
  shapes: ['impulse-replicas', 'impulse', 'etcd'],
  all: ['impulse-replicas', 'impulse', 'map', 'etcd'],
};

/** `npm run bench`: returns the exit status (0, or 1 when a target could not run the workload). */
export async function runBenchCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const config = parseConfig(benchProgram, benchOptions, { argv, env });
  const durationSeconds = parseDurationSeconds('--duration', config.duration);
  const warmupSeconds = parseDurationSeconds('--warmup', config.warmup, 'allowed');
  const workload = workloads[config.workload];
  const distribution: DistributionName =
    config.distribution === 'default' ? workload.requestDistribution : config.distribution;
  const machine = machineInfo();
  const requested = targetsOf[config.target] ?? [];
  if (requested.includes('impulse') && config.replicasPerGroup > config.nodes) {
    throw new ConfigError([
      `--replicas-per-group ${config.replicasPerGroup} needs as many nodes, and --nodes is ${config.nodes}: a node hosts at most one replica of a group`,
    ]);
  }
  const source = sourceVersion();

  const failures = new Map<TargetName, string>();
  let etcdBinary: string | undefined;
  if (requested.includes('etcd')) {
    etcdBinary = findEtcd();
    if (etcdBinary === undefined) {
      process.stderr.write(`bench: ${etcdInstallHint}; running the other targets\n`);
      failures.set('etcd', etcdInstallHint);
    }
  }
  const targetNames = requested.filter((name) => !failures.has(name));

  process.stderr.write(
    `bench: workload ${workload.name} (${workload.description}), distribution ${distribution}, ` +
      `${config.rate > 0 ? `open loop at ${config.rate} ops/s` : `closed loop, ${config.concurrency} in flight`}, ` +
      `${warmupSeconds > 0 ? `${warmupSeconds} s of warm-up then ` : ''}${durationSeconds} s per run, ${config.runs} run(s) per target, ${config.recordCount} records of ${config.recordBytes} bytes; ` +
      `${machine.cpuCount} cores (${machine.cpuModel}) shared by the load generator and the servers, load average ${machine.loadAverage1m}\n`,
  );
  process.stdout.write(
    `bench: commit ${source.commit}${source.workTreeChanged ? ' (with uncommitted changes)' : ''}, workload ${workload.name}, targets ${requested.join(', ')}, ${config.runs} run(s) each, interleaved\n`,
  );

  let current: RunningTarget | undefined;
  const onSignal = (): void => {
    void (current?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const resultsByTarget = new Map<TargetName, TargetResult[]>();
  try {
    for (let run = 1; run <= config.runs; run++) {
      for (const name of targetNames) {
        if (failures.has(name)) continue;
        process.stderr.write(`bench: run ${run}/${config.runs}: starting ${name}\n`);
        current = await startTarget(name, {
          nodes: config.nodes,
          groups: config.groups,
          replicasPerGroup: config.replicasPerGroup,
          engine: config.engine as 'leveldb' | 'memory',
          readMode: config.readMode as 'readindex' | 'lease',
          client: config.client as 'undici' | 'node',
          connectionsMax: config.concurrency,
          requestTimeoutMs: config.requestTimeout,
          ...(etcdBinary === undefined ? {} : { etcdBinary }),
        });
        try {
          const running = current;
          const result = await runBenchmark(current, {
            workload,
            distribution,
            recordCount: config.recordCount,
            recordBytes: config.recordBytes,
            durationMs: durationSeconds * 1000,
            warmupMs: warmupSeconds * 1000,
            concurrency: config.concurrency,
            rateOperationsPerSecond: config.rate,
            inflightMax: config.inflightMax,
            seed: config.seed,
            meterRunPhase: () => startWorkMeter(running, { countSyncs: config.countSyncs }),
          });
          if (result.work !== undefined && result.workFigures !== undefined) {
            process.stderr.write(`${workLine(name, result.work, result.workFigures)}\n`);
          }
          if (result.failure !== undefined) {
            process.stderr.write(`bench: ${result.failure}\n`);
            failures.set(name, result.failure);
          }
          resultsByTarget.set(name, [...(resultsByTarget.get(name) ?? []), result]);
        } finally {
          await current.stop();
          current = undefined;
        }
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }

  const summaries: TargetSummary[] = requested.map((name) => {
    const summary = summarizeRuns(name, resultsByTarget.get(name) ?? []);
    const failure = failures.get(name);
    return failure === undefined ? summary : { ...summary, failure };
  });
  const comparisons = comparisonLines(summaries);
  const work = requested.map((name) => ({
    target: name,
    ...medianWorkFigures(
      (resultsByTarget.get(name) ?? []).flatMap((result) =>
        result.workFigures === undefined ? [] : [result.workFigures],
      ),
    ),
  }));

  // Charts show, for each target, its run with the median throughput.
  const representative: TargetResult[] = requested.flatMap((name) => {
    const results = resultsByTarget.get(name) ?? [];
    const ran = results.filter((result) => result.run !== undefined);
    if (ran.length === 0) {
      return [{ target: name, description: '', failure: failures.get(name) ?? 'not run' }];
    }
    const sorted = [...ran].sort(
      (a, b) => (a.run?.operationsPerSecond ?? 0) - (b.run?.operationsPerSecond ?? 0),
    );
    return [sorted[Math.floor((sorted.length - 1) / 2)] as TargetResult];
  });

  const settings: Array<[string, string]> = [
    ['workload', `${workload.name}: ${workload.description}`],
    ['request distribution', distribution],
    [
      'mode',
      config.rate > 0
        ? `open loop, ${config.rate} ops/s, at most ${config.inflightMax} in flight`
        : `closed loop, ${config.concurrency} in flight`,
    ],
    [
      'run phase',
      `${warmupSeconds > 0 ? `after ${warmupSeconds} s of warm-up (not recorded), ` : ''}${durationSeconds} s, ${config.runs} run(s) per target (medians below)`,
    ],
    ['records', `${config.recordCount} x ${config.recordBytes} bytes`],
    [
      'impulse',
      `${config.groups} group(s) x ${config.replicasPerGroup} replica(s) on ${config.nodes} node processes (impulse) or a process per replica (impulse-replicas), engine ${config.engine}, fsync on, ${config.readMode} reads, through the gateway`,
    ],
    ['HTTP client', config.client],
    ['seed', String(config.seed)],
    [
      'machine',
      `${machine.cpuCount} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, node ${machine.nodeVersion}; load generator and servers share the cores`,
    ],
  ];
  const title = `Impulse benchmark: workload ${workload.name}`;
  const directory = await createResultsDirectory(config.results, workload.name);
  const json = {
    title,
    startedAt: new Date().toISOString(),
    config: { ...config, durationSeconds, distribution },
    machine,
    source,
    summaries,
    comparisons,
    work,
    results: Object.fromEntries(resultsByTarget),
  };
  await writeResultFiles(directory, [
    ['result.json', `${JSON.stringify(json, null, 2)}\n`],
    ['report.html', renderHtmlReport({ title, settings, results: representative, comparisons })],
    ['report.png', renderPngReport(title, representative)],
  ]);

  const out = process.stdout;
  out.write(`\nworkload ${workload.name}, ${config.runs} run(s) per target (medians)\n`);
  out.write(
    `${'target'.padEnd(targetWidth)}${'ops/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'errors'.padStart(8)}` +
      `${'fsyncs/1k writes/node'.padStart(23)}${'messages/frame'.padStart(16)}\n`,
  );
  for (const summary of summaries) {
    if (summary.runs === 0) {
      out.write(`${summary.target.padEnd(targetWidth)}  not run: ${summary.failure ?? 'unknown reason'}\n`);
      continue;
    }
    const figures = work.find((entry) => entry.target === summary.target);
    const figure = (value: number | undefined, digits: number): string =>
      value === undefined ? 'n/a' : value.toFixed(digits);
    out.write(
      `${summary.target.padEnd(targetWidth)}${String(summary.operationsPerSecond).padStart(10)}${summary.p50Ms.toFixed(2).padStart(10)}${summary.p99Ms.toFixed(2).padStart(10)}${String(summary.errors).padStart(8)}` +
        `${figure(figures?.syncsPerThousandWritesPerNode, 0).padStart(23)}${figure(figures?.messagesPerFrame, 1).padStart(16)}\n`,
    );
  }
  for (const representativeResult of representative) {
    const cpu = representativeResult.cpuSeconds;
    if (cpu !== undefined) {
      out.write(
        `cpu seconds during the ${representativeResult.target} run: ${Object.entries(cpu)
          .map(([name, seconds]) => `${name} ${seconds}`)
          .join(', ')}\n`,
      );
    }
  }
  // Errors make a run's numbers meaningless (a dead group answers 503 fast): say so loudly.
  for (const [name, results] of resultsByTarget) {
    const errors = results.reduce(
      (sum, result) => sum + (result.load?.errors ?? 0) + (result.run?.errors ?? 0),
      0,
    );
    const sample = results.flatMap((result) => result.run?.errorSamples ?? [])[0];
    if (errors > 0)
      out.write(
        `${name}: ${errors} operations failed (load and run phases), e.g. ${sample ?? 'see result.json'}\n`,
      );
  }
  for (const line of comparisons) out.write(`${line}\n`);
  out.write(`commit: ${source.commit}${source.workTreeChanged ? ' (with uncommitted changes)' : ''}\n`);
  out.write(`results: ${directory}\n`);
  out.write(`${finalLine(workload.name, summaries)}\n`);
  // etcd missing is reported and skipped; a target that could not run the workload, or whose
  // operations failed, is a failure.
  const unrunnable = [...failures.values()].some((message) => message !== etcdInstallHint);
  const failedOperations = summaries.some((summary) => summary.errors > 0);
  return unrunnable || failedOperations ? 1 : 0;
}

const targetWidth = 18;
