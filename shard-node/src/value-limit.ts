/**
 * The largest value a shard group can carry, derived from the limits a written value passes
 * through on its way to every replica. Each of them holds the value whole, with its key and
 * headers beside it:
 *
 * - the peer transport's frame (`frameBytesMax`, 4 MiB): the leader sends the entry to each
 *   follower in a MsgApp, alone in its frame if need be; a message over the frame is dropped, for
 *   ever, and the follower never gets the entry (the group wedges);
 * - a snapshot stream's record: a follower that fell behind gets the stored record in a chunk of
 *   whole records, each chunk sent in one frame (a chunk split across frames cannot be decoded);
 * - the Raft log's record (`recordBytesMax`, 16 MiB): a replica writes the entry in one record,
 *   and asserts (exits) on an entry that does not fit.
 *
 * A value over the smallest of these bounds must be refused before it is proposed: at start-up
 * (a `valueBytesMax` above it) and by the 413 of every request above `valueBytesMax`.
 */
import { RECORD_BYTES_MAX_DEFAULT } from './raft-log/index.js';
import { EMPTY_BATCH_BYTES, ENTRY_OVERHEAD_BYTES } from './raft-log/entry-codec.js';
import { RECORD_HEADER_BYTES } from './raft-log/record-codec.js';
import { commandKeyBytesMax, putCommandBytes, requestIdBytesMax } from './state-machine/command.js';
import { recordChecksumBytes } from './state-machine/sealed-record.js';
import { snapshotRecordBytes } from './state-machine/snapshot-codec.js';
import { defaultTransportLimits, frameHeaderBytes, messageEncodedBytesBound } from './transport/index.js';
import { snapshotChunkOverheadBytesMax } from './transport/snapshot-chunk.js';

/** The bound each limit sets on a value, for a given longest key. */
export interface ValueBytesBounds {
  /** A MsgApp carrying the put alone in one transport frame. */
  readonly frame: number;
  /** The stored record (engine key, checksum, value) in one snapshot chunk, in one frame. */
  readonly snapshotRecord: number;
  /** The entry alone in one Raft log record. */
  readonly logRecord: number;
}

/** The bound every limit sets on a value when keys may be up to `keyBytesMax` bytes of UTF-8. */
export function valueBytesBounds(keyBytesMax: number): ValueBytesBounds {
  const frameBytesMax = defaultTransportLimits.frameBytesMax;
  const commandBytes = putCommandBytes(keyBytesMax, 0, requestIdBytesMax);
  const messageBytes = messageEncodedBytesBound({
    type: 'MsgApp',
    from: 0,
    to: 0,
    term: 0,
    logTerm: 0,
    index: 0,
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
    entries: [{ type: 'normal', term: 0, index: 0, data: new Uint8Array(commandBytes) }],
  });
  // The data key is the user key after one prefix byte (`keyspace.ts`).
  const storedRecordBytes = snapshotRecordBytes(1 + keyBytesMax, recordChecksumBytes);
  const logEntryBytes = RECORD_HEADER_BYTES + EMPTY_BATCH_BYTES + ENTRY_OVERHEAD_BYTES + commandBytes;
  return {
    frame: frameBytesMax - frameHeaderBytes - messageBytes,
    snapshotRecord: frameBytesMax - snapshotChunkOverheadBytesMax - storedRecordBytes,
    logRecord: RECORD_BYTES_MAX_DEFAULT - logEntryBytes,
  };
}

/** The largest value a group carries when keys may be up to `keyBytesMax` bytes. */
export function largestValueBytes(keyBytesMax: number): number {
  const bounds = valueBytesBounds(keyBytesMax);
  return Math.min(bounds.frame, bounds.snapshotRecord, bounds.logRecord);
}

/**
 * The problem with a `valueBytesMax` the group cannot carry with keys of up to `keyBytesMax`
 * bytes, if there is one. The cluster configuration's own bound (common's
 * `valueBytesMaxUpperBound`, which holds for the longest key allowed; a test keeps it under this
 * one) refuses larger values first; this check also catches a replica run without a cluster
 * configuration, whose flags are its limits.
 */
export function valueBytesMaxProblem(valueBytesMax: number, keyBytesMax: number): string | undefined {
  const largest = largestValueBytes(keyBytesMax);
  if (valueBytesMax <= largest) return undefined;
  return `--value-bytes-max (${valueBytesMax} bytes) is over the largest value a group can replicate with keys of up to ${keyBytesMax} bytes: ${largest} bytes (a write travels whole in one ${defaultTransportLimits.frameBytesMax}-byte frame of the peer transport, with its key and headers). Set it to at most ${largest} bytes`;
}

/**
 * The problem with a `keyBytesMax` longer than a write command can carry (its key length is 16
 * bits), if there is one: such a key would pass every check and then fail to be proposed.
 */
export function keyBytesMaxProblem(keyBytesMax: number): string | undefined {
  if (keyBytesMax <= commandKeyBytesMax) return undefined;
  return `--key-bytes-max (${keyBytesMax} bytes) is over the longest key a write can carry: ${commandKeyBytesMax} bytes (its length is stored in 16 bits)`;
}
