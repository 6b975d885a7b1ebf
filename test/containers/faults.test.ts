import { describe, expect, it } from 'vitest';
import { errorCodeOf, rawRequest } from '../support/http.js';
import { runInNetworkNamespace } from './faults.js';
import {
  Client,
  describeResponse,
  eventually,
  isGroupDown,
  keysOnGroup,
  startClusterForTest,
} from './support.js';

/** Short, so that a fault shows within a second and the suite stays fast. */
const upstreamTimeoutMs = 1000;
const groups = 3;

/**
 * The fault helpers, exercised for real against containers: every fault must show at the gateway
 * as the documented error for the faulty group only, and the group must recover once it is undone.
 */
describe('faults injected into a cluster of containers', () => {
  const start = async () => {
    const started = await startClusterForTest({
      groups,
      gatewayArguments: [`--upstream-timeout=${upstreamTimeoutMs}ms`],
    });
    return { ...started, client: new Client(() => started.cluster.gatewayUrl) };
  };

  /** Writes a few keys on every group, for the checks that the other groups are unaffected. */
  async function seed(client: Client): Promise<Map<string, string[]>> {
    const keysByGroup = new Map<string, string[]>();
    for (let index = 1; index <= groups; index += 1) {
      const groupId = `g${index}`;
      const keys = keysOnGroup(groupId, groups, 5, 'seed');
      for (const key of keys) expect((await client.put(key, `value of ${key}`)).status).toBe(204);
      keysByGroup.set(groupId, keys);
    }
    return keysByGroup;
  }

  async function expectServed(client: Client, keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      const response = await client.get(key);
      expect(response.status, `${key}: ${describeResponse(response)}`).toBe(200);
      expect(response.body.toString()).toBe(`value of ${key}`);
    }
  }

  async function expectRecovered(client: Client, keys: readonly string[]): Promise<void> {
    const key = keys[0] ?? '';
    await eventually(`${key} served again`, async () => {
      const response = await client.get(key);
      return response.status === 200 || describeResponse(response);
    });
    await expectServed(client, keys);
  }

  it('kill and restart: the group is down meanwhile, and its data survives in the volume', async () => {
    const { cluster, faults, client } = await start();
    const keys = await seed(client);
    const victim = cluster.replica('g1-r1');

    await faults.kill(victim);
    const down = await client.get(keys.get('g1')?.[0] ?? '');
    expect(isGroupDown(down), describeResponse(down)).toBe(true);
    const write = await client.put(keys.get('g1')?.[1] ?? '', 'lost?');
    expect(isGroupDown(write), describeResponse(write)).toBe(true);
    await expectServed(client, [...(keys.get('g2') ?? []), ...(keys.get('g3') ?? [])]);

    await faults.restart(victim);
    // Everything acknowledged before the SIGKILL is there (writes are fsynced), and the write that
    // was refused did not happen.
    await expectRecovered(client, keys.get('g1') ?? []);
    const status = (
      await rawRequest(cluster.replicaUrl('g1-r1'), '/admin/status', { headers: cluster.adminHeaders() })
    ).json() as {
      keyCount: number;
    };
    expect(status.keyCount).toBe(5);
  });

  it('pause and unpause: requests to the group time out with 504, then recover', async () => {
    const { cluster, faults, client } = await start();
    const keys = await seed(client);

    await faults.pause(cluster.replica('g2-r1'));
    const startedAt = Date.now();
    const response = await client.get(keys.get('g2')?.[0] ?? '');
    expect(response.status, describeResponse(response)).toBe(504);
    expect(errorCodeOf(response)).toBe('UPSTREAM_TIMEOUT');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(upstreamTimeoutMs - 50);
    await expectServed(client, [...(keys.get('g1') ?? []), ...(keys.get('g3') ?? [])]);

    await faults.unpause(cluster.replica('g2-r1'));
    await expectRecovered(client, keys.get('g2') ?? []);
  });

  it('disconnect and reconnect: the group is unreachable (503/504), then recovers', async () => {
    const { cluster, faults, client } = await start();
    const keys = await seed(client);
    const victim = cluster.replica('g3-r1');

    await faults.disconnect(victim);
    await expect(faults.addressOf(victim)).rejects.toThrow(/no address/);
    const response = await client.get(keys.get('g3')?.[0] ?? '');
    expect(isGroupDown(response), describeResponse(response)).toBe(true);
    await expectServed(client, [...(keys.get('g1') ?? []), ...(keys.get('g2') ?? [])]);

    await faults.reconnect(victim);
    await expectRecovered(client, keys.get('g3') ?? []);
  });

  it('a one-way partition drops the packets of one side only, and heals', async () => {
    const { cluster, faults, client } = await start();
    const keys = await seed(client);
    const victim = cluster.replica('g1-r1');

    const partition = await faults.partitionOneWay(cluster.gateway, victim);
    const response = await client.get(keys.get('g1')?.[0] ?? '');
    expect(response.status, describeResponse(response)).toBe(504);
    expect(errorCodeOf(response)).toBe('UPSTREAM_TIMEOUT');
    // The rule really dropped the gateway's packets...
    expect(await faults.droppedPackets(partition)).toBeGreaterThan(0);
    // ...and only those: the host still reaches the replica, and the other groups still answer.
    expect((await rawRequest(cluster.replicaUrl('g1-r1'), '/readyz')).status).toBe(200);
    await expectServed(client, [...(keys.get('g2') ?? []), ...(keys.get('g3') ?? [])]);

    // The other direction is open: packets the replica sends reach the gateway. Count them with an
    // accept rule at the gateway while the replica's namespace opens a connection to it (the
    // connection itself cannot complete, since the gateway's answers are dropped).
    const gatewayPid = await faults.pidOf(cluster.gateway);
    const victimAddress = await faults.addressOf(victim);
    const gatewayAddress = await faults.addressOf(cluster.gateway);
    await runInNetworkNamespace(gatewayPid, 'iptables', [
      '-w',
      '-I',
      'INPUT',
      '-s',
      victimAddress,
      '-j',
      'ACCEPT',
    ]);
    await runInNetworkNamespace(await faults.pidOf(victim), process.execPath, [
      '-e',
      `require('node:net').connect(8080, '${gatewayAddress}').on('error', () => {}); setTimeout(() => process.exit(0), 1500);`,
    ]);
    const { stdout } = await runInNetworkNamespace(gatewayPid, 'iptables', [
      '-w',
      '-L',
      'INPUT',
      '-n',
      '-v',
      '-x',
    ]);
    const arrived = stdout
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .find((fields) => fields[2] === 'ACCEPT' && fields[7] === victimAddress);
    expect(Number(arrived?.[0] ?? 0), stdout).toBeGreaterThan(0);

    await faults.heal();
    await expectRecovered(client, keys.get('g1') ?? []);
  });
});
