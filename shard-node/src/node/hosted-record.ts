/**
 * What a node was told to host at run time, kept in its data directory (`HOSTED`, JSON), so that a
 * restart hosts the same replicas: those added by `POST /admin/replicas` (a replica that joined
 * its group here, restarted as a joiner: one killed before its first snapshot arrived must not
 * found a group of its own) and the groups whose replica `DELETE /admin/replicas/{group}` removed
 * (their data is gone; the cluster configuration may still place them here, and starting them
 * again would refuse an empty directory, or worse). The cluster configuration names the rest.
 *
 * Replaced atomically and durably (a temporary file, fsynced, renamed, the directory fsynced), and
 * written before the change it records takes effect: after a crash, the record names at least
 * what the node had started to host.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StartupError, replaceFileDurably } from '@impulse/common';
import type { MemberSpec } from '../replica/index.js';

export const hostedFileName = 'HOSTED';
const hostedFormat = 1;

/** A replica added at run time: enough to start it again. */
export interface AddedReplica {
  readonly groupId: string;
  readonly self: MemberSpec;
  readonly members: readonly MemberSpec[];
}

export interface HostedRecord {
  readonly added: readonly AddedReplica[];
  /** Groups whose replica was removed here at run time. */
  readonly removed: readonly string[];
}

export const emptyHostedRecord: HostedRecord = { added: [], removed: [] };

function isMember(value: unknown): value is MemberSpec {
  const member = value as Record<string, unknown> | null;
  return (
    typeof member === 'object' &&
    member !== null &&
    typeof member['replicaId'] === 'string' &&
    typeof member['raftId'] === 'number' &&
    typeof member['url'] === 'string' &&
    typeof member['peerHost'] === 'string' &&
    typeof member['peerPort'] === 'number'
  );
}

/** Reads `HOSTED` from a node's data directory; the empty record when there is none. */
export async function readHostedRecord(directory: string): Promise<HostedRecord> {
  const path = join(directory, hostedFileName);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyHostedRecord;
    throw error;
  }
  let record: Record<string, unknown> | undefined;
  try {
    record = JSON.parse(text) as Record<string, unknown>;
  } catch {
    record = undefined;
  }
  const added = record?.['added'];
  const removed = record?.['removed'];
  if (
    record?.['format'] !== hostedFormat ||
    !Array.isArray(added) ||
    !Array.isArray(removed) ||
    !removed.every((groupId) => typeof groupId === 'string') ||
    !added.every(
      (replica: Record<string, unknown>) =>
        typeof replica['groupId'] === 'string' &&
        isMember(replica['self']) &&
        Array.isArray(replica['members']) &&
        (replica['members'] as unknown[]).every(isMember),
    )
  ) {
    throw new StartupError(
      'DATA_DIRECTORY_DAMAGED',
      `${path} is not the node's record of the replicas it hosts (expected {"format": ${hostedFormat}, "added": [...], "removed": [...]}); restore it from a backup`,
    );
  }
  return { added: added as AddedReplica[], removed: removed as string[] };
}

export async function writeHostedRecord(directory: string, record: HostedRecord): Promise<void> {
  const text = JSON.stringify(
    { format: hostedFormat, added: record.added, removed: [...record.removed].sort() },
    null,
    2,
  );
  await replaceFileDurably(join(directory, hostedFileName), `${text}\n`);
}
