/**
 * A data directory that can lose power: a FUSE pass-through file system of the project's own
 * (`deploy/powerfs/powerfs.c`, in the manner of LazyFS) over a backing folder. Writes go through at
 * once, but the file system remembers what is not yet durable: file contents not fsynced since
 * they changed, and creations, renames and removals not followed by an fsync of the file or of its
 * directory. A power cut (`cut()`) puts every file and folder back as it was when last made
 * durable, and invalidates every handle opened before it. Call it only once the processes using
 * the mount are gone (killed): a power cut takes them down with it.
 *
 * The daemon runs in the foreground and is driven over its standard input: `cut` and `stats`
 * lines, answered by one line on its standard output; end of input unmounts it, so a mount never
 * outlives the process that made it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { once } from 'node:events';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** What one power cut threw away. */
export interface PowerCut {
  /** Files whose unsynced contents were dropped (restored to their last synced state). */
  readonly filesReverted: number;
  /** Creations, renames and removals undone because no fsync made them durable. */
  readonly operationsUndone: number;
  /** Unsynced bytes dropped: written past the synced size, or overwriting synced bytes. */
  readonly bytesDropped: number;
}

/** What a power cut would throw away now. */
export interface PowerFsStats {
  readonly dirtyFiles: number;
  readonly pendingOperations: number;
  readonly unsyncedBytes: number;
  /** Power cuts since the mount. */
  readonly cuts: number;
}

export interface PowerFsOptions {
  /** Holds the file system's contents (`root/`) and removed files kept for undoing (`trash/`). */
  readonly backingDirectory: string;
  /** Where the file system is mounted: the folder its user sees. Created if missing; must be empty. */
  readonly mountpoint: string;
  /** The daemon's diagnostics (one line each). */
  readonly onLogLine?: (line: string) => void;
}

const sourceDirectory = resolve(dirname(fileURLToPath(import.meta.url)), '../../powerfs');
const buildScript = join(sourceDirectory, 'build.sh');
/** The daemon, built by `deploy/powerfs/build.sh` (which installs fuse3 and libfuse3-dev if missing). */
export const powerFsBinary = join(sourceDirectory, 'build', 'impulse-powerfs');
const mountTimeoutMs = 10_000;
const commandTimeoutMs = 30_000;

/**
 * Builds the daemon when it is missing or older than its source. The build needs a C compiler,
 * pkg-config and libfuse3; the script says what is missing.
 */
export function ensurePowerFsBuilt(): string {
  const source = join(sourceDirectory, 'powerfs.c');
  if (!existsSync(powerFsBinary) || statSync(powerFsBinary).mtimeMs < statSync(source).mtimeMs) {
    execFileSync('bash', [buildScript], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  return powerFsBinary;
}

export class PowerFs {
  private readonly answers: string[] = [];
  private readonly waiting: Array<(line: string) => void> = [];
  private readonly lines: Interface;
  private exited = false;
  private readonly closed: Promise<unknown>;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly mountpoint: string,
    readonly backingDirectory: string,
    private readonly child: ChildProcess,
    private readonly onLogLine: (line: string) => void,
  ) {
    this.closed = once(child, 'close').catch(() => undefined);
    this.lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    this.lines.on('line', (line) => {
      const next = this.waiting.shift();
      if (next === undefined) this.answers.push(line);
      else next(line);
    });
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) =>
      this.onLogLine(line),
    );
    child.once('exit', () => {
      this.exited = true;
      for (const next of this.waiting.splice(0)) next('');
    });
  }

  /** Mounts a power-cut file system at `mountpoint`; resolves once it serves. */
  static async mount(options: PowerFsOptions): Promise<PowerFs> {
    const binary = ensurePowerFsBuilt();
    const backing = resolve(options.backingDirectory);
    const mountpoint = resolve(options.mountpoint);
    mkdirSync(backing, { recursive: true });
    mkdirSync(mountpoint, { recursive: true });
    const child = spawn(binary, [backing, mountpoint], { stdio: ['pipe', 'pipe', 'pipe'] });
    const log = options.onLogLine ?? (() => undefined);
    const fs = new PowerFs(mountpoint, backing, child, log);
    const stderr: string[] = [];
    const keep = (chunk: Buffer): void => {
      stderr.push(chunk.toString('utf8'));
    };
    child.stderr?.on('data', keep);
    const ready = await Promise.race([
      fs.nextLine(mountTimeoutMs),
      once(child, 'error').then(([error]) => `error ${(error as Error).message}`),
    ]);
    child.stderr?.off('data', keep);
    if (ready !== 'ready') {
      child.kill('SIGKILL');
      throw new Error(
        `impulse-powerfs did not mount ${mountpoint}: ${ready === '' ? 'it exited' : ready}; ${stderr.join('').trim()}`,
      );
    }
    return fs;
  }

  /** Power cut: drops everything not yet durable. The mount's users must be gone already. */
  async cut(): Promise<PowerCut> {
    const answer = await this.command('cut');
    const fields = parseFields(answer, 'cut');
    return {
      filesReverted: fields['files'] ?? 0,
      operationsUndone: fields['operations'] ?? 0,
      bytesDropped: fields['bytes'] ?? 0,
    };
  }

  /**
   * Plants a bug on purpose, for tests that must show they catch one: from now on every fsync
   * succeeds without making anything durable (a disk that lies), so that the next `cut()` drops
   * everything written since, acknowledged or not. There is no way back but a new mount.
   */
  async lie(): Promise<void> {
    const answer = await this.command('lie');
    if (answer.trim() !== 'lie') throw new Error(`impulse-powerfs answered "${answer}" to lie`);
  }

  async stats(): Promise<PowerFsStats> {
    const fields = parseFields(await this.command('stats'), 'stats');
    return {
      dirtyFiles: fields['dirty-files'] ?? 0,
      pendingOperations: fields['pending-operations'] ?? 0,
      unsyncedBytes: fields['unsynced-bytes'] ?? 0,
      cuts: fields['cuts'] ?? 0,
    };
  }

  /** Unmounts (lazily, if still busy) and waits for the daemon to exit. */
  async unmount(): Promise<void> {
    if (this.exited) return;
    // 'close' comes after the daemon's output is read to its end: its last lines are delivered.
    const exited = this.closed;
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), commandTimeoutMs);
    await exited;
    clearTimeout(timer);
  }

  private command(line: string): Promise<string> {
    const run = async (): Promise<string> => {
      if (this.exited) throw new Error(`impulse-powerfs of ${this.mountpoint} is not running`);
      this.child.stdin?.write(`${line}\n`);
      const answer = await this.nextLine(commandTimeoutMs);
      if (answer === '') throw new Error(`impulse-powerfs of ${this.mountpoint} exited during ${line}`);
      if (answer.startsWith('error')) throw new Error(`impulse-powerfs ${line}: ${answer}`);
      return answer;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private nextLine(timeoutMs: number): Promise<string> {
    const queued = this.answers.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.exited) return Promise.resolve('');
    return new Promise((resolveLine, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiting.indexOf(deliver);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(new Error(`impulse-powerfs of ${this.mountpoint} did not answer in ${timeoutMs} ms`));
      }, timeoutMs);
      const deliver = (line: string): void => {
        clearTimeout(timer);
        resolveLine(line);
      };
      this.waiting.push(deliver);
    });
  }
}

/** `cut files=1 operations=2 bytes=3` → { files: 1, operations: 2, bytes: 3 }. */
function parseFields(answer: string, head: string): Record<string, number> {
  const [first, ...pairs] = answer.trim().split(/\s+/);
  if (first !== head) throw new Error(`impulse-powerfs answered "${answer}" to ${head}`);
  const fields: Record<string, number> = {};
  for (const pair of pairs) {
    const [key, value] = pair.split('=');
    if (key !== undefined && value !== undefined) fields[key] = Number(value);
  }
  return fields;
}
