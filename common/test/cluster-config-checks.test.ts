import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  keyBytesMaxDefault,
  keyBytesMaxUpperBound,
  option,
  parseClusterConfig,
  parseConfig,
  valueBytesMaxDefault,
  valueBytesMaxUpperBound,
  withClusterLimits,
} from '@impulse/common';

function problemsOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

const replica = (id: string, port: number, peerPort?: number): Record<string, unknown> => ({
  id,
  url: `http://127.0.0.1:${port}`,
  ...(peerPort === undefined ? {} : { peerAddress: `127.0.0.1:${peerPort}` }),
});

describe('cluster configuration: unknown fields', () => {
  it('are refused with their path and the nearest known name, at every level', () => {
    expect(
      problemsOf(() =>
        parseClusterConfig({
          virtualNodesPerGrop: 16,
          groups: [
            { id: 'g1', replicas: [{ ...replica('g1-r1', 7001), raftID: 1 }] },
            {
              id: 'g2',
              Replicas: [],
              replicas: [{ ...replica('g2-r1', 7002), peerAdress: '127.0.0.1:7102' }],
            },
          ],
        }),
      ),
    ).toEqual([
      'cluster.virtualNodesPerGrop: unknown field (did you mean virtualNodesPerGroup?)',
      'cluster.groups[0].replicas[0].raftID: unknown field (did you mean raftId?)',
      'cluster.groups[1].Replicas: unknown field (did you mean replicas?)',
      'cluster.groups[1].replicas[0].peerAdress: unknown field (did you mean peerAddress?)',
    ]);
  });

  it('quote a field whose name is not an identifier', () => {
    expect(
      problemsOf(() =>
        parseClusterConfig({ 'value bytes': 1, groups: [{ id: 'g1', replicas: [replica('a', 1)] }] }),
      ),
    ).toEqual(['cluster["value bytes"]: unknown field (did you mean valueBytesMax?)']);
  });

  it('leave the known fields as they were', () => {
    const cluster = parseClusterConfig({
      epoch: 2,
      virtualNodesPerGroup: 16,
      valueBytesMax: '3MiB',
      keyBytesMax: 2048,
      groups: [{ id: 'g1', replicas: [{ ...replica('g1-r1', 7001, 7101), raftId: 3 }] }],
    });
    expect(cluster.valueBytesMax).toBe(3 * 1024 * 1024);
    expect(cluster.keyBytesMax).toBe(2048);
    expect(cluster.groups[0]?.replicas[0]?.raftId).toBe(3);
  });
});

describe('cluster configuration: addresses', () => {
  it('refuses one client URL given to two replicas, after normalising case and the trailing slash', () => {
    expect(
      problemsOf(() =>
        parseClusterConfig({
          groups: [
            { id: 'g1', replicas: [{ id: 'g1-r1', url: 'http://LOCALHOST:7001' }] },
            { id: 'g2', replicas: [{ id: 'g2-r1', url: 'http://localhost:7001/' }] },
          ],
        }),
      ),
    ).toEqual([
      'cluster.groups[1].replicas[0].url: address localhost:7001 is already used by cluster.groups[0].replicas[0].url',
    ]);
  });

  it('refuses one peer address given twice, or a peer address that is a client URL', () => {
    expect(
      problemsOf(() =>
        parseClusterConfig({
          groups: [
            {
              id: 'g1',
              replicas: [
                replica('g1-r1', 7001, 7101),
                replica('g1-r2', 7002, 7101),
                replica('g1-r3', 7003, 7001),
              ],
            },
          ],
        }),
      ),
    ).toEqual([
      'cluster.groups[0].replicas[1].peerAddress: address 127.0.0.1:7101 is already used by cluster.groups[0].replicas[0].peerAddress',
      'cluster.groups[0].replicas[2].peerAddress: address 127.0.0.1:7001 is already used by cluster.groups[0].replicas[0].url',
    ]);
  });

  it('takes the same port on different hosts', () => {
    expect(
      problemsOf(() =>
        parseClusterConfig({
          groups: [
            { id: 'g1', replicas: [{ id: 'a', url: 'http://10.0.0.1:7001', peerAddress: '10.0.0.1:7101' }] },
            { id: 'g2', replicas: [{ id: 'b', url: 'http://10.0.0.2:7001', peerAddress: '10.0.0.2:7101' }] },
          ],
        }),
      ),
    ).toEqual([]);
  });
});

describe('cluster-wide limits', () => {
  const specs = {
    valueBytesMax: option.bytes({ description: 'Largest value.', default: valueBytesMaxDefault }),
    keyBytesMax: option.bytes({ description: 'Longest key.', default: keyBytesMaxDefault }),
  };
  const oneGroup = { groups: [{ id: 'g1', replicas: [replica('g1-r1', 7001)] }] };
  const parse = (argv: string[], env: Record<string, string> = {}) =>
    parseConfig({ name: 'p', summary: 's' }, specs, { argv, env });

  it('default to 1 MiB of value and 1 KiB of key, as the flags do', () => {
    const cluster = parseClusterConfig(oneGroup);
    expect(cluster.valueBytesMax).toBe(valueBytesMaxDefault);
    expect(cluster.keyBytesMax).toBe(keyBytesMaxDefault);
  });

  it('are bounded as the flags are', () => {
    expect(
      problemsOf(() => parseClusterConfig({ ...oneGroup, valueBytesMax: '65MiB', keyBytesMax: 0 })),
    ).toEqual([
      'cluster.valueBytesMax: must be a size from 0 to 4127744 bytes (a number, or a string such as "2MiB"): a written value travels whole in one 4 MiB frame between the replicas, beside its key and headers',
      'cluster.keyBytesMax: must be a size from 1 to 65535 bytes (a number, or a string such as "1KiB")',
    ]);
    expect(problemsOf(() => parseClusterConfig({ ...oneGroup, valueBytesMax: 1.5 }))).toHaveLength(1);
  });

  it('hold a value that one frame between replicas carries, and a key a write command carries (issue 11)', () => {
    // 4 MiB less 65 KiB: the frame, less the longest key and the headers (shard-node/src/value-limit.ts).
    expect(valueBytesMaxUpperBound).toBe(4_127_744);
    expect(keyBytesMaxUpperBound).toBe(65_535);
    const largest = parseClusterConfig({
      ...oneGroup,
      valueBytesMax: valueBytesMaxUpperBound,
      keyBytesMax: keyBytesMaxUpperBound,
    });
    expect(largest.valueBytesMax).toBe(valueBytesMaxUpperBound);
    expect(problemsOf(() => parseClusterConfig({ ...oneGroup, valueBytesMax: '4MiB' }))).toHaveLength(1);
    expect(problemsOf(() => parseClusterConfig({ ...oneGroup, keyBytesMax: '64KiB' }))).toHaveLength(1);
  });

  it("replace a process's flags, which may only agree with them", () => {
    const cluster = parseClusterConfig({ ...oneGroup, valueBytesMax: '3MiB' });
    const defaults = withClusterLimits(parse([]), cluster);
    expect(defaults).toEqual({ valueBytesMax: 3 * 1024 * 1024, keyBytesMax: 1024 });
    expect(Object.isFrozen(defaults)).toBe(true);
    expect(withClusterLimits(parse(['--value-bytes-max=3MiB']), cluster).valueBytesMax).toBe(3 * 1024 * 1024);
    expect(problemsOf(() => withClusterLimits(parse(['--value-bytes-max=1MiB']), cluster))).toEqual([
      "--value-bytes-max (IMPULSE_VALUE_BYTES_MAX) is 1048576 bytes but the cluster configuration's valueBytesMax is 3145728: the limit is cluster-wide, so set valueBytesMax in the cluster configuration that every gateway and replica reads (and drop the flag)",
    ]);
    expect(
      problemsOf(() => withClusterLimits(parse([], { IMPULSE_KEY_BYTES_MAX: '16' }), cluster)),
    ).toHaveLength(1);
  });
});
