import { pathForKey } from '@impulse/common';
import { rawRequest } from './http.js';

export interface WriteLoadResult {
  /** Every write the cluster acknowledged (204), key → value. */
  readonly acknowledged: Map<string, string>;
  /** Writes that failed or timed out: they may or may not have been applied. */
  readonly uncertain: number;
  /** Acknowledgement times (ms since the load started), in order. */
  readonly acknowledgedAtMs: number[];
}

/**
 * Writes fresh keys through the gateway from `concurrency` clients until stopped. Each key is
 * written once, so an acknowledged write must be readable with exactly its value afterwards.
 */
export function startWriteLoad(
  gatewayUrl: string,
  options: { readonly concurrency: number; readonly prefix: string; readonly timeoutMs?: number },
): { stop: () => Promise<WriteLoadResult> } {
  const acknowledged = new Map<string, string>();
  const acknowledgedAtMs: number[] = [];
  const startedAt = Date.now();
  let uncertain = 0;
  let running = true;
  const client = async (clientId: number): Promise<void> => {
    for (let sequence = 0; running; sequence++) {
      const key = `${options.prefix}-${clientId}-${sequence}`;
      const value = `value of ${key}`;
      try {
        const response = await rawRequest(gatewayUrl, pathForKey(key), {
          method: 'PUT',
          body: value,
          timeoutMs: options.timeoutMs ?? 15_000,
        });
        if (response.status === 204) {
          acknowledged.set(key, value);
          acknowledgedAtMs.push(Date.now() - startedAt);
        } else {
          uncertain++;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } catch {
        uncertain++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  };
  const clients = Array.from({ length: options.concurrency }, (_, clientId) => client(clientId));
  return {
    async stop() {
      running = false;
      await Promise.all(clients);
      return { acknowledged, uncertain, acknowledgedAtMs };
    },
  };
}

/** Reads every acknowledged key back through the gateway; answers the keys that are missing or wrong. */
export async function findLostWrites(
  gatewayUrl: string,
  acknowledged: ReadonlyMap<string, string>,
): Promise<string[]> {
  const lost: string[] = [];
  const entries = [...acknowledged];
  const batchSize = 32;
  for (let start = 0; start < entries.length; start += batchSize) {
    await Promise.all(
      entries.slice(start, start + batchSize).map(async ([key, value]) => {
        const response = await rawRequest(gatewayUrl, pathForKey(key), { timeoutMs: 15_000 });
        if (response.status !== 200 || response.body.toString() !== value)
          lost.push(`${key} (${response.status})`);
      }),
    );
  }
  return lost;
}
