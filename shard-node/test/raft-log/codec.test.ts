import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import type { Entry, EntryType } from '../../src/raft/index.js';
import { ByteWriter } from '../../src/raft-log/byte-cursor.js';
import { encodedBatchBytes, readBatch, writeBatch } from '../../src/raft-log/entry-codec.js';
import {
  findValidRecord,
  readRecordAt,
  RECORD_HEADER_BYTES,
  RecordType,
} from '../../src/raft-log/record-codec.js';
import { RecordBatch } from '../../src/raft-log/record-batch.js';
import { readCheckpoint, type Checkpoint } from '../../src/raft-log/state-codec.js';

const RECORD_BYTES_MAX = 1024 * 1024;

const batchArbitrary: fc.Arbitrary<Entry[]> = fc
  .record({
    firstIndex: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER - 100 }),
    items: fc.array(
      fc.record({
        termStep: fc.nat({ max: 3 }),
        type: fc.constantFrom<EntryType>('normal', 'confChange', 'confChangeV2'),
        data: fc.uint8Array({ maxLength: 64 }),
      }),
      { minLength: 1, maxLength: 20 },
    ),
    firstTerm: fc.integer({ min: 0, max: 2 ** 40 }),
  })
  .map(({ firstIndex, items, firstTerm }) => {
    let term = firstTerm;
    return items.map((item, i) => {
      term += item.termStep;
      return { index: firstIndex + i, term, type: item.type, data: item.data };
    });
  });

describe('entry codec', () => {
  it('round-trips any batch, with indexes up to 2^53', () => {
    fc.assert(
      fc.property(batchArbitrary, (batch) => {
        const buffer = Buffer.alloc(encodedBatchBytes(batch, 0, batch.length));
        const writer = new ByteWriter(buffer, 0);
        writeBatch(writer, batch, 0, batch.length);
        expect(writer.offset).toBe(buffer.length);
        expect(readBatch(buffer)).toEqual(batch);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a truncated payload instead of reading past it', () => {
    const batch: Entry[] = [{ index: 5, term: 2, type: 'normal', data: new Uint8Array([1, 2, 3]) }];
    const buffer = Buffer.alloc(encodedBatchBytes(batch, 0, 1));
    writeBatch(new ByteWriter(buffer, 0), batch, 0, 1);
    for (let length = 0; length < buffer.length; length++) {
      expect(() => readBatch(buffer.subarray(0, length))).toThrow();
    }
  });
});

describe('record codec', () => {
  const checkpoint: Checkpoint = {
    snapshot: {
      index: 7,
      term: 3,
      confState: { voters: [1, 2], learners: [3], votersOutgoing: [], learnersNext: [], autoLeave: true },
    },
    hardState: { term: 4, vote: 2, commit: 9 },
    baseIndex: 5,
    baseTerm: 2,
    lastIndex: 12,
  };

  function encoded(): Buffer {
    const batch = new RecordBatch(RECORD_BYTES_MAX);
    batch.addCheckpoint(checkpoint);
    batch.addEntries([{ index: 13, term: 4, type: 'normal', data: new Uint8Array(100).fill(7) }], 0);
    batch.addHardState({ term: 4, vote: 2, commit: 13 });
    return batch.encode();
  }

  it('frames records that read back with their type and payload', () => {
    const buffer = encoded();
    const first = readRecordAt(buffer, 0, RECORD_BYTES_MAX);
    expect(first.kind).toBe('record');
    if (first.kind !== 'record') return;
    expect(first.type).toBe(RecordType.checkpoint);
    expect(readCheckpoint(first.payload)).toEqual(checkpoint);
    const second = readRecordAt(buffer, first.nextOffset, RECORD_BYTES_MAX);
    expect(second).toMatchObject({ kind: 'record', type: RecordType.entries });
    if (second.kind !== 'record') return;
    const third = readRecordAt(buffer, second.nextOffset, RECORD_BYTES_MAX);
    expect(third).toMatchObject({ kind: 'record', type: RecordType.hardState, nextOffset: buffer.length });
  });

  it('detects every flipped byte, and finds the next valid record after the damage', () => {
    const buffer = encoded();
    const first = readRecordAt(buffer, 0, RECORD_BYTES_MAX);
    if (first.kind !== 'record') throw new Error('unreadable record');
    for (let offset = 0; offset < first.nextOffset; offset++) {
      const damaged = Buffer.from(buffer);
      damaged[offset] = damaged[offset]! ^ 0x01;
      expect(readRecordAt(damaged, 0, RECORD_BYTES_MAX).kind).not.toBe('record');
      expect(findValidRecord(damaged, 1, RECORD_BYTES_MAX)).toBe(first.nextOffset);
    }
  });

  it('reports a cut record as incomplete', () => {
    const buffer = encoded();
    expect(readRecordAt(buffer.subarray(0, RECORD_HEADER_BYTES - 1), 0, RECORD_BYTES_MAX)).toMatchObject({
      kind: 'incomplete',
      headerValid: false,
    });
    expect(readRecordAt(buffer.subarray(0, RECORD_HEADER_BYTES + 3), 0, RECORD_BYTES_MAX)).toMatchObject({
      kind: 'incomplete',
      headerValid: true,
    });
  });

  it('asserts that a record fits under recordBytesMax', () => {
    const batch = new RecordBatch(2048);
    expect(() =>
      batch.addCheckpoint({
        ...checkpoint,
        snapshot: {
          ...checkpoint.snapshot,
          confState: {
            ...checkpoint.snapshot.confState,
            voters: Array.from({ length: 300 }, (_, i) => i + 1),
          },
        },
      }),
    ).toThrow(/over recordBytesMax/);
  });
});
