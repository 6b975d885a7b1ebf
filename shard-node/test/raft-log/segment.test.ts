import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nodeFileSystem } from '@impulse/common';
import { SegmentWriter, segmentFileName } from '../../src/raft-log/segment.js';
import { removeDirectory, temporaryDirectory } from './helpers.js';

describe('SegmentWriter', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await temporaryDirectory();
  });

  afterEach(async () => {
    await removeDirectory(directory);
  });

  it('appends small writes (copied at once) and large ones (through the thread pool) in order', async () => {
    const file = join(directory, segmentFileName(1, 1));
    const writer = await SegmentWriter.create(
      {
        sequence: 1,
        firstIndex: 1,
        file,
        sizeBytes: 0,
        maxEntryIndex: 0,
      },
      nodeFileSystem,
    );
    const small = Buffer.alloc(1000, 1);
    const large = Buffer.alloc(200 * 1024, 2);
    const last = Buffer.alloc(10, 3);
    await writer.write(small);
    await writer.write(large);
    await writer.write(last);
    expect(writer.unsynced).toBe(true);
    await writer.datasync();
    expect(writer.unsynced).toBe(false);
    await writer.close();
    expect(writer.info.sizeBytes).toBe(small.length + large.length + last.length);
    expect((await readFile(file)).equals(Buffer.concat([small, large, last]))).toBe(true);
  });
});
