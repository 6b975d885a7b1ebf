import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { startupErrorCodes, type StartupErrorCode } from '@impulse/common';

export interface ManagedProcess {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly logFile: string;
  child: ChildProcess | undefined;
}

/** A process that exited without the cluster having asked it to. */
export interface ProcessExit {
  readonly name: string;
  readonly pid: number | undefined;
  /** Its exit status (null when a signal ended it). */
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** Its last lines on stdout and stderr (its JSON log), oldest first. */
  readonly lastLogLines: readonly string[];
  readonly logFile: string;
}

/** How long a process may take to answer `/readyz` 200, unless its start names its own bound. */
export const readyTimeoutMsDefault = 20_000;
const stopTimeoutMs = 15_000;
/** The head of a child's stderr kept to explain its failure to start. */
const stderrHeadBytesMax = 4000;
/** The last lines of a child's output kept to explain an exit nobody asked for. */
const lastLogLinesMax = 20;
/**
 * The children this module stopped or killed on purpose: any other exit of a ready child is
 * unexpected.
 */
const expectedExits = new WeakSet<ChildProcess>();

/**
 * A process of the cluster exited before it was ready. Its message starts with the child's own
 * first line on stderr (its cause, e.g. `impulse-gateway: cannot listen on 127.0.0.1:8080:
 * EADDRINUSE [ADDRESS_IN_USE]`), so that whoever shows one line shows the cause.
 */
export class ProcessStartError extends Error {
  constructor(
    readonly processName: string,
    /** The child's exit status (null when a signal ended it). */
    readonly exitCode: number | null,
    readonly signal: string | null,
    /** What the child wrote on stderr (its tail). */
    readonly stderr: string,
    readonly logFile: string,
  ) {
    const [cause = '', ...more] = stderr.trim().split('\n');
    const status = signal === null ? `code ${String(exitCode)}` : `signal ${signal}`;
    const details = [...more.map((line) => `  ${line}`), `  see ${logFile}`];
    super(
      `${processName} exited during start-up (${status}): ${cause === '' ? 'nothing on stderr' : cause}\n${details.join('\n')}`,
    );
    this.name = 'ProcessStartError';
  }

  /** The start-up code the child gave at the end of its first stderr line (`[CODE]`), if any. */
  get startupCode(): StartupErrorCode | undefined {
    const match = /\[([A-Z_]+)\]\s*$/m.exec(this.stderr.trim().split('\n')[0] ?? '');
    const code = match?.[1];
    return startupErrorCodes.find((candidate) => candidate === code);
  }
}

export interface ProcessSupervisorOptions {
  /** Copies each process's log lines here as well as to its log file. */
  readonly onLogLine?: (processName: string, line: string) => void;
  readonly readyTimeoutMs?: number;
  /** Called when a process that had become ready exits without the supervisor having stopped or killed it. */
  readonly onUnexpectedExit?: (exit: ProcessExit) => void;
}

/**
 * Starts the processes of a local cluster and watches them: each one's output goes to its log
 * file (and, line by line, to `onLogLine`), a start waits for `/readyz`, and an exit that the
 * supervisor did not cause (`stop`, `kill`) is recorded in `unexpectedExits` with the process's
 * last lines: a crash nobody watched is a finding, never a silent pass.
 */
/**
 * Flags of the Node.js runtime for every process the launcher starts, as the container image's
 * entrypoint gives them (deploy/Dockerfile). A young generation of 32 MiB semi-spaces rather than
 * V8's 16: a node allocates short-lived objects per message and per write (Readys, frames,
 * promises), and the smaller young generation was scavenged often enough to show in profiles; at
 * 64 groups the larger one cut a node's CPU per write by about 6%, at 3 groups by about 2%
 * (docs/benchmarks.md, section 8). It costs at most 48 MiB more memory per process.
 */
export const nodeRuntimeFlags: readonly string[] = ['--max-semi-space-size=32'];

export class ProcessSupervisor {
  /** Every exit of a ready process that the supervisor did not cause, in order. */
  readonly unexpectedExits: ProcessExit[] = [];
  private readonly logStreams = new Map<string, WriteStream>();
  /** Processes being started: spawned, not yet ready (or their start failed). */
  private readonly starting = new Set<ManagedProcess>();

  constructor(private readonly options: ProcessSupervisorOptions) {}

  logStream(name: string, logFile: string): WriteStream {
    let stream = this.logStreams.get(name);
    if (stream === undefined) {
      stream = createWriteStream(logFile, { flags: 'a' });
      this.logStreams.set(name, stream);
    }
    return stream;
  }

  /**
   * Whether the process runs and has finished starting (it answered `/readyz`): a fault injector
   * must leave a process alone while it starts, or it fails the start it interrupts.
   */
  isReady(managed: ManagedProcess): boolean {
    return isRunning(managed) && !this.starting.has(managed);
  }

  /**
   * Spawns the process and waits for its `/readyz`, up to `readyTimeoutMs` (default: the
   * supervisor's `readyTimeoutMs`, or `readyTimeoutMsDefault`).
   */
  async spawnAndWait(
    managed: ManagedProcess,
    argumentsList: readonly string[],
    readyTimeoutMs = this.options.readyTimeoutMs ?? readyTimeoutMsDefault,
  ): Promise<void> {
    this.starting.add(managed);
    try {
      await this.spawnAndWaitForReady(managed, argumentsList, readyTimeoutMs);
    } finally {
      this.starting.delete(managed);
    }
  }

  private async spawnAndWaitForReady(
    managed: ManagedProcess,
    argumentsList: readonly string[],
    readyTimeoutMs: number,
  ): Promise<void> {
    const child = spawn(process.execPath, [...nodeRuntimeFlags, ...argumentsList], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    managed.child = child;
    const log = this.logStream(managed.name, managed.logFile);
    let stderrHead = '';
    let partial = '';
    const lastLines = new LastLines(lastLogLinesMax);
    child.stdout.on('data', (chunk: Buffer) => {
      log.write(chunk);
      lastLines.add('stdout', chunk);
      if (this.options.onLogLine === undefined) return;
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.options.onLogLine(managed.name, line);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      log.write(chunk);
      lastLines.add('stderr', chunk);
      // The head, not the tail: a process prints the cause of a failed start first.
      if (stderrHead.length < stderrHeadBytesMax) {
        stderrHead = (stderrHead + chunk.toString('utf8')).slice(0, stderrHeadBytesMax);
      }
    });
    const exited = once(child, 'exit').then(([code, signal]) => {
      throw new ProcessStartError(
        managed.name,
        code as number | null,
        signal as string | null,
        stderrHead,
        managed.logFile,
      );
    });
    const ready = waitForReady(managed.url, readyTimeoutMs);
    await Promise.race([ready, exited]);
    exited.catch(() => undefined);
    // Ready: from here on, an exit this cluster did not cause is a finding. 'close' comes after the
    // child's output is read to its end, so its last lines are there.
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (expectedExits.has(child)) return;
      const exit: ProcessExit = {
        name: managed.name,
        pid: child.pid,
        exitCode: code,
        signal,
        lastLogLines: lastLines.lines(),
        logFile: managed.logFile,
      };
      this.unexpectedExits.push(exit);
      this.options.onUnexpectedExit?.(exit);
    });
  }

  /**
   * `kill -9` of a process; resolves once it is gone. Refuses one that is not running: a caller
   * that restarts what it killed must never bring back a process that died on its own.
   */
  async kill(managed: ManagedProcess): Promise<void> {
    const child = managed.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${managed.name} is not running`);
    }
    expectedExits.add(child);
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    managed.child = undefined;
  }

  /** Ends every log file (after the processes stopped). */
  closeLogs(): void {
    for (const stream of this.logStreams.values()) stream.end();
    this.logStreams.clear();
  }
}

export function isRunning(managed: ManagedProcess): boolean {
  const child = managed.child;
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

export async function stopProcess(managed: ManagedProcess): Promise<void> {
  const child = managed.child;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  expectedExits.add(child);
  const exited = once(child, 'exit');
  child.kill('SIGCONT');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
  await exited;
  clearTimeout(timer);
  managed.child = undefined;
}

/** Polls `GET /readyz` until it answers 200. */
export async function waitForReady(baseUrl: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
      lastError = `status ${response.status}`;
    } catch (error) {
      lastError = (error as Error).message;
    }
    await new Promise((resolveDelay) => setTimeout(resolveDelay, 50));
  }
  throw new Error(`${baseUrl} was not ready within ${timeoutMs} ms (${lastError})`);
}

/** The last lines a child wrote, stdout and stderr interleaved as they arrived. */
class LastLines {
  private readonly kept: string[] = [];
  private readonly partial = { stdout: '', stderr: '' };

  constructor(private readonly linesMax: number) {}

  add(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const lines = (this.partial[stream] + chunk.toString('utf8')).split('\n');
    this.partial[stream] = lines.pop() ?? '';
    for (const line of lines) this.keep(line);
  }

  lines(): string[] {
    return [...this.kept, ...[this.partial.stdout, this.partial.stderr].filter((line) => line !== '')];
  }

  private keep(line: string): void {
    if (line === '') return;
    this.kept.push(line);
    if (this.kept.length > this.linesMax) this.kept.shift();
  }
}
