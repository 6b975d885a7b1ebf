import { describe, expect, it } from 'vitest';
import { editDistance, nearestName } from '@impulse/common';

describe('editDistance', () => {
  it.each([
    ['', '', 0],
    ['abc', '', 3],
    ['', 'abc', 3],
    ['kitten', 'sitting', 3],
    ['flaw', 'lawn', 2],
    ['virtualNodesPerGrop', 'virtualNodesPerGroup', 1],
    ['peerAdress', 'peerAddress', 1],
  ])('%j to %j is %i', (a, b, distance) => {
    expect(editDistance(a, b)).toBe(distance);
    expect(editDistance(b, a)).toBe(distance);
  });
});

describe('nearestName', () => {
  const replicaFields = ['id', 'url', 'raftId', 'peerAddress'];

  it('finds the known name an operator meant, a difference of case first', () => {
    expect(nearestName('raftID', replicaFields)).toBe('raftId');
    expect(nearestName('peerAdress', replicaFields)).toBe('peerAddress');
    expect(nearestName('URL', replicaFields)).toBe('url');
    expect(nearestName('virtualNodesPerGrop', ['epoch', 'virtualNodesPerGroup', 'groups'])).toBe(
      'virtualNodesPerGroup',
    );
  });

  it('answers nothing without known names, or for a name far too long to be a typo', () => {
    expect(nearestName('x', [])).toBeUndefined();
    expect(nearestName('x'.repeat(10_000), replicaFields)).toBeUndefined();
  });
});
