import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '@impulse/common';
import type { Replica } from '../../src/replica/index.js';
import { memberSpec, nullTransport, startReplica, untilLeading } from './harness.js';

// A node hosts replicas of many groups in one process, with one registry: each replica's metrics
// carry its group, and a second replica never clashes with the first (issue 12, item 7).
describe('replica metrics on a shared registry', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(group: string, registry: Registry): Promise<Replica> {
    const directory = await mkdtemp(join(tmpdir(), `impulse-metrics-${group}-`));
    const self = { ...memberSpec(1), replicaId: `${group}-r1` };
    // A group of one sends nothing: its transport is a null one, so that only the replica's own
    // metrics are in the registry (the node's transport registers its metrics once, elsewhere).
    const replica = await startReplica(self, [self], directory, {
      groupId: group,
      registry,
      openTransport: () => Promise.resolve(nullTransport),
    });
    cleanups.push(async () => {
      await replica.stop();
      await rm(directory, { recursive: true, force: true });
    });
    return replica;
  }

  it('labels every Raft metric by group, and drops a stopped replica from the gauges', async () => {
    const registry = new Registry();
    const first = await start('g1', registry);
    const second = await start('g2', registry);
    await untilLeading(first);
    await untilLeading(second);
    await first.write({ operation: 'put', requestId: Buffer.from('a'), key: 'k', value: Buffer.from('v') });
    const text = await registry.metrics();
    for (const group of ['g1', 'g2']) {
      expect(text).toContain(`impulse_raft_is_leader{group="${group}"} 1`);
      expect(text).toMatch(new RegExp(`impulse_raft_term\\{group="${group}"\\} [1-9]`));
    }
    expect(text).toMatch(/impulse_raft_proposals_committed_total\{group="g1"\} [1-9]/);
    await second.stop();
    const after = await registry.metrics();
    expect(after).toContain('impulse_raft_is_leader{group="g1"} 1');
    expect(after).not.toContain('impulse_raft_is_leader{group="g2"}');
  });

  it("reports the fsyncs and bytes of a log of its own (a process of one replica) as the process's log's", async () => {
    const registry = new Registry();
    const replica = await start('g1', registry);
    await untilLeading(replica);
    await replica.write({ operation: 'put', requestId: Buffer.from('a'), key: 'k', value: Buffer.from('v') });
    const text = await registry.metrics();
    // Unlabelled: a replica process's registry adds its group and replica as default labels.
    expect(text).toMatch(/^impulse_raft_log_fsync_duration_seconds_count [1-9]\d*$/m);
    expect(text).toMatch(/^impulse_raft_log_written_bytes_total [1-9]\d*$/m);
    // The flush figures are a node log's: a replica's own log has no group commit to report.
    expect(text).not.toContain('impulse_raft_log_fsync_writes');
  });
});
