/**
 * The node log's segment files: `<sequence>.log`, 16 hex digits, so that names sort in log order
 * (a replica log's segments are `<sequence>-<firstIndex>.log`; a node log has no single index).
 * `NEWEST` (see `segment.ts`) names the newest segment made durable, as in a replica log.
 */
import type { FileSystem } from '@impulse/common';
import path from 'node:path';

import type { GroupFootprint } from './group-footprint.js';
import type { SegmentFile } from './segment.js';

const NODE_SEGMENT_NAME = /^([0-9a-f]{16})\.log$/;

/** What the node log knows of each segment file. */
export interface NodeSegmentInfo extends SegmentFile {
  /** The bytes of each group's records in this segment, to keep `GroupFootprint.bytes` current. */
  readonly groupBytes: Map<GroupFootprint, number>;
}

export function nodeSegmentFileName(sequence: number): string {
  return `${sequence.toString(16).padStart(16, '0')}.log`;
}

export function newNodeSegment(directory: string, sequence: number): NodeSegmentInfo {
  return {
    sequence,
    file: path.join(directory, nodeSegmentFileName(sequence)),
    sizeBytes: 0,
    groupBytes: new Map(),
  };
}

/** The node log's segments in `directory`, in sequence order. Other files are ignored. */
export async function listNodeSegments(
  directory: string,
  fs: FileSystem,
): Promise<{ sequence: number; file: string }[]> {
  const segments = [];
  for (const name of await fs.readdir(directory)) {
    const match = NODE_SEGMENT_NAME.exec(name);
    if (match === null) {
      continue;
    }
    segments.push({ sequence: Number.parseInt(match[1]!, 16), file: path.join(directory, name) });
  }
  segments.sort((a, b) => a.sequence - b.sequence);
  return segments;
}

/** Notes `bytes` of `footprint`'s records written to `segment`. */
export function addGroupBytes(segment: NodeSegmentInfo, footprint: GroupFootprint, bytes: number): void {
  segment.groupBytes.set(footprint, (segment.groupBytes.get(footprint) ?? 0) + bytes);
  footprint.bytes += bytes;
}
