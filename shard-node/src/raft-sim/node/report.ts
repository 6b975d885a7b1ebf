/**
 * How the node simulator names a seed's run: the command that replays it, and a one-line summary.
 */
import type { NodeSimulationResult } from './node-simulation.js';
import type { TargetedSchedule } from './targeted-schedules.js';

/** The shape of a run that the replay command must repeat. */
export interface ReplayShape {
  readonly nodes: number;
  readonly groups: number;
  readonly durationMs: number;
  readonly leaseReads: boolean;
  readonly logs?: 'node' | 'replica';
  /** Whether replicas move (the default); false replays with `--no-moves`. */
  readonly moves?: boolean;
  readonly coalesceHeartbeats?: boolean;
  readonly schedule?: TargetedSchedule | undefined;
}

export function replayCommand(options: ReplayShape, seed: number): string {
  const flags = [
    options.leaseReads ? ' --lease-reads' : '',
    options.logs === 'replica' ? ' --logs replica' : '',
    options.moves === false ? ' --no-moves' : '',
    options.coalesceHeartbeats === true ? ' --coalesce-heartbeats' : '',
    options.schedule === undefined ? '' : ` --schedule ${options.schedule}`,
  ].join('');
  return `npm run sim -- --seeds 1 --seed ${seed} --nodes ${options.nodes} --groups ${options.groups} --duration-ms ${options.durationMs}${flags} --verbose`;
}

export function describeResult(result: NodeSimulationResult): string {
  const faults = Object.entries(result.faults)
    .map(([kind, count]) => `${kind} ${count}`)
    .join(', ');
  const forced = Object.entries(result.forcedCompactions)
    .map(([outcome, count]) => `${outcome} ${count}`)
    .join(', ');
  return `seed ${result.seed}: ${result.operations.ok} ok, ${result.operations.unknown} unknown, faults: ${faults || 'none'}, linearizable: ${result.linearizable}, ${result.network.snapshotStreams} snapshot streams, forced compactions: ${forced || 'none'}${
    result.network.coalescedHeartbeats > 0
      ? `, ${result.network.coalescedHeartbeats} coalesced heartbeats of ${(result.network.coalescedHeartbeatEntries / result.network.coalescedHeartbeats).toFixed(1)} groups`
      : ''
  }`;
}
