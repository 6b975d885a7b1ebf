import { onTestFinished } from 'vitest';
import { SlotTable, pathForKey } from '@impulse/common';
import { errorCodeOf, rawRequest, type RawResponse } from '../support/http.js';
import { ContainerCluster, type ContainerClusterOptions } from './cluster.js';
import { Faults } from './faults.js';

/**
 * Starts a cluster for the current test and removes it when the test ends, passed or failed. On
 * failure the last log lines of the gateway and of every node are printed, since the containers
 * are gone afterwards.
 */
export async function startClusterForTest(
  options: ContainerClusterOptions = {},
): Promise<{ cluster: ContainerCluster; faults: Faults }> {
  const cluster = await ContainerCluster.start(options);
  onTestFinished(async (context) => {
    try {
      if (context.task.result?.state === 'fail') {
        const logs = await Promise.all(
          [cluster.gateway, ...cluster.nodes].map(
            async (container) => `${container.name} log:\n${await cluster.logs(container).catch(String)}`,
          ),
        );
        console.error(logs.join('\n'));
      }
    } finally {
      await cluster.stop();
    }
  });
  return { cluster, faults: new Faults(cluster.client, cluster.network) };
}

/** A client of the gateway from the host. */
export class Client {
  constructor(private readonly baseUrl: () => string) {}

  put(key: string, value: string | Buffer): Promise<RawResponse> {
    return rawRequest(this.baseUrl(), pathForKey(key), { method: 'PUT', body: value });
  }

  get(key: string): Promise<RawResponse> {
    return rawRequest(this.baseUrl(), pathForKey(key));
  }

  delete(key: string): Promise<RawResponse> {
    return rawRequest(this.baseUrl(), pathForKey(key), { method: 'DELETE' });
  }
}

/** `count` keys that the gateway routes to `groupId`, for a cluster of `groups` groups at epoch 1. */
export function keysOnGroup(groupId: string, groups: number, count: number, prefix = 'key'): string[] {
  const table = SlotTable.fromGroups(
    Array.from({ length: groups }, (_, index) => `g${index + 1}`),
    1,
  );
  const keys: string[] = [];
  for (let index = 0; keys.length < count; index += 1) {
    const key = `${prefix}-${index}`;
    if (table.groupForKey(key) === groupId) keys.push(key);
  }
  return keys;
}

/** True when the gateway answered that the key's group is unreachable: 503 or 504 with its code. */
export function isGroupDown(response: RawResponse): boolean {
  const code = errorCodeOf(response);
  return (
    (response.status === 503 && code === 'GROUP_UNAVAILABLE') ||
    (response.status === 504 && code === 'UPSTREAM_TIMEOUT')
  );
}

export function describeResponse(response: RawResponse): string {
  return `${response.status} ${response.body.toString('utf8').slice(0, 300)}`;
}

/** Polls `probe` until it returns true, or fails with the last thing it saw. */
export async function eventually(
  what: string,
  probe: () => Promise<boolean | string>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last: string;
    try {
      const result = await probe();
      if (result === true) return;
      last = String(result);
    } catch (error) {
      last = String(error);
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
