import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import type { Entry, LogFields } from '../../src/raft/index.js';
import { RaftLogStore, type RaftLogOptions } from '../../src/raft-log/index.js';

export async function temporaryDirectory(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'impulse-raft-log-'));
}

export async function removeDirectory(directory: string): Promise<void> {
  await rm(directory, { recursive: true, force: true });
}

/** An entry whose data is `dataBytes` bytes derived from its index and term. */
export function entry(index: number, term: number, dataBytes = 8): Entry {
  // Filled rather than written byte by byte: the compaction test builds 20 MiB of entries.
  const data = new Uint8Array(dataBytes).fill((index * 31 + term * 7) & 0xff);
  for (let i = 0; i < Math.min(dataBytes, 4); i++) {
    data[i] = (index >>> (8 * i)) & 0xff;
  }
  return { index, term, type: 'normal', data };
}

export function entries(from: number, to: number, term: number, dataBytes = 8): Entry[] {
  const result: Entry[] = [];
  for (let index = from; index <= to; index++) {
    result.push(entry(index, term, dataBytes));
  }
  return result;
}

/** Counts what the store reports, and records its warnings. */
export class Recorder {
  appends = 0;
  appendBytes = 0;
  segmentFsyncs = 0;
  directoryFsyncs = 0;
  totalBytes = 0;
  segmentCount = 0;
  readonly warnings: { message: string; fields: LogFields | undefined }[] = [];

  readonly observer = {
    onAppend: (bytes: number): void => {
      this.appends++;
      this.appendBytes += bytes;
    },
    onFsync: (_seconds: number, target: 'segment' | 'directory'): void => {
      if (target === 'segment') this.segmentFsyncs++;
      else this.directoryFsyncs++;
    },
    onSegmentsChanged: (totalBytes: number, count: number): void => {
      this.totalBytes = totalBytes;
      this.segmentCount = count;
    },
  };

  readonly logger = {
    debug: (): void => {},
    info: (): void => {},
    warn: (message: string, fields?: LogFields): void => {
      this.warnings.push({ message, fields });
    },
    error: (): void => {},
  };

  get fsyncs(): number {
    return this.segmentFsyncs + this.directoryFsyncs;
  }
}

export function openStore(
  directory: string,
  recorder = new Recorder(),
  options: Partial<RaftLogOptions> = {},
): Promise<RaftLogStore> {
  return RaftLogStore.open({ directory, observer: recorder.observer, logger: recorder.logger, ...options });
}

/** Every live entry of a store (or of any Storage), for comparisons. */
export function liveEntries(storage: {
  firstIndex(): number;
  lastIndex(): number;
  entries(lo: number, hi: number, maxBytes: number): readonly Entry[];
}): readonly Entry[] {
  if (storage.lastIndex() < storage.firstIndex()) {
    return [];
  }
  return storage.entries(storage.firstIndex(), storage.lastIndex() + 1, Infinity);
}

export async function segmentFiles(directory: string): Promise<string[]> {
  return (await readdir(directory)).filter((name) => name.endsWith('.log')).sort();
}

/** The bytes of the log's segment files (NEWEST, a few bytes naming the newest one, aside). */
export async function directoryBytes(directory: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(directory)) {
    if (!name.endsWith('.log')) continue;
    total += (await stat(path.join(directory, name))).size;
  }
  return total;
}
