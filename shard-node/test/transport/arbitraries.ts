/**
 * fast-check arbitraries and small builders for Raft messages, shared by the transport tests.
 */
import fc from 'fast-check';

import type { ConfState, Entry, Message, NodeId, Snapshot } from '../../src/raft/index.js';
import { EMPTY_BYTES } from '../../src/raft/index.js';
import { networkMessageTypes, type NetworkMessageType } from '../../src/transport/index.js';

/** Small numbers most of the time (the common case), and the extremes of the safe range. */
export const safeNatArbitrary: fc.Arbitrary<number> = fc.oneof(
  fc.nat({ max: 300 }),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(0, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER),
);

export const nodeIdArbitrary: fc.Arbitrary<NodeId> = fc.oneof(
  fc.integer({ min: 1, max: 7 }),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
);

const bytesArbitrary = fc.oneof(fc.constant(EMPTY_BYTES), fc.uint8Array({ minLength: 1, maxLength: 300 }));

export const entryArbitrary: fc.Arbitrary<Entry> = fc.record({
  term: safeNatArbitrary,
  index: safeNatArbitrary,
  type: fc.constantFrom('normal' as const, 'confChange' as const, 'confChangeV2' as const),
  data: bytesArbitrary,
});

const idsArbitrary = fc.array(nodeIdArbitrary, { maxLength: 6 });

export const confStateArbitrary: fc.Arbitrary<ConfState> = fc.record({
  voters: idsArbitrary,
  learners: idsArbitrary,
  votersOutgoing: idsArbitrary,
  learnersNext: idsArbitrary,
  autoLeave: fc.boolean(),
});

export const snapshotArbitrary: fc.Arbitrary<Snapshot> = fc.record({
  metadata: fc.record({ index: safeNatArbitrary, term: safeNatArbitrary, confState: confStateArbitrary }),
  data: fc.oneof(bytesArbitrary, fc.uint8Array({ minLength: 300, maxLength: 1000 })),
});

/** Any message that may cross the network, with or without a snapshot. */
export function messageArbitrary(
  type: fc.Arbitrary<NetworkMessageType> = fc.constantFrom(...networkMessageTypes),
): fc.Arbitrary<Message> {
  return fc
    .record({
      type,
      from: nodeIdArbitrary,
      to: nodeIdArbitrary,
      term: safeNatArbitrary,
      logTerm: safeNatArbitrary,
      index: safeNatArbitrary,
      entries: fc.array(entryArbitrary, { maxLength: 6 }),
      commit: safeNatArbitrary,
      reject: fc.boolean(),
      rejectHint: safeNatArbitrary,
      context: bytesArbitrary,
      snapshot: fc.option(snapshotArbitrary, { nil: undefined }),
    })
    .map(({ snapshot, ...rest }) => (snapshot === undefined ? rest : { ...rest, snapshot }));
}

/** A message with every field zero but those given. */
export function makeMessage(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
    ...fields,
  };
}

/** A MsgApp carrying one entry whose data says `sequence`, to check order and integrity. */
export function numberedMessage(from: NodeId, to: NodeId, sequence: number, payloadBytes = 16): Message {
  const data = new Uint8Array(payloadBytes);
  new DataView(data.buffer).setUint32(0, sequence);
  return makeMessage({
    type: 'MsgApp',
    from,
    to,
    term: 3,
    index: sequence,
    entries: [{ term: 3, index: sequence + 1, type: 'normal', data }],
  });
}

export function sequenceOf(message: Message): number {
  const data = message.entries[0]!.data;
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
}
