/**
 * Group ids in the node log: which strings are ids, and their encoding in front of every record of
 * a group (a u16 byte length, then the id's UTF-8 bytes).
 */
import { ByteReader, DecodeError, type ByteWriter } from './byte-cursor.js';
import { assert } from './errors.js';
import type { RecordTag } from './record-batch.js';

/**
 * The ids a cluster configuration accepts for its groups (`common/src/cluster-config.ts`): ASCII,
 * so that an id's UTF-8 bytes are its characters, and short, so that the tag in front of every
 * record stays small.
 */
const GROUP_ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** The longest id, in bytes (and characters). */
export const GROUP_ID_BYTES_MAX = 63;

/** The bytes of the id's length field. */
const GROUP_ID_LENGTH_BYTES = 2;

export function isGroupId(value: string): boolean {
  return GROUP_ID_PATTERN.test(value);
}

/** Asserts that the host passed a valid id: a malformed id is a programmer error of the host. */
export function assertGroupId(value: string): void {
  assert(isGroupId(value), `group id ${JSON.stringify(value)} does not match ${GROUP_ID_PATTERN}`);
}

/** The bytes of an id's encoding. */
export function groupIdBytes(groupId: string): number {
  return GROUP_ID_LENGTH_BYTES + Buffer.byteLength(groupId, 'utf8');
}

export function writeGroupId(writer: ByteWriter, encoded: Buffer): void {
  writer.u16(encoded.length);
  writer.bytes(encoded);
}

/** Reads an id, refusing one that is not an id (a damaged record whose checksums still matched). */
export function readGroupId(reader: ByteReader): string {
  const length = reader.u16();
  if (length === 0 || length > GROUP_ID_BYTES_MAX) {
    throw new DecodeError(`group id of ${length} bytes`);
  }
  const groupId = reader.bytesView(length).toString('utf8');
  if (!isGroupId(groupId)) {
    throw new DecodeError(`malformed group id ${JSON.stringify(groupId)}`);
  }
  return groupId;
}

/**
 * The tag of a group's records: its id in front of each payload, and the type shift that makes
 * them the node log's group records (`node-record-codec.ts`).
 */
export function groupRecordTag(groupId: string, typeShift: number): RecordTag {
  assertGroupId(groupId);
  const encoded = Buffer.from(groupId, 'utf8');
  return {
    typeShift,
    bytes: GROUP_ID_LENGTH_BYTES + encoded.length,
    write: (writer) => writeGroupId(writer, encoded),
  };
}

/** Splits a group record's payload into the group's id and the replica record's payload. */
export function splitGroupPayload(payload: Buffer): { groupId: string; inner: Buffer } {
  const reader = new ByteReader(payload);
  const groupId = readGroupId(reader);
  return { groupId, inner: reader.rest() };
}
