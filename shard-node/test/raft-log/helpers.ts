import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { expect } from 'vitest';

import type { ConfState, Entry, LogFields, Storage } from '../../src/raft/index.js';
import {
  NodeLog,
  RaftLogStore,
  type NodeLogFlush,
  type NodeLogOptions,
  type RaftLogOptions,
} from '../../src/raft-log/index.js';

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

/** Counts what a node log reports besides what a replica log does: its flushes and backpressure. */
export class NodeRecorder extends Recorder {
  flushes = 0;
  syncedFlushes = 0;
  flushedWrites = 0;
  flushedEntries = 0;
  flushBytesMax = 0;
  backpressures = 0;

  readonly nodeObserver = {
    onFlush: ({ writes, entries, bytes, fsyncSeconds }: NodeLogFlush): void => {
      this.flushes++;
      if (fsyncSeconds !== undefined) this.syncedFlushes++;
      this.flushedWrites += writes;
      this.flushedEntries += entries;
      this.flushBytesMax = Math.max(this.flushBytesMax, bytes);
    },
    onBackpressure: (): void => {
      this.backpressures++;
    },
  };
}

export function openNodeLog(
  directory: string,
  recorder: Recorder = new NodeRecorder(),
  options: Partial<NodeLogOptions> = {},
): Promise<NodeLog> {
  const observer =
    recorder instanceof NodeRecorder ? { ...recorder.observer, ...recorder.nodeObserver } : recorder.observer;
  return NodeLog.open({ directory, observer, logger: recorder.logger, ...options });
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

/** Every read of the Storage contract, including the errors, as one comparable value. */
export function reads(storage: Storage): unknown {
  const outcome = (read: () => unknown): unknown => {
    try {
      return read();
    } catch (error) {
      return (error as Error).name;
    }
  };
  // Entries are compared as compact strings: deep equality over byte arrays is slow.
  const describe = (list: readonly Entry[]): string =>
    list.map((e) => `${e.index}/${e.term}/${e.type}/${Buffer.from(e.data).toString('hex')}`).join(' ');
  const lo = storage.firstIndex();
  const hi = storage.lastIndex() + 1;
  const terms = [];
  for (let index = lo - 2; index <= hi; index++) {
    terms.push(outcome(() => storage.term(index)));
  }
  return {
    firstIndex: lo,
    lastIndex: hi - 1,
    snapshot: storage.snapshot().metadata,
    initialState: storage.initialState(),
    terms,
    entries: outcome(() => describe(liveEntries(storage))),
    limited: [0, 100, 1000].map((maxBytes) => outcome(() => storage.entries(lo, hi, maxBytes).length)),
    compacted: outcome(() => storage.entries(lo - 1, hi, Infinity).length),
  };
}

export function expectSameReads(store: Storage, model: Storage, label?: string): void {
  expect(reads(store), label).toEqual(reads(model));
}

/** One of a few configurations, chosen by `n`, for tests that vary it. */
export function confState(n: number): ConfState {
  return {
    voters: [1, 2, 3].slice(0, 1 + (n % 3)),
    learners: n % 2 === 0 ? [] : [7],
    votersOutgoing: [],
    learnersNext: [],
    autoLeave: false,
  };
}
