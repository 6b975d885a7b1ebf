/**
 * The options of a `NodeLog` and of each group's share of it, their defaults and limits, and the
 * observers through which the host exports the node's and each replica's metrics.
 */
import { performance } from 'node:perf_hooks';

import { silentLogger, type ConfState, type Logger } from '../raft/index.js';
import { nodeFileSystem, type FileSystem } from '@impulse/common';
import { assert } from './errors.js';
import {
  RECORD_BYTES_LIMIT,
  RECORD_BYTES_MAX_DEFAULT,
  SEGMENT_BYTES_MAX_DEFAULT,
  SEGMENT_BYTES_MIN,
  type RaftLogObserver,
} from './options.js';
import { RECORD_HEADER_BYTES } from './record-codec.js';

const MIB = 1024 * 1024;

/** What one flush of the node log wrote, and the fdatasync that made it durable. */
export interface NodeLogFlush {
  /** Writes the flush took: groups' saves and compactions (one per group per round), creations, removals. */
  readonly writes: number;
  /** Raft entries in those writes, over every group. */
  readonly entries: number;
  /** Bytes of those writes (0 for a flush that only had to sync), without a rotation's checkpoint. */
  readonly bytes: number;
  /** Seconds of the fdatasync that made the flush durable, or undefined when no write of it asked for one. */
  readonly fsyncSeconds: number | undefined;
}

/**
 * The node's hooks for metrics: those of a replica log, counted once for the whole node (every
 * fdatasync, directory fsync and write of the node log, once each), plus the batching.
 * Synchronous; must not throw.
 */
export interface NodeLogObserver extends RaftLogObserver {
  /** One flush: its writes, at most one fdatasync for all of them (group commit). */
  onFlush(flush: NodeLogFlush): void;
  /** A write waited for room: `pendingBytes` were already waiting for the next flush (see `pendingBytesMax`). */
  onBackpressure(pendingBytes: number): void;
}

export interface NodeLogOptions {
  /** The directory of the node's segment files, created if missing. One node log per directory. */
  readonly directory: string;
  /** A new segment starts once the tail would grow past this. Default 64 MiB. */
  readonly segmentBytesMax?: number;
  /**
   * The largest record, header included. Entry batches are split into records under this limit; a
   * single entry that does not fit is refused with an assertion. A segment's checkpoint holds every
   * group's state and must fit too (see `groupsMax`). Default 16 MiB.
   */
  readonly recordBytesMax?: number;
  /**
   * The bytes of writes waiting for the next flush. A write that would go past it waits until the
   * flush in progress takes the pending ones (backpressure); a single larger write is taken alone.
   * Default 32 MiB.
   */
  readonly pendingBytesMax?: number;
  /**
   * The most groups the log holds at once; `group()` asserts it. Each group takes about 100 bytes
   * (more with large configurations) in every segment's checkpoint, which must fit in
   * `recordBytesMax`. Default 4096.
   */
  readonly groupsMax?: number;
  /** Warnings (a torn tail truncated at open) and info lines. Default: silent. */
  readonly logger?: Logger;
  readonly observer?: Partial<NodeLogObserver>;
  /** A monotonic clock in seconds, for the observers' latencies. Default: `performance.now()`. */
  readonly clockSeconds?: () => number;
  /**
   * Runs a flush after the writes of the current event-loop round. Default `setImmediate`, which
   * runs after the I/O callbacks of the round: every replica whose Ready became ready in it has
   * called `save` by then.
   */
  readonly schedule?: (run: () => void) => void;
  /** Where the segments live. Default: the real one (`nodeFileSystem`); the simulator's in memory. */
  readonly fileSystem?: FileSystem;
}

export interface ResolvedNodeLogOptions {
  readonly directory: string;
  readonly segmentBytesMax: number;
  readonly recordBytesMax: number;
  readonly pendingBytesMax: number;
  readonly groupsMax: number;
  readonly logger: Logger;
  readonly observer: NodeLogObserver;
  readonly clockSeconds: () => number;
  readonly schedule: (run: () => void) => void;
  readonly fs: FileSystem;
}

/** What `NodeLog.group` takes besides the group's id. */
export interface GroupLogOptions {
  /**
   * The configuration of a brand-new group, as if from a snapshot at index 0. Used only when the
   * node log holds no such group yet (see `RaftLogOptions.confState`).
   */
  readonly confState?: ConfState;
  /**
   * The replica's hooks: `onAppend` with the bytes of this group's records and the duration of
   * the write that carried them, `onFsync` once per datasync that a synced write of this group
   * waited for, and `onSegmentsChanged` with the bytes of this group's records on disk and the
   * number of segments of the node.
   */
  readonly observer?: Partial<RaftLogObserver>;
}

export const PENDING_BYTES_MAX_DEFAULT = 32 * MIB;
/** Small enough for tests of the backpressure. */
export const PENDING_BYTES_MIN = 1024;
export const GROUPS_MAX_DEFAULT = 4096;

const noop = (): void => {};

export function resolveNodeLogOptions(options: NodeLogOptions): ResolvedNodeLogOptions {
  const segmentBytesMax = options.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT;
  const recordBytesMax = options.recordBytesMax ?? RECORD_BYTES_MAX_DEFAULT;
  const pendingBytesMax = options.pendingBytesMax ?? PENDING_BYTES_MAX_DEFAULT;
  const groupsMax = options.groupsMax ?? GROUPS_MAX_DEFAULT;
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
  assert(
    Number.isSafeInteger(pendingBytesMax) && pendingBytesMax >= PENDING_BYTES_MIN,
    `pendingBytesMax must be an integer >= ${PENDING_BYTES_MIN}, got ${pendingBytesMax}`,
  );
  assert(
    Number.isSafeInteger(groupsMax) && groupsMax >= 1,
    `groupsMax must be a positive integer, got ${groupsMax}`,
  );
  const observer = options.observer ?? {};
  return Object.freeze({
    directory: options.directory,
    segmentBytesMax,
    recordBytesMax,
    pendingBytesMax,
    groupsMax,
    logger: options.logger ?? silentLogger,
    observer: {
      onAppend: observer.onAppend?.bind(observer) ?? noop,
      onFsync: observer.onFsync?.bind(observer) ?? noop,
      onSegmentsChanged: observer.onSegmentsChanged?.bind(observer) ?? noop,
      onFlush: observer.onFlush?.bind(observer) ?? noop,
      onBackpressure: observer.onBackpressure?.bind(observer) ?? noop,
    },
    clockSeconds: options.clockSeconds ?? ((): number => performance.now() / 1000),
    schedule: options.schedule ?? ((run: () => void): void => void setImmediate(run)),
    fs: options.fileSystem ?? nodeFileSystem,
  });
}

/** A group's observer with every hook present. */
export function resolveGroupObserver(observer: Partial<RaftLogObserver> = {}): RaftLogObserver {
  return {
    onAppend: observer.onAppend?.bind(observer) ?? noop,
    onFsync: observer.onFsync?.bind(observer) ?? noop,
    onSegmentsChanged: observer.onSegmentsChanged?.bind(observer) ?? noop,
  };
}
