/**
 * Recovery at open: replays every segment in order into the metadata state and the live log,
 * truncates a torn tail, and refuses a log damaged anywhere else (the rules are in
 * `segment-scan.ts`; a record whose content contradicts the records before it is corruption too).
 */
import type { FileSystem } from '@impulse/common';

import type { Logger } from '../raft/index.js';
import { isRecordType, RecordType } from './record-codec.js';
import { Replay, type ReplayedState } from './replay.js';
import {
  checkConsecutive,
  checkNewest,
  readNewestOrRefuse,
  scanSegment,
  type SegmentFormat,
} from './segment-scan.js';
import { listSegments, syncDirectory, type SegmentInfo } from './segment.js';

export interface RecoveredLog extends ReplayedState {
  /** The segments that remain, in order; the last one may be reopened for appending. */
  readonly segments: SegmentInfo[];
}

/** Replays the log in `directory`; returns undefined when it holds no segment (a fresh log). */
export async function recover(
  directory: string,
  recordBytesMax: number,
  logger: Logger,
  fs: FileSystem,
): Promise<RecoveredLog | undefined> {
  const listed = await listSegments(directory, fs);
  const newest = await readNewestOrRefuse(directory, fs);
  if (listed.length === 0) {
    checkNewest(directory, newest, undefined);
    return undefined;
  }
  checkConsecutive(listed);
  const format: SegmentFormat = {
    recordBytesMax,
    isType: isRecordType,
    checkpointType: RecordType.checkpoint,
  };
  const replay = new Replay();
  const segments: SegmentInfo[] = [];
  for (let i = 0; i < listed.length; i++) {
    const { sequence, firstIndex, file } = listed[i]!;
    const segment: SegmentInfo = { sequence, firstIndex, file, sizeBytes: 0, maxEntryIndex: 0 };
    segment.sizeBytes = await scanSegment(
      file,
      i === listed.length - 1,
      format,
      logger,
      fs,
      (type, payload) => replay.apply(type as RecordType, payload, segment),
    );
    segments.push(segment);
  }

  // A last segment left empty (it was created, then its checkpoint was torn) holds nothing; it
  // goes so that every remaining segment starts with a checkpoint.
  const last = segments[segments.length - 1]!;
  if (last.sizeBytes === 0) {
    await fs.unlink(last.file);
    await syncDirectory(directory, fs);
    segments.pop();
  }
  checkNewest(directory, newest, segments.at(-1)?.sequence);
  const state = replay.finish(segments[0]?.file ?? directory, logger);
  return state === undefined ? undefined : { ...state, segments };
}
