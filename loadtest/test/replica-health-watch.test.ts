import { describe, expect, it } from 'vitest';
import { ReplicaHealthWatch, describeReplicaFailure } from '../src/chaos/replica-health-watch.js';

// A replica that fails inside a node that runs on exits no process: the chaos run must see it in
// the node's status, or a run with a dead replica would pass.
describe('the replica health watch', () => {
  it('records each failed or faulted replica once, and skips a node that does not answer', async () => {
    const statuses = new Map<string, unknown>([
      [
        'http://n1',
        {
          replicas: [
            { groupId: 'g1', replicaId: 'g1-r1', health: 'running' },
            { groupId: 'g2', health: 'failed', message: 'log write failed', code: 'REPLICA_FAILED' },
          ],
        },
      ],
      [
        'http://n2',
        {
          replicas: [
            { groupId: 'g1', replicaId: 'g1-r2', health: 'storage-fault', storageFault: { key: 'k' } },
          ],
        },
      ],
    ]);
    let now = 3;
    const seen: string[] = [];
    const watch = new ReplicaHealthWatch({
      nodes: () => [
        { name: 'n1', url: 'http://n1' },
        { name: 'n2', url: 'http://n2' },
        { name: 'n3', url: 'http://n3' },
      ],
      nowSeconds: () => now,
      onFailure: (failure) => seen.push(describeReplicaFailure(failure)),
      readStatus: async (url) => {
        const status = statuses.get(url);
        if (status === undefined) throw new Error('paused');
        return status;
      },
    });
    await watch.poll();
    now = 4;
    await watch.poll();
    expect(seen.sort()).toEqual([
      'g1-r2 on n2: storage-fault at 3.0 s: {"key":"k"}',
      'the replica of g2 on n1: failed at 3.0 s: REPLICA_FAILED: log write failed',
    ]);
    expect(watch.failures).toHaveLength(2);
  });

  it('records nothing while every replica runs', async () => {
    const watch = new ReplicaHealthWatch({
      nodes: () => [{ name: 'n1', url: 'http://n1' }],
      nowSeconds: () => 0,
      readStatus: async () => ({ replicas: [{ groupId: 'g1', replicaId: 'g1-r1', health: 'running' }] }),
    });
    await watch.poll();
    expect(watch.failures).toEqual([]);
  });
});
