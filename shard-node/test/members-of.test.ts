import { describe, expect, it } from 'vitest';
import { parseShardNodeConfig } from '../src/config.js';
import { membersOf } from '../src/shard-node.js';

const cluster = JSON.stringify({
  epoch: 1,
  groups: [
    {
      id: 'g1',
      replicas: [
        { id: 'g1-r1', raftId: 1, url: 'http://127.0.0.1:7001', peerAddress: '127.0.0.1:9001' },
        { id: 'g1-r2', raftId: 2, url: 'http://127.0.0.1:7002', peerAddress: '127.0.0.1:9002' },
      ],
    },
  ],
});

function configOf(argv: string[]) {
  return parseShardNodeConfig({
    argv: ['--group-id=g1', '--replica-id=g1-r1', `--cluster=${cluster}`, ...argv],
    env: {},
  });
}

describe('membersOf', () => {
  // The member directory is replicated and carried in snapshots: if a replica put its listen port
  // there, a peer that restored a snapshot would dial it directly, past whatever sits between them
  // (the chaos tool's fault proxy), and a partition would become one-way.
  it('keeps the advertised peer address in the member directory when --peer-port differs', () => {
    const { self, members, peerListenPort } = membersOf(configOf(['--peer-port=8101']));
    expect(peerListenPort).toBe(8101);
    expect(self.peerPort).toBe(9001);
    expect(members.map((member) => member.peerPort)).toEqual([9001, 9002]);
  });

  it('listens on the advertised port when --peer-port is 0', () => {
    const { self, peerListenPort } = membersOf(configOf([]));
    expect(peerListenPort).toBe(9001);
    expect(self.peerPort).toBe(9001);
  });
});
