/**
 * The power-loss disks of a local cluster's processes (replicas of `LocalCluster`, nodes of
 * `LocalNodeCluster`): each process's data directory is a mount of `PowerFs` over its own backing
 * folder under `<data root>/power-backing/`, kept from the process's first start to the cluster's
 * stop (or the process's retirement), and a power cut kills the processes and then drops every
 * write their file systems had not made durable.
 */
import { join } from 'node:path';
import { PowerFs, type PowerCut } from './power-fs.js';
import { isRunning, type ManagedProcess, type ProcessSupervisor } from './supervisor.js';

/** The folder, under the data root, of the processes' data with `powerLoss` (their mounts' backing). */
export const powerBackingFolderName = 'power-backing';

/**
 * A power cut that failed after it had killed its processes (a cut the file system did not make):
 * the processes are down all the same, and whoever asked for the cut must bring them back.
 */
export class PowerCutError extends Error {
  constructor(
    message: string,
    /** Every process the cut killed: all of those it was asked to cut (replica or node ids). */
    readonly killedReplicaIds: readonly string[],
    options: { cause: unknown },
  ) {
    super(message, options);
    this.name = 'PowerCutError';
  }
}

export interface PowerLossDisksOptions {
  /** The cluster's data root (resolved). */
  readonly dataRoot: string;
  readonly logDirectory: string;
  readonly supervisor: ProcessSupervisor;
  readonly onLogLine?: (processName: string, line: string) => void;
}

export class PowerLossDisks {
  /** Each process's power-loss file system, by its name (replica or node id). */
  private readonly mounted = new Map<string, PowerFs>();

  constructor(private readonly options: PowerLossDisksOptions) {}

  /** Where a process's file system keeps its data: `<data root>/power-backing/<relativePath>`. */
  backingDirectory(relativePath: string): string {
    return join(this.options.dataRoot, powerBackingFolderName, relativePath);
  }

  /**
   * Mounts the named process's power-loss file system at `mountpoint`, with its data in
   * `backingDirectory`, unless it is mounted already (it stays mounted across kills, power cuts and
   * restarts).
   */
  async mount(name: string, backingDirectory: string, mountpoint: string): Promise<void> {
    if (this.mounted.has(name)) return;
    const logName = `${name}-powerfs`;
    const log = this.options.supervisor.logStream(logName, join(this.options.logDirectory, `${logName}.log`));
    try {
      const mounted = await PowerFs.mount({
        backingDirectory,
        mountpoint,
        onLogLine: (line) => {
          // The daemon's last lines can come after stop() closed the logs.
          if (!log.writableEnded) log.write(`${line}\n`);
          this.options.onLogLine?.(logName, line);
        },
      });
      this.mounted.set(name, mounted);
    } catch (error) {
      throw new Error(
        `${name}: cannot mount its power-loss file system (impulse-powerfs, which needs /dev/fuse and fuse3) at ${mountpoint}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /** Test-only: the named process's file system lies about fsyncs from now on (`PowerFs.lie`). */
  async lie(name: string): Promise<void> {
    const mounted = this.mounted.get(name);
    if (mounted === undefined) throw new Error(`${name} has no power-loss file system mounted`);
    await mounted.lie();
  }

  async unmount(name: string): Promise<void> {
    const mounted = this.mounted.get(name);
    if (mounted === undefined) return;
    this.mounted.delete(name);
    await mounted.unmount();
  }

  async unmountAll(): Promise<void> {
    await Promise.all([...this.mounted.keys()].map((name) => this.unmount(name)));
  }

  /**
   * A power cut of `processes`: each is killed with `kill` (`kill -9`, an exit the cluster caused),
   * and once all are gone their file systems drop every write, creation, rename and removal not yet
   * made durable. Resolves with what each cut dropped, in the order given. Refuses, before killing
   * any, a process that is not running (one that died on its own must not be revived) or named
   * twice. Once they are killed, a cut that fails rejects with a `PowerCutError`.
   */
  async cut(
    processes: readonly ManagedProcess[],
    kill: (managed: ManagedProcess) => Promise<void>,
  ): Promise<PowerCut[]> {
    const names = processes.map((managed) => managed.name);
    if (new Set(names).size !== names.length) {
      throw new Error(`power cut of ${names.join(', ')}: a process is named twice`);
    }
    for (const managed of processes) {
      if (!isRunning(managed)) throw new Error(`${managed.name} is not running`);
      if (!this.mounted.has(managed.name)) {
        throw new Error(`${managed.name} has no power-loss file system mounted`);
      }
    }
    // Every one was running a moment ago and nothing awaited since: each kill below succeeds.
    await Promise.all(processes.map((managed) => kill(managed)));
    const cuts = await Promise.allSettled(names.map((name) => (this.mounted.get(name) as PowerFs).cut()));
    const failed = cuts.flatMap((outcome, index) =>
      outcome.status === 'rejected' ? [`${names[index] ?? '?'}: ${(outcome.reason as Error).message}`] : [],
    );
    if (failed.length > 0) {
      throw new PowerCutError(`power cut failed after the kill: ${failed.join('; ')}`, names, {
        cause: cuts.find((outcome) => outcome.status === 'rejected')?.reason,
      });
    }
    return cuts.map((outcome) => (outcome as PromiseFulfilledResult<PowerCut>).value);
  }
}
