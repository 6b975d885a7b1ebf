import { AssertionError } from 'node:assert/strict';
import { isEngineError } from '../storage/index.js';
import { slotIndexRange } from './keyspace.js';

/**
 * A storage fault: the state machine's engine answered something that cannot be trusted. A stored
 * checksum that does not match its record, a record or block that does not decode, an engine read
 * that failed (LevelDB's `Corruption`, an I/O error), or a gap in the chain of applied batches (a
 * batch that the engine lost while a later one survived), a lost engine, a slot index that does
 * not match its data, or a state that a consistency check found divergent. It is never answered as a value: the replica stops serving
 * and stops campaigning until it is rebuilt from its leader's snapshot (docs/replication.md).
 *
 * It is not an assertion (the code did nothing wrong: the disk did) and not a passing operating
 * error (retrying the same read gives the same wrong bytes): it is a state of the replica.
 */

export type StorageFaultKind =
  /** A record's stored checksum does not match its key and payload. */
  | 'checksum-mismatch'
  /** A record is too short to hold its checksum, or a meta record does not decode. */
  | 'undecodable'
  /** The engine failed a read (LevelDB reports a corrupt block or an I/O error). */
  | 'read-failed'
  /** The engine failed a write because its files are damaged (LevelDB's `Corruption`). */
  | 'write-failed'
  /** The batch records do not form a contiguous chain up to the applied index. */
  | 'gap'
  /**
   * The engine's state is gone: its folder was removed, or it is behind the Raft log's snapshot
   * (the entries that would rebuild it were compacted away).
   */
  | 'lost'
  /** A consistency check found this replica's state different from its group's majority. */
  | 'divergent'
  /**
   * The slot index does not match the data it indexes: an index record whose data record is
   * missing, or an index built on upgrade that lacks a record the data calls for (a lost write).
   */
  | 'index-mismatch';

export interface StorageFaultDetails {
  readonly kind: StorageFaultKind;
  /** The engine key concerned, printable (see `describeEngineKey`), when one key is. */
  readonly key?: string;
  /** The engine keys concerned, as a half-open range `[start, end)` of printable keys. */
  readonly keyRange?: { readonly start: string; readonly end: string };
  /** The file the engine named in its error, else the engine's folder, when known. */
  readonly file?: string;
  readonly cause?: unknown;
}

export class StorageFault extends Error {
  readonly code = 'STORAGE_FAULT';
  readonly kind: StorageFaultKind;
  readonly key: string | undefined;
  readonly keyRange: { readonly start: string; readonly end: string } | undefined;
  readonly file: string | undefined;

  constructor(message: string, details: StorageFaultDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'StorageFault';
    this.kind = details.kind;
    this.key = details.key;
    this.keyRange = details.keyRange;
    this.file = details.file;
  }

  /** The fields that the log line, `/readyz` and `/admin/status` show. */
  toJSON(): Record<string, string | null> {
    return {
      kind: this.kind,
      message: this.message,
      key: this.key ?? null,
      keyRangeStart: this.keyRange?.start ?? null,
      keyRangeEnd: this.keyRange?.end ?? null,
      file: this.file ?? null,
    };
  }
}

export function isStorageFault(error: unknown): error is StorageFault {
  return error instanceof StorageFault;
}

/**
 * Whether an engine's failure only says that the engine or snapshot is closing (the replica is
 * stopping): such a failure says nothing about the data, and is not a fault.
 */
function isClosing(error: unknown): boolean {
  return isEngineError(error, 'ENGINE_CLOSED') || isEngineError(error, 'ENGINE_SNAPSHOT_CLOSED');
}

/**
 * The storage fault an engine read failure stands for. Closing and failed assertions (a bug, which
 * must stop the process) pass through unchanged, as does a fault already made.
 */
export function readFaultOf(
  error: unknown,
  where: { readonly key?: Uint8Array; readonly range?: { start?: Uint8Array; end?: Uint8Array } },
  folder: string | undefined,
): unknown {
  if (error instanceof StorageFault || error instanceof AssertionError || isClosing(error)) return error;
  const text = errorText(error);
  const file = fileNamedIn(text) ?? folder;
  return new StorageFault(`the engine failed a read: ${text}`, {
    kind: 'read-failed',
    ...(where.key === undefined ? {} : { key: describeEngineKey(where.key) }),
    ...(where.range === undefined ? {} : { keyRange: describeRange(where.range) }),
    ...(file === undefined ? {} : { file }),
    cause: error,
  });
}

/**
 * The storage fault a failed engine write stands for, or the error itself. Only LevelDB's
 * `Corruption` is a fault: its files are damaged and every later write fails alike. Any other
 * write failure (a full disk) is left to the caller, which stops the process: a restart replays
 * the Raft log once the cause is gone.
 */
export function writeFaultOf(error: unknown, folder: string | undefined): unknown {
  if (error instanceof StorageFault || error instanceof AssertionError || isClosing(error)) return error;
  const text = errorText(error);
  if (!/corrupt/i.test(text)) return error;
  const file = fileNamedIn(text) ?? folder;
  return new StorageFault(`the engine failed a write because its files are damaged: ${text}`, {
    kind: 'write-failed',
    ...(file === undefined ? {} : { file }),
    cause: error,
  });
}

/** The message of an error and of its causes, which is where LevelDB puts what it found. */
function errorText(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== undefined; depth++) {
    parts.push(current instanceof Error ? current.message : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(': ');
}

/** LevelDB names the damaged file in its messages (`... /path/000005.ldb`): the first such path. */
function fileNamedIn(text: string): string | undefined {
  return /(\/[^\s:,]+\.(?:ldb|sst|log))/.exec(text)?.[1];
}

/**
 * An engine key as text for logs and answers: the one-byte prefix as a letter, then the rest as
 * UTF-8 text when it is valid, printable UTF-8, else as hexadecimal. A slot index key (`s`) shows
 * its slot in decimal before the user key: `s:9862:hello`.
 */
export function describeEngineKey(key: Uint8Array): string {
  const bytes = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  if (bytes.length === 0) return '';
  const prefix = bytes[0] as number;
  const printablePrefix =
    prefix >= 0x61 && prefix <= 0x7a ? String.fromCharCode(prefix) : `0x${prefix.toString(16)}`;
  if (prefix === slotIndexPrefixByte && bytes.length >= 3)
    return `${printablePrefix}:${bytes.readUInt16BE(1)}:${printable(bytes.subarray(3))}`;
  return `${printablePrefix}:${printable(bytes.subarray(1))}`;
}

const slotIndexPrefixByte = slotIndexRange.start[0];

function printable(rest: Buffer): string {
  const text = rest.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(rest) && /^[\x20-\x7e\u00a0-\uffff]*$/u.test(text);
  return isText ? text : rest.toString('hex');
}

function describeRange(range: { start?: Uint8Array; end?: Uint8Array }): { start: string; end: string } {
  return {
    start: range.start === undefined ? '' : describeEngineKey(range.start),
    end: range.end === undefined ? '' : describeEngineKey(range.end),
  };
}
