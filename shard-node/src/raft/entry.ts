/**
 * Helpers for log entries: sizes (which drive every byte limit) and size-limited prefixes.
 */
import type { Entry } from './types.js';

/** The empty byte string, shared so that empty fields cost no allocation. */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/**
 * A fixed per-entry overhead (term and index) counted by the message and Ready byte limits, so
 * that empty entries still cost something and a limit always bounds the entry count.
 */
export const ENTRY_HEADER_BYTES = 16;

/** The bytes an entry counts for against message and Ready limits. */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_HEADER_BYTES;
}

/**
 * The payload bytes of entries, as counted by the uncommitted-log and inflight limits. Like etcd,
 * empty entries count zero, so a new leader's no-op is never refused.
 */
export function payloadBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const entry of entries) {
    total += entry.data.byteLength;
  }
  return total;
}

/**
 * Returns the longest prefix of `entries` whose size is at most `maxBytes`, but always at least
 * one entry so that progress is possible whatever the limit. Returns `entries` itself (no copy)
 * when everything fits.
 */
export function limitSize<T extends Entry>(entries: readonly T[], maxBytes: number): readonly T[] {
  if (entries.length <= 1) {
    return entries;
  }
  let size = entrySizeBytes(entries[0]!);
  let limit = 1;
  for (; limit < entries.length; limit++) {
    size += entrySizeBytes(entries[limit]!);
    if (size > maxBytes) {
      break;
    }
  }
  return limit === entries.length ? entries : entries.slice(0, limit);
}
