import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The system calls that make a file durable, as the kernel's tracepoints name their entries. */
export const syncSyscalls = ['fdatasync', 'fsync'] as const;
export type SyncSyscall = (typeof syncSyscalls)[number];

/** Calls of each sync system call, by process id. */
export type SyncCountsByPid = ReadonlyMap<number, Readonly<Record<SyncSyscall, number>>>;

export const perfInstallHint =
  'counting fsyncs in the kernel needs perf with its syscall tracepoints (Debian: apt-get install -y linux-perf; run as root)';

/** How long perf may take to attach before the count is given up. */
const attachTimeoutMs = 5_000;
/** Tracepoints are armed a moment after perf creates its file: wait that long more. */
const attachSettleMs = 300;
const stopTimeoutMs = 10_000;

/**
 * Reads `perf script -F pid,event` output (`  1234 syscalls:sys_enter_fdatasync: `) into counts
 * by process id. Lines of other events, or not of that shape, are skipped.
 */
export function parsePerfScript(text: string): Map<number, Record<SyncSyscall, number>> {
  const counts = new Map<number, Record<SyncSyscall, number>>();
  for (const line of text.split('\n')) {
    const match = /^\s*(\d+)\s+syscalls:sys_enter_(\w+):/.exec(line);
    if (match === null) continue;
    const syscall = syncSyscalls.find((name) => name === match[2]);
    if (syscall === undefined) continue;
    const pid = Number(match[1]);
    const entry = counts.get(pid) ?? { fdatasync: 0, fsync: 0 };
    entry[syscall] += 1;
    counts.set(pid, entry);
  }
  return counts;
}

/** The sync calls of some processes, added up. */
export function syncCallsOf(counts: SyncCountsByPid, pids: readonly number[]): Record<SyncSyscall, number> {
  const total = { fdatasync: 0, fsync: 0 };
  for (const pid of pids) {
    const entry = counts.get(pid);
    if (entry === undefined) continue;
    total.fdatasync += entry.fdatasync;
    total.fsync += entry.fsync;
  }
  return total;
}

/** A count in progress: `stop()` ends it and answers the counts by process id. */
export interface SyncCount {
  stop(): Promise<SyncCountsByPid>;
}

/** Whether `perf` runs here (`perf --version`); the tracepoints are only tried by `startSyncCount`. */
export function perfInstalled(): boolean {
  return spawnSync('perf', ['--version'], { encoding: 'utf8' }).status === 0;
}

/**
 * Starts counting every fdatasync and fsync on the machine, by process, in the kernel (`perf record
 * -a` on the syscall-entry tracepoints, every event kept). It counts the calls of every thread of
 * every process, those started later too (LevelDB's and libuv's threads), which a per-process
 * attach would miss; the caller picks its processes' ids out of the answer. Resolves with the
 * reason instead when perf is missing or may not trace.
 */
export async function startSyncCount(): Promise<{ count: SyncCount } | { reason: string }> {
  if (!perfInstalled()) return { reason: perfInstallHint };
  const directory = await mkdtemp(join(tmpdir(), 'impulse-sync-count-'));
  const dataFile = join(directory, 'perf.data');
  const events = syncSyscalls.flatMap((name) => ['-e', `syscalls:sys_enter_${name}`]);
  const child = spawn('perf', ['record', '-q', '-a', '-c', '1', ...events, '-o', dataFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < 4000) stderr += chunk;
  });
  const exited = once(child, 'exit');
  const fail = async (reason: string): Promise<{ reason: string }> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await rm(directory, { recursive: true, force: true });
    return { reason };
  };
  const deadline = Date.now() + attachTimeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      return fail(`perf record exited at once: ${stderr.trim().split('\n')[0] ?? ''}; ${perfInstallHint}`);
    }
    const size = await stat(dataFile).then(
      (info) => info.size,
      () => 0,
    );
    if (size > 0) break;
    if (Date.now() > deadline) return fail(`perf record did not start within ${attachTimeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, attachSettleMs));
  return { count: { stop: () => stopAndRead(child, exited, dataFile, directory) } };
}

async function stopAndRead(
  child: ChildProcess,
  exited: Promise<unknown>,
  dataFile: string,
  directory: string,
): Promise<SyncCountsByPid> {
  try {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGINT makes perf record finish its file; SIGKILL only if it hangs.
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
      await exited;
      clearTimeout(timer);
    }
    const script = spawn('perf', ['script', '-i', dataFile, '-F', 'pid,event'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let text = '';
    script.stdout?.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    // 'close', not 'exit': the output may still be arriving when the process has exited.
    await once(script, 'close');
    return parsePerfScript(text);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
