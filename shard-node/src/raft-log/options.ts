/**
 * The options of a `RaftLogStore`, their defaults and limits, and the observer through which the
 * host exports append and fsync latencies and the log size.
 */
import { performance } from 'node:perf_hooks';

import { EMPTY_CONF_STATE, silentLogger, type ConfState, type Logger } from '../raft/index.js';
import { nodeFileSystem, type FileSystem } from '@impulse/common';
import { assert } from './errors.js';
import { RECORD_HEADER_BYTES } from './record-codec.js';

const MIB = 1024 * 1024;

/** Hooks for metrics. They are called synchronously and must not throw. */
export interface RaftLogObserver {
  /** Records of `bytes` were written (to the page cache) in `seconds`. */
  onAppend(bytes: number, seconds: number): void;
  /** One fsync took `seconds`: `segment` is a segment's fdatasync, `directory` a directory fsync. */
  onFsync(seconds: number, target: 'segment' | 'directory'): void;
  /** The segment files now hold `totalBytes` in `count` files (after every write, rotation and deletion). */
  onSegmentsChanged(totalBytes: number, count: number): void;
}

export interface RaftLogOptions {
  /** The directory of the segment files, created if missing. One log per directory. */
  readonly directory: string;
  /** A new segment starts once the tail would grow past this. Default 64 MiB. */
  readonly segmentBytesMax?: number;
  /**
   * The largest record, header included. Entry batches are split into records under this limit; a
   * single entry that does not fit is refused with an assertion. Default 16 MiB.
   */
  readonly recordBytesMax?: number;
  /**
   * The configuration of a brand-new cluster, as if from a snapshot at index 0 (see
   * `MemoryStorageOptions.confState`). Used only when the directory holds no log yet.
   */
  readonly confState?: ConfState;
  /** Warnings (a torn tail truncated at open) and info lines. Default: silent. */
  readonly logger?: Logger;
  readonly observer?: Partial<RaftLogObserver>;
  /** A monotonic clock in seconds, for the observer's latencies. Default: `performance.now()`. */
  readonly clockSeconds?: () => number;
  /** Where the segments live. Default: the real one (`nodeFileSystem`); the simulator's in memory. */
  readonly fileSystem?: FileSystem;
}

export interface ResolvedRaftLogOptions {
  readonly directory: string;
  readonly segmentBytesMax: number;
  readonly recordBytesMax: number;
  readonly confState: ConfState;
  readonly logger: Logger;
  readonly observer: RaftLogObserver;
  readonly clockSeconds: () => number;
  readonly fs: FileSystem;
}

export const SEGMENT_BYTES_MAX_DEFAULT = 64 * MIB;
export const RECORD_BYTES_MAX_DEFAULT = 16 * MIB;
/** Small enough for tests, large enough for a checkpoint and a few records. */
export const SEGMENT_BYTES_MIN = 4096;
/** Records are read whole into memory and their length is a u32; 1 GiB keeps well inside both. */
export const RECORD_BYTES_LIMIT = 1024 * MIB;

const noop = (): void => {};

export function resolveRaftLogOptions(options: RaftLogOptions): ResolvedRaftLogOptions {
  const segmentBytesMax = options.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT;
  const recordBytesMax = options.recordBytesMax ?? RECORD_BYTES_MAX_DEFAULT;
  assert(options.directory.length > 0, 'directory must not be empty');
  assert(
    Number.isSafeInteger(segmentBytesMax) && segmentBytesMax >= SEGMENT_BYTES_MIN,
    `segmentBytesMax must be an integer >= ${SEGMENT_BYTES_MIN}, got ${segmentBytesMax}`,
  );
  assert(
    Number.isSafeInteger(recordBytesMax) &&
      recordBytesMax > RECORD_HEADER_BYTES + 1024 &&
      recordBytesMax <= RECORD_BYTES_LIMIT,
    `recordBytesMax must be an integer in (${RECORD_HEADER_BYTES + 1024}, ${RECORD_BYTES_LIMIT}], got ${recordBytesMax}`,
  );
  const observer = options.observer ?? {};
  return Object.freeze({
    directory: options.directory,
    segmentBytesMax,
    recordBytesMax,
    confState: options.confState ?? EMPTY_CONF_STATE,
    logger: options.logger ?? silentLogger,
    observer: {
      onAppend: observer.onAppend?.bind(observer) ?? noop,
      onFsync: observer.onFsync?.bind(observer) ?? noop,
      onSegmentsChanged: observer.onSegmentsChanged?.bind(observer) ?? noop,
    },
    clockSeconds: options.clockSeconds ?? ((): number => performance.now() / 1000),
    fs: options.fileSystem ?? nodeFileSystem,
  });
}
