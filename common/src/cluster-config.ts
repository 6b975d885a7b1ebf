import { readFileSync } from 'node:fs';
import { ConfigError } from './config.js';
import { SlotTable, virtualNodesPerGroupDefault } from './slot-table.js';

/**
 * The static cluster configuration: which shard groups exist, their replicas and where each
 * replica serves. In this version it is read from a file or an environment variable at start-up;
 * later the meta group serves it and gateways refresh it by epoch.
 *
 * ```json
 * { "epoch": 1, "groups": [ { "id": "g1", "replicas": [
 *   { "id": "g1-r1", "url": "http://127.0.0.1:7001", "raftId": 1, "peerAddress": "127.0.0.1:7101" } ] } ] }
 * ```
 */
export interface ReplicaSpec {
  readonly id: string;
  /** Base URL of the replica's client API, e.g. `http://127.0.0.1:7001`. */
  readonly url: string;
  /** The replica's Raft id, unique in its group; its position in the group (from 1) when absent. */
  readonly raftId: number;
  /** `host:port` of the replica's peer transport; needed when its group has more than one replica. */
  readonly peerAddress: string | null;
}

export interface GroupSpec {
  readonly id: string;
  readonly replicas: readonly ReplicaSpec[];
}

export interface ClusterConfig {
  readonly epoch: number;
  readonly virtualNodesPerGroup: number;
  readonly groups: readonly GroupSpec[];
}

export const groupsMax = 1024;
export const replicasPerGroupMax = 7;
const idPattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** Validates an untrusted JSON value; throws `ConfigError` listing every problem. */
export function parseClusterConfig(value: unknown): ClusterConfig {
  const problems: string[] = [];
  const isObject = (candidate: unknown): candidate is Record<string, unknown> =>
    typeof candidate === 'object' && candidate !== null && !Array.isArray(candidate);
  if (!isObject(value)) throw new ConfigError(['cluster: must be a JSON object']);

  const epoch = value['epoch'] ?? 1;
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) {
    problems.push('cluster.epoch: must be a non-negative integer');
  }
  const virtualNodesPerGroup = value['virtualNodesPerGroup'] ?? virtualNodesPerGroupDefault;
  if (
    typeof virtualNodesPerGroup !== 'number' ||
    !Number.isInteger(virtualNodesPerGroup) ||
    virtualNodesPerGroup < 1 ||
    virtualNodesPerGroup > 4096
  ) {
    problems.push('cluster.virtualNodesPerGroup: must be an integer from 1 to 4096');
  }
  const groupsValue = value['groups'];
  const groups: GroupSpec[] = [];
  if (!Array.isArray(groupsValue) || groupsValue.length === 0 || groupsValue.length > groupsMax) {
    problems.push(`cluster.groups: must be an array of 1 to ${groupsMax} groups`);
  } else {
    const groupIds = new Set<string>();
    const replicaIds = new Set<string>();
    groupsValue.forEach((group: unknown, groupIndex) => {
      const where = `cluster.groups[${groupIndex}]`;
      if (!isObject(group)) return void problems.push(`${where}: must be an object`);
      const id = group['id'];
      if (typeof id !== 'string' || !idPattern.test(id)) {
        return void problems.push(`${where}.id: must match ${idPattern}`);
      }
      if (groupIds.has(id)) problems.push(`${where}.id: duplicate group id ${id}`);
      groupIds.add(id);
      const replicasValue = group['replicas'];
      if (
        !Array.isArray(replicasValue) ||
        replicasValue.length === 0 ||
        replicasValue.length > replicasPerGroupMax
      ) {
        return void problems.push(
          `${where}.replicas: must be an array of 1 to ${replicasPerGroupMax} replicas`,
        );
      }
      const replicas: ReplicaSpec[] = [];
      const raftIds = new Set<number>();
      replicasValue.forEach((replica: unknown, replicaIndex) => {
        const at = `${where}.replicas[${replicaIndex}]`;
        if (!isObject(replica)) return void problems.push(`${at}: must be an object`);
        const replicaId = replica['id'];
        const url = replica['url'];
        if (typeof replicaId !== 'string' || !idPattern.test(replicaId)) {
          return void problems.push(`${at}.id: must match ${idPattern}`);
        }
        if (replicaIds.has(replicaId)) problems.push(`${at}.id: duplicate replica id ${replicaId}`);
        replicaIds.add(replicaId);
        if (typeof url !== 'string' || !isHttpUrl(url)) {
          return void problems.push(`${at}.url: must be an http:// URL with a host and port`);
        }
        const raftId = replica['raftId'] ?? replicaIndex + 1;
        if (
          typeof raftId !== 'number' ||
          !Number.isSafeInteger(raftId) ||
          raftId < 1 ||
          raftId > 0xffffffff
        ) {
          return void problems.push(`${at}.raftId: must be an integer from 1 to 4294967295`);
        }
        if (raftIds.has(raftId)) problems.push(`${at}.raftId: duplicate raft id ${raftId} in group ${id}`);
        raftIds.add(raftId);
        const peerAddress = replica['peerAddress'] ?? null;
        if (
          peerAddress !== null &&
          (typeof peerAddress !== 'string' || parsePeerAddress(peerAddress) === undefined)
        ) {
          return void problems.push(`${at}.peerAddress: must be host:port`);
        }
        if (peerAddress === null && replicasValue.length > 1) {
          return void problems.push(`${at}.peerAddress: required in a group of more than one replica`);
        }
        replicas.push(Object.freeze({ id: replicaId, url: url.replace(/\/+$/, ''), raftId, peerAddress }));
      });
      groups.push(Object.freeze({ id, replicas: Object.freeze(replicas) }));
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    epoch: epoch as number,
    virtualNodesPerGroup: virtualNodesPerGroup as number,
    groups: Object.freeze(groups),
  });
}

/** Splits `host:port`; undefined when it is not one. */
export function parsePeerAddress(text: string): { host: string; port: number } | undefined {
  const match = /^([^:\s]+):(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (match === null || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: match[1] as string, port };
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' && url.hostname !== '' && url.port !== '' && url.pathname === '/';
  } catch {
    return false;
  }
}

/** Reads the cluster configuration from inline JSON or from a file (inline wins when both are given). */
export function loadClusterConfig(source: { readonly json?: string; readonly file?: string }): ClusterConfig {
  let text: string;
  let origin: string;
  if (source.json !== undefined && source.json !== '') {
    text = source.json;
    origin = 'inline cluster configuration';
  } else if (source.file !== undefined && source.file !== '') {
    origin = source.file;
    try {
      text = readFileSync(source.file, 'utf8');
    } catch (error) {
      throw new ConfigError([`cannot read cluster file ${source.file}: ${(error as Error).message}`]);
    }
  } else {
    throw new ConfigError(['a cluster configuration is required (--cluster-file or --cluster)']);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`${origin}: not valid JSON: ${(error as Error).message}`]);
  }
  return parseClusterConfig(value);
}

export function slotTableOf(cluster: ClusterConfig): SlotTable {
  return SlotTable.fromGroups(
    cluster.groups.map((group) => group.id),
    cluster.epoch,
    { virtualNodesPerGroup: cluster.virtualNodesPerGroup },
  );
}
