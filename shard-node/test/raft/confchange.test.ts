import { describe, expect, it } from 'vitest';
import { decodeConfChange, encodeConfChange, RaftError } from '../../src/raft/index.js';
import { Changer, restoreConfiguration } from '../../src/raft/confchange.js';
import type { ConfChangeSingle, ConfState } from '../../src/raft/types.js';

const options = { lastIndex: 10, maxInflightMessages: 4, maxInflightBytes: 0 };
const cs = (voters: number[], extra: Partial<ConfState> = {}): ConfState => ({
  voters,
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
  ...extra,
});
const changer = (state: ConfState): Changer =>
  new Changer({ ...restoreConfiguration(state, options), ...options });
const v = (nodeId: number): ConfChangeSingle => ({ type: 'addNode', nodeId });
const l = (nodeId: number): ConfChangeSingle => ({ type: 'addLearnerNode', nodeId });
const r = (nodeId: number): ConfChangeSingle => ({ type: 'removeNode', nodeId });

describe('Changer', () => {
  it('applies simple changes of at most one voter', () => {
    const result = changer(cs([1, 2, 3])).simple([v(4)]);
    expect(result.config.toConfState()).toEqual(cs([1, 2, 3, 4]));
    // A new member starts probing at the leader's last index and counts as active.
    expect(result.progress.get(4)).toMatchObject({ next: 10, match: 0, recentActive: true });
    expect(() => changer(cs([1, 2, 3])).simple([v(4), r(1)])).toThrow(/more than one voter/);
    // Adding learners alongside one voter change is fine: learners are not voters.
    expect(
      changer(cs([1, 2, 3]))
        .simple([v(4), l(5), l(6)])
        .config.toString(),
    ).toBe('voters=(1 2 3 4) learners=(5 6)');
  });

  it('refuses to remove every voter', () => {
    expect(() => changer(cs([1])).simple([r(1)])).toThrow(/removed all voters/);
  });

  it('enters and leaves a joint configuration', () => {
    const joint = changer(cs([1, 2, 3])).enterJoint(true, [v(4), r(3)]);
    expect(joint.config.toConfState()).toEqual(cs([1, 2, 4], { votersOutgoing: [1, 2, 3], autoLeave: true }));
    // Node 3 keeps its progress while it still votes in the outgoing majority.
    expect(joint.progress.has(3)).toBe(true);
    const left = new Changer({ ...joint, ...options }).leaveJoint();
    expect(left.config.toConfState()).toEqual(cs([1, 2, 4]));
    expect(left.progress.has(3)).toBe(false);
  });

  it('demotes an outgoing voter to learner only when leaving joint', () => {
    const joint = changer(cs([1, 2, 3])).enterJoint(false, [l(3)]);
    expect(joint.config.toConfState()).toEqual(cs([1, 2], { votersOutgoing: [1, 2, 3], learnersNext: [3] }));
    const left = new Changer({ ...joint, ...options }).leaveJoint();
    expect(left.config.toConfState()).toEqual(cs([1, 2], { learners: [3] }));
    expect(left.progress.get(3)!.isLearner).toBe(true);
  });

  it('refuses nested joint changes and leaving a non-joint config', () => {
    const joint = changer(cs([1, 2, 3])).enterJoint(false, [v(4)]);
    expect(() => new Changer({ ...joint, ...options }).enterJoint(false, [v(5)])).toThrow(/already joint/);
    expect(() => new Changer({ ...joint, ...options }).simple([v(5)])).toThrow(/joint/);
    expect(() => changer(cs([1, 2, 3])).leaveJoint()).toThrow(/non-joint/);
    try {
      changer(cs([1])).leaveJoint();
    } catch (error) {
      expect(error).toBeInstanceOf(RaftError);
      expect((error as RaftError).code).toBe('RAFT_CONF_CHANGE_INVALID');
    }
  });

  it('restores joint configurations from a ConfState', () => {
    const state = cs([1, 2, 4], {
      votersOutgoing: [1, 2, 3],
      learners: [5],
      learnersNext: [3],
      autoLeave: true,
    });
    expect(restoreConfiguration(state, options).config.toConfState()).toEqual(state);
  });
});

describe('conf change codec', () => {
  it('round-trips V1 and V2 changes, and reads empty V2 data as leave-joint', () => {
    const v1 = { type: 'addLearnerNode' as const, nodeId: 7, context: new Uint8Array([1, 2]) };
    const encoded = encodeConfChange(v1);
    expect(encoded.type).toBe('confChange');
    expect(decodeConfChange(encoded.type, encoded.data)).toEqual(v1);
    const v2 = { transition: 'explicit' as const, changes: [v(4), r(1)] };
    const encodedV2 = encodeConfChange(v2);
    expect(decodeConfChange(encodedV2.type, encodedV2.data)).toEqual(v2);
    expect(decodeConfChange('confChangeV2', new Uint8Array())).toEqual({ transition: 'auto', changes: [] });
  });
});
