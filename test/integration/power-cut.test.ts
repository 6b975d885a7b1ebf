import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster, LocalNodeCluster, mountpointsUnder } from '@impulse/local-cluster';
import { temporaryDirectory } from '../support/temporary-directory.js';
import { findLostWrites, startWriteLoad } from '../support/write-load.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `LocalCluster` with `powerLoss` (what the chaos tool's power nemesis uses): every replica's data
 * directory is a mount of the power-cut file system (deploy/powerfs), and `powerCut` kills replicas
 * and then drops every write they had not fsynced. power-loss.test.ts checks the store itself on
 * mounts of its own; this checks the launcher's side: the mounts, the cut, its refusals, the
 * unmount.
 */
describe('LocalCluster power cuts', () => {
  let cluster: LocalCluster | undefined;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;

  beforeAll(async () => {
    directory = await temporaryDirectory('power-cut');
    cluster = await LocalCluster.start({
      groups: 1,
      replicasPerGroup: 3,
      dataDirectory: directory.path,
      powerLoss: true,
    });
    await cluster.leaderOf('g1');
  });

  afterAll(async () => {
    await cluster?.stop();
    await directory?.remove();
  });

  it('keeps every acknowledged write when every replica loses power during writes', async () => {
    const started = cluster as LocalCluster;
    const replicaIds = started.group('g1').map((replica) => replica.replicaId);
    const load = startWriteLoad(started.gatewayUrl, { concurrency: 8, prefix: 'cut', timeoutMs: 20_000 });
    await sleep(3_000);
    const cuts = await started.powerCut(replicaIds);
    expect(cuts).toHaveLength(3);
    for (const replicaId of replicaIds) expect(started.isRunning(replicaId)).toBe(false);
    await sleep(500);
    await Promise.all(replicaIds.map((replicaId) => started.restart(replicaId)));
    await started.leaderOf('g1', 30_000);
    // Writes go on after the restart, so that every client's last write is settled either way.
    await sleep(1_000);
    const { acknowledged } = await load.stop();
    expect(acknowledged.size).toBeGreaterThan(100);
    expect(await findLostWrites(started.gatewayUrl, acknowledged), JSON.stringify(cuts)).toEqual([]);
    // The replicas had written something that was not yet durable (LevelDB's unsynced batches at
    // least), and the cut dropped it: a cut that drops nothing tests nothing.
    expect(cuts.reduce((sum, cut) => sum + cut.bytesDropped + cut.operationsUndone, 0)).toBeGreaterThan(0);
  });

  it('refuses to cut the power of a replica that is not running, before killing any', async () => {
    const started = cluster as LocalCluster;
    await started.kill('g1-r1');
    await expect(started.powerCut(['g1-r1', 'g1-r2'])).rejects.toThrow(/g1-r1 is not running/);
    expect(started.isRunning('g1-r2')).toBe(true);
    await started.restart('g1-r1');
  });

  it('unmounts every replica file system when it stops', async () => {
    await cluster?.stop();
    cluster = undefined;
    expect(await mountpointsUnder(directory.path)).toEqual([]);
  });
});

/**
 * `LocalNodeCluster` with `powerLoss` (the chaos tool's power nemesis in the node shape): each
 * node's data directory (its node log and every replica's state) is one power-cut mount, and a cut
 * of a node takes down every replica it hosts with their unsynced data.
 */
describe('LocalNodeCluster power cuts', () => {
  let cluster: LocalNodeCluster | undefined;
  let directory: Awaited<ReturnType<typeof temporaryDirectory>>;

  beforeAll(async () => {
    directory = await temporaryDirectory('node-power-cut');
    cluster = await LocalNodeCluster.start({
      nodes: 3,
      groups: 2,
      dataDirectory: directory.path,
      powerLoss: true,
    });
    await Promise.all(['g1', 'g2'].map((groupId) => cluster?.leaderOf(groupId)));
  });

  afterAll(async () => {
    await cluster?.stop();
    await directory?.remove();
  });

  it('keeps every acknowledged write of every group when every node loses power during writes', async () => {
    const started = cluster as LocalNodeCluster;
    const nodeIds = started.nodes.map((node) => node.nodeId);
    expect(started.nodesOf('g1').map((node) => node.nodeId)).toEqual(nodeIds);
    const load = startWriteLoad(started.gatewayUrl, { concurrency: 8, prefix: 'cut', timeoutMs: 20_000 });
    await sleep(3_000);
    const cuts = await started.powerCut(nodeIds);
    expect(cuts).toHaveLength(3);
    for (const nodeId of nodeIds) {
      expect(started.isRunning(nodeId)).toBe(false);
      expect(started.isReady(nodeId)).toBe(false);
    }
    await sleep(500);
    await Promise.all(nodeIds.map((nodeId) => started.restart(nodeId)));
    for (const nodeId of nodeIds) expect(started.isReady(nodeId)).toBe(true);
    await Promise.all(['g1', 'g2'].map((groupId) => started.leaderOf(groupId, 30_000)));
    await sleep(1_000);
    const { acknowledged } = await load.stop();
    expect(acknowledged.size).toBeGreaterThan(100);
    expect(await findLostWrites(started.gatewayUrl, acknowledged), JSON.stringify(cuts)).toEqual([]);
    expect(cuts.reduce((sum, cut) => sum + cut.bytesDropped + cut.operationsUndone, 0)).toBeGreaterThan(0);
  });

  it('refuses to cut the power of a node that is not running, before killing any', async () => {
    const started = cluster as LocalNodeCluster;
    await started.kill('n1');
    await expect(started.powerCut(['n1', 'n2'])).rejects.toThrow(/n1 is not running/);
    expect(started.isRunning('n2')).toBe(true);
    await started.restart('n1');
  });

  it('unmounts every node file system when it stops', async () => {
    await cluster?.stop();
    cluster = undefined;
    expect(await mountpointsUnder(directory.path)).toEqual([]);
  });
});
