import { describe, expect, it } from 'vitest';
import type { Entry, Message } from '../../src/raft/index.js';
import { refusalOf, type PeerMessageContext } from '../../src/replica/peer-message-check.js';
import type { InboundSender } from '../../src/replica/replica-transport.js';
import { makeMessage } from '../transport/arbitraries.js';

const context: PeerMessageContext = {
  selfId: 1,
  isMember: (id) => id === 1 || id === 2 || id === 3,
  // 4 was removed; 7 was added while this replica was cut off (it has not heard of it).
  isRemoved: (id) => id === 4,
  lastIndex: () => 100,
};
/** A sender whose node address the transport proved (a node transport's hello). */
const proven: InboundSender = { address: { host: '10.0.0.7', port: 7100 } };

const entry = (index: number, term: number): Entry => ({
  index,
  term,
  type: 'normal',
  data: new Uint8Array(0),
});
const message = (fields: Partial<Message> & Pick<Message, 'type'>): Message =>
  makeMessage({ from: 2, to: 1, term: 5, ...fields });

describe('the check of peer messages before the core', () => {
  it('takes well-formed messages from members', () => {
    for (const accepted of [
      message({ type: 'MsgApp', index: 10, logTerm: 4, entries: [entry(11, 4), entry(12, 5)], commit: 500 }),
      message({ type: 'MsgHeartbeat', commit: 100 }),
      message({ type: 'MsgAppResp', index: 100 }),
      message({ type: 'MsgAppResp', index: 50, reject: true, rejectHint: 40 }),
      message({ type: 'MsgVote', index: 1_000, logTerm: 5 }),
      message({ type: 'MsgHeartbeatResp' }),
      message({ type: 'MsgTimeoutNow' }),
    ])
      expect(refusalOf(accepted, context), accepted.type).toBeUndefined();
  });

  it('drops what the core would take as its own, or never takes from the network', () => {
    expect(refusalOf(message({ type: 'MsgApp', from: 9 }), context)).toBe('unknownSender');
    expect(refusalOf(message({ type: 'MsgApp', from: 1 }), context)).toBe('unknownSender');
    for (const type of ['MsgProp', 'MsgReadIndex', 'MsgTransferLeader'] as const)
      expect(refusalOf(message({ type }), context), type).toBe('localOnly');
    expect(refusalOf(message({ type: 'MsgHeartbeat', term: 0 }), context)).toBe('zeroTerm');
  });

  it('drops entries that contradict their message, and commits or indexes past the log', () => {
    const app = (entries: Entry[], logTerm = 4): Message =>
      message({ type: 'MsgApp', index: 10, logTerm, entries });
    expect(refusalOf(app([entry(12, 4)]), context)).toBe('inconsistentEntries');
    expect(refusalOf(app([entry(11, 5), entry(12, 4)]), context)).toBe('inconsistentEntries');
    expect(refusalOf(app([entry(11, 6)]), context)).toBe('inconsistentEntries');
    expect(refusalOf(app([entry(11, 3)]), context)).toBe('inconsistentEntries');
    expect(refusalOf(app([], 6), context)).toBe('inconsistentEntries');
    expect(refusalOf(message({ type: 'MsgHeartbeat', commit: 101 }), context)).toBe('beyondLog');
    expect(refusalOf(message({ type: 'MsgHeartbeat', commit: 2 ** 40 }), context)).toBe('beyondLog');
    expect(refusalOf(message({ type: 'MsgAppResp', index: 101 }), context)).toBe('beyondLog');
    expect(refusalOf(message({ type: 'MsgAppResp', index: 50, reject: true, rejectHint: 51 }), context)).toBe(
      'beyondLog',
    );
    expect(refusalOf(message({ type: 'MsgPreVote', logTerm: 6 }), context)).toBe('inconsistentEntries');
  });

  it("takes a leader's messages and a candidate's vote requests from an unknown sender whose address the transport proved", () => {
    const confState = {
      voters: [2, 7],
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    for (const accepted of [
      message({ type: 'MsgApp', from: 7, index: 10, logTerm: 4, entries: [entry(11, 5)], commit: 11 }),
      message({ type: 'MsgHeartbeat', from: 7, commit: 100 }),
      message({
        type: 'MsgSnap',
        from: 7,
        snapshot: { metadata: { index: 500, term: 5, confState }, data: new Uint8Array(0) },
      }),
      message({ type: 'MsgVote', from: 7, index: 120, logTerm: 5 }),
      message({ type: 'MsgPreVote', from: 7, index: 120, logTerm: 5 }),
    ]) {
      expect(refusalOf(accepted, context, proven), accepted.type).toBeUndefined();
      // Without a proven address (the per-replica transport) it cannot be answered: refused.
      expect(refusalOf(accepted, context), accepted.type).toBe('unknownSender');
    }
    // The rest of the check still applies to it.
    expect(refusalOf(message({ type: 'MsgHeartbeat', from: 7, commit: 101 }), context, proven)).toBe(
      'beyondLog',
    );
  });

  it("refuses an unknown sender's answers and other messages, and a removed sender's every message", () => {
    for (const type of [
      'MsgAppResp',
      'MsgVoteResp',
      'MsgPreVoteResp',
      'MsgHeartbeatResp',
      'MsgTimeoutNow',
      'MsgRebuildRequest',
    ] as const)
      expect(refusalOf(message({ type, from: 7 }), context, proven), type).toBe('unknownSender');
    for (const type of ['MsgApp', 'MsgHeartbeat', 'MsgVote', 'MsgPreVote', 'MsgAppResp'] as const) {
      expect(refusalOf(message({ type, from: 4 }), context, proven), type).toBe('removedSender');
      expect(refusalOf(message({ type, from: 4 }), context), type).toBe('removedSender');
    }
    // This replica's own id, whatever the transport says.
    expect(refusalOf(message({ type: 'MsgApp', from: 1 }), context, proven)).toBe('unknownSender');
  });

  it('drops terms and indexes that no real group reaches', () => {
    expect(refusalOf(message({ type: 'MsgHeartbeat', term: 2 ** 48 + 1 }), context)).toBe('implausible');
    expect(refusalOf(message({ type: 'MsgVote', term: Number.MAX_SAFE_INTEGER, logTerm: 1 }), context)).toBe(
      'implausible',
    );
    expect(refusalOf(message({ type: 'MsgVote', index: 2 ** 52 + 1 }), context)).toBe('implausible');
    expect(refusalOf(message({ type: 'MsgHeartbeat', term: 2 ** 48 }), context)).toBeUndefined();
  });

  it('drops a snapshot message without a usable snapshot', () => {
    const confState = {
      voters: [1, 2, 3],
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    const snap = (index: number, term: number, voters = confState.voters): Message =>
      message({
        type: 'MsgSnap',
        snapshot: { metadata: { index, term, confState: { ...confState, voters } }, data: new Uint8Array(0) },
      });
    expect(refusalOf(snap(50, 5), context)).toBeUndefined();
    expect(refusalOf(message({ type: 'MsgSnap' }), context)).toBe('badSnapshot');
    expect(refusalOf(snap(0, 5), context)).toBe('badSnapshot');
    expect(refusalOf(snap(50, 6), context)).toBe('badSnapshot');
    expect(refusalOf(snap(50, 5, []), context)).toBe('badSnapshot');
  });
});
