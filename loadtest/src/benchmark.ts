import { systemClock, type Clock } from './clock.js';
import { runClosedLoop } from './drivers/closed-loop.js';
import { runOpenLoop } from './drivers/open-loop.js';
import type { DriverSummary } from './drivers/pending-operation.js';
import { ownCpuSeconds, processCpuSeconds } from './process-cpu.js';
import { ProgressLine } from './progress.js';
import { RunRecorder, summarize, type IntervalSample, type LatencySummary } from './recorder.js';
import {
  nodesOf,
  workFigures,
  writeOperationsOf,
  type RunWork,
  type WorkFigures,
  type WorkMeter,
} from './run-work.js';
import { scansUnsupportedMessage } from './targets/kv-target.js';
import type { RunningTarget } from './targets/running-target.js';
import { WorkloadOperations } from './workload-operations.js';
import type { DistributionName, WorkloadDefinition } from './workload.js';

export interface BenchmarkOptions {
  readonly workload: WorkloadDefinition;
  readonly distribution: DistributionName;
  readonly recordCount: number;
  readonly recordBytes: number;
  readonly durationMs: number;
  readonly concurrency: number;
  /** 0 runs a closed loop; above 0 an open loop at this many operations per second. */
  readonly rateOperationsPerSecond: number;
  /** Open loop: operations in flight at most. */
  readonly inflightMax: number;
  readonly seed: number;
  /** The run phase's workload for this long before the run phase, not recorded; 0 or absent skips it. */
  readonly warmupMs?: number;
  /** Skip the load phase (the records are there already). */
  readonly skipLoad?: boolean;
  /**
   * Starts measuring the servers' work right before the run phase; it is stopped right after, and
   * its answer is the result's `work` (fsyncs, peer messages: see `run-work.ts`).
   */
  readonly meterRunPhase?: () => Promise<WorkMeter>;
}

export interface PhaseResult {
  readonly operations: number;
  readonly errors: number;
  readonly seconds: number;
  readonly operationsPerSecond: number;
  readonly latency: LatencySummary;
}

export interface RunPhaseResult extends PhaseResult {
  readonly mode: 'closed-loop' | 'open-loop';
  readonly notFound: number;
  readonly notIssued: number;
  readonly latencyByKind: Record<string, LatencySummary>;
  readonly intervals: readonly IntervalSample[];
  readonly errorSamples: readonly string[];
}

export interface TargetResult {
  readonly target: string;
  readonly description: string;
  /** Set when the target could not run this workload; the numbers below are then absent. */
  readonly failure?: string;
  readonly load?: PhaseResult;
  readonly run?: RunPhaseResult;
  /** CPU seconds each server process used during the run phase, and the load generator's own. */
  readonly cpuSeconds?: Record<string, number>;
  /** What the servers did during the run phase, when `meterRunPhase` was given. */
  readonly work?: RunWork;
  /** The same per write, per node and per frame. */
  readonly workFigures?: WorkFigures;
}

/** Runs the load phase, then the run phase, of one workload against one started target. */
export async function runBenchmark(
  running: RunningTarget,
  options: BenchmarkOptions,
  clock: Clock = systemClock,
): Promise<TargetResult> {
  const { target } = running;
  const base = { target: running.name, description: running.description };
  if ((options.workload.proportions.scan ?? 0) > 0 && !(await target.supportsScan())) {
    return { ...base, failure: `${running.name}: ${scansUnsupportedMessage}` };
  }
  const operations = new WorkloadOperations(target, {
    workload: options.workload,
    distribution: options.distribution,
    recordCount: options.recordCount,
    recordBytes: options.recordBytes,
    seed: options.seed,
  });

  let load: PhaseResult | undefined;
  if (options.skipLoad !== true) {
    const loadRecorder = new RunRecorder();
    const loadProgress = new ProgressLine(`[${running.name} load]`, loadRecorder, clock.nowMilliseconds);
    loadProgress.start();
    const loadSummary = await runClosedLoop({
      concurrency: options.concurrency,
      durationMs: Number.POSITIVE_INFINITY,
      operationsMax: options.recordCount,
      issue: operations.load,
      recorder: loadRecorder,
      clock,
    });
    loadProgress.stop();
    load = phaseResult(loadRecorder, loadSummary);
  }

  const runPhase = async (
    label: string,
    durationMs: number,
    recorder: RunRecorder,
  ): Promise<DriverSummary> => {
    const progress = new ProgressLine(`[${running.name} ${label}]`, recorder, clock.nowMilliseconds);
    progress.start();
    try {
      return options.rateOperationsPerSecond > 0
        ? await runOpenLoop({
            rateOperationsPerSecond: options.rateOperationsPerSecond,
            durationMs,
            inflightMax: options.inflightMax,
            drainTimeoutMs: 10_000,
            issue: operations.run,
            recorder,
            clock,
          })
        : await runClosedLoop({
            concurrency: options.concurrency,
            durationMs,
            issue: operations.run,
            recorder,
            clock,
          });
    } finally {
      progress.stop();
    }
  };

  // The warm-up's operations are thrown away; its reads of missing keys do not count either.
  if ((options.warmupMs ?? 0) > 0) await runPhase('warm', options.warmupMs ?? 0, new RunRecorder());
  const notFoundBefore = operations.notFound;
  const recorder = new RunRecorder();
  const meter = await options.meterRunPhase?.();
  const cpuBefore = cpuSnapshot(running);
  const summary = await runPhase('run ', options.durationMs, recorder);
  const cpuAfter = cpuSnapshot(running);
  const work = await meter?.stop();
  const cpuSeconds: Record<string, number> = {};
  for (const [name, after] of Object.entries(cpuAfter)) {
    const before = cpuBefore[name];
    if (before !== undefined) cpuSeconds[name] = Math.round((after - before) * 100) / 100;
  }

  const latencyByKind: Record<string, LatencySummary> = {};
  for (const [kind, histogram] of recorder.byKind) latencyByKind[kind] = summarize(histogram);
  return {
    ...base,
    ...(load === undefined ? {} : { load }),
    run: {
      ...phaseResult(recorder, summary),
      mode: options.rateOperationsPerSecond > 0 ? 'open-loop' : 'closed-loop',
      notFound: operations.notFound - notFoundBefore,
      notIssued: summary.notIssued,
      latencyByKind,
      intervals: recorder.intervals,
      errorSamples: recorder.errorSamples,
    },
    cpuSeconds,
    ...(work === undefined
      ? {}
      : { work, workFigures: workFigures(work, writeOperationsOf(latencyByKind), nodesOf(running)) }),
  };
}

function phaseResult(recorder: RunRecorder, summary: DriverSummary): PhaseResult {
  const operations = recorder.overall.count;
  return {
    operations,
    errors: recorder.errors,
    seconds: Math.round(summary.elapsedSeconds * 1000) / 1000,
    operationsPerSecond: Math.round((operations - recorder.errors) / Math.max(1e-9, summary.elapsedSeconds)),
    latency: summarize(recorder.overall),
  };
}

function cpuSnapshot(running: RunningTarget): Record<string, number> {
  const snapshot: Record<string, number> = { 'load-generator': ownCpuSeconds() };
  for (const { name, pid } of running.processes()) {
    const seconds = processCpuSeconds(pid);
    if (seconds !== undefined) snapshot[name] = seconds;
  }
  return snapshot;
}
