/**
 * Group ids on the wire. The node transport tags every message and snapshot stream with its
 * group, so a group id is read from untrusted bytes once per run of messages: it is bounded and
 * kept to the characters the cluster configuration allows for group ids (`cluster-config.ts` in
 * common: a letter or digit, then letters, digits, `_`, `.` and `-`), so that what reaches a map
 * lookup, a log line or a metric label is always a plausible id.
 */
import type { BufferReader } from './buffer-reader.js';
import { malformed } from './buffer-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import { assert } from './errors.js';

/** The longest group id on the wire, in bytes (the cluster configuration allows 63 characters). */
export const groupIdBytesMax = 64;

const groupIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function isWireGroupId(text: string): boolean {
  return text.length >= 1 && text.length <= groupIdBytesMax && groupIdPattern.test(text);
}

/** Writes a group id, which the caller guarantees is valid (a programmer error otherwise). */
export function writeGroupId(writer: BufferWriter, groupId: string): void {
  assert(isWireGroupId(groupId), `group id ${JSON.stringify(groupId)} is a valid wire group id`);
  writer.writeString(groupId);
}

/** Reads a group id from untrusted bytes; throws `PeerFrameMalformedError` unless it is valid. */
export function readGroupId(reader: BufferReader): string {
  const groupId = reader.readString(groupIdBytesMax, 'group id');
  if (!isWireGroupId(groupId))
    throw malformed(`group id ${JSON.stringify(groupId.slice(0, 80))} is not valid`);
  return groupId;
}
