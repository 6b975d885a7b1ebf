import { readFileSync } from 'node:fs';
import { ConfigError, optionsGiven, parseBytes } from './config.js';
import { valueBytesMaxDefault } from './http.js';
import { keyBytesMaxDefault } from './key.js';
import { nearestName } from './nearest-name.js';
import { SlotTable, virtualNodesPerGroupDefault } from './slot-table.js';

/**
 * The static cluster configuration: which shard groups exist, their replicas and where each
 * replica serves. In this version it is read from a file or an environment variable at start-up;
 * later the meta group serves it and gateways refresh it by epoch.
 *
 * ```json
 * { "epoch": 1, "valueBytesMax": "1MiB", "groups": [ { "id": "g1", "replicas": [
 *   { "id": "g1-r1", "url": "http://127.0.0.1:7001", "raftId": 1, "peerAddress": "127.0.0.1:7101" } ] } ] }
 * ```
 *
 * Every process of a cluster reads the same file, so the file also carries the settings that must
 * agree across processes: the key and value limits (see docs/decisions/0006-cluster-wide-limits.md).
 * A field the parser does not know is refused, with the nearest known name: a misspelt
 * `virtualNodesPerGroup` ignored would silently route keys to other groups.
 */
export interface ReplicaSpec {
  readonly id: string;
  /**
   * The node that hosts this replica, or null for a replica that is a process of its own. A
   * replica on a node takes the node's `url` and `peerAddress`: the node serves every replica it
   * hosts on its one client port and its one peer port, and clients name the group in the
   * `Impulse-Group` header.
   */
  readonly node: string | null;
  /** Base URL of the replica's client API, e.g. `http://127.0.0.1:7001` (its node's, on a node). */
  readonly url: string;
  /** The replica's Raft id, unique in its group; its position in the group (from 1) when absent. */
  readonly raftId: number;
  /** `host:port` of the replica's peer transport; needed when its group has more than one replica. */
  readonly peerAddress: string | null;
}

/**
 * A node: one process that hosts replicas of many groups (at most one of each) on one client port
 * and one peer port.
 */
export interface NodeSpec {
  readonly id: string;
  /** Base URL of the node's client API, e.g. `http://127.0.0.1:7001`. */
  readonly url: string;
  /** `host:port` of the node's peer transport. */
  readonly peerAddress: string;
}

export interface GroupSpec {
  readonly id: string;
  readonly replicas: readonly ReplicaSpec[];
}

export interface ClusterConfig {
  readonly epoch: number;
  readonly virtualNodesPerGroup: number;
  /**
   * Largest value the cluster accepts, in bytes; 1 MiB when absent. Cluster-wide: a gateway that
   * accepted a value that a replica refuses (or the reverse) would store data that some reads then
   * cannot serve, so every gateway and replica takes it from here.
   */
  readonly valueBytesMax: number;
  /** Longest key the cluster accepts, in bytes of UTF-8; 1 KiB when absent. Cluster-wide, as above. */
  readonly keyBytesMax: number;
  /** The nodes that host replicas (empty when every replica is a process of its own). */
  readonly nodes: readonly NodeSpec[];
  readonly groups: readonly GroupSpec[];
}

export const groupsMax = 1024;
export const nodesMax = 256;
export const replicasPerGroupMax = 7;
/**
 * The largest `valueBytesMax` a cluster may set (and the `--value-bytes-max` flags take): 4 MiB
 * less 65 KiB, 4,127,744 bytes. A written value travels whole in one 4 MiB frame of the replicas'
 * peer transport, beside its key (under 64 KiB) and under 1 KiB of headers; a larger one would be
 * dropped on its way to the followers and wedge its group. The exact bound is derived from the
 * transport's and the Raft log's limits in `shard-node/src/value-limit.ts`, and a test there keeps
 * this one under it.
 */
export const valueBytesMaxUpperBound = 4 * 1024 * 1024 - 65 * 1024;
/**
 * The largest `keyBytesMax` a cluster may set (and the `--key-bytes-max` flags take): 65,535
 * bytes, 64 KiB less one. A replica's write command stores the key's length in 16 bits
 * (`shard-node/src/state-machine/command.ts`): a longer key could not be proposed at all.
 */
export const keyBytesMaxUpperBound = 0xffff;
const idPattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** The fields each object of a cluster configuration may have; any other is refused. */
const clusterFields = [
  'epoch',
  'virtualNodesPerGroup',
  'valueBytesMax',
  'keyBytesMax',
  'nodes',
  'groups',
] as const;
const nodeFields = ['id', 'url', 'peerAddress'] as const;
const groupFields = ['id', 'replicas'] as const;
const replicaFields = ['id', 'node', 'url', 'raftId', 'peerAddress'] as const;

/** One problem per field of `value` not in `known`, naming its path and the nearest known name. */
function unknownFieldProblems(
  value: Record<string, unknown>,
  known: readonly string[],
  where: string,
): string[] {
  return Object.keys(value)
    .filter((field) => !known.includes(field))
    .map((field) => {
      const nearest = nearestName(field, known);
      const path = /^[A-Za-z_$][\w$]*$/.test(field)
        ? `${where}.${field}`
        : `${where}[${JSON.stringify(field)}]`;
      return `${path}: unknown field${nearest === undefined ? '' : ` (did you mean ${nearest}?)`}`;
    });
}

/** A size in bytes given as a number or as a string with a unit (`"4MiB"`); undefined when neither. */
function sizeOf(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === 'string') return parseBytes(value);
  return undefined;
}

/** Validates an untrusted JSON value; throws `ConfigError` listing every problem. */
export function parseClusterConfig(value: unknown): ClusterConfig {
  const problems: string[] = [];
  const isObject = (candidate: unknown): candidate is Record<string, unknown> =>
    typeof candidate === 'object' && candidate !== null && !Array.isArray(candidate);
  if (!isObject(value)) throw new ConfigError(['cluster: must be a JSON object']);
  problems.push(...unknownFieldProblems(value, clusterFields, 'cluster'));

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
  const valueBytesMax = sizeOf(value['valueBytesMax'] ?? valueBytesMaxDefault);
  if (valueBytesMax === undefined || valueBytesMax < 0 || valueBytesMax > valueBytesMaxUpperBound) {
    problems.push(
      `cluster.valueBytesMax: must be a size from 0 to ${valueBytesMaxUpperBound} bytes (a number, or a string such as "2MiB"): a written value travels whole in one 4 MiB frame between the replicas, beside its key and headers`,
    );
  }
  const keyBytesMax = sizeOf(value['keyBytesMax'] ?? keyBytesMaxDefault);
  if (keyBytesMax === undefined || keyBytesMax < 1 || keyBytesMax > keyBytesMaxUpperBound) {
    problems.push(
      `cluster.keyBytesMax: must be a size from 1 to ${keyBytesMaxUpperBound} bytes (a number, or a string such as "1KiB")`,
    );
  }
  // Where each address is used, by its normalised `host:port`: a replica URL and a peer address
  // (or two of either) that are the same endpoint would send one replica's traffic to another.
  // A node's two addresses are claimed once, by the node, for every replica it hosts.
  const endpoints = new Map<string, string>();
  const claimEndpoint = (endpoint: string, at: string, what: string): void => {
    const previous = endpoints.get(endpoint);
    if (previous === undefined) endpoints.set(endpoint, at);
    else problems.push(`${at}: ${what} ${endpoint} is already used by ${previous}`);
  };
  const nodes = parseNodes(value['nodes'] ?? [], problems, claimEndpoint);
  const nodesById = new Map(nodes.map((node) => [node.id, node]));
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
      problems.push(...unknownFieldProblems(group, groupFields, where));
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
      const groupNodes = new Set<string>();
      replicasValue.forEach((replica: unknown, replicaIndex) => {
        const at = `${where}.replicas[${replicaIndex}]`;
        if (!isObject(replica)) return void problems.push(`${at}: must be an object`);
        problems.push(...unknownFieldProblems(replica, replicaFields, at));
        const replicaId = replica['id'];
        if (typeof replicaId !== 'string' || !idPattern.test(replicaId)) {
          return void problems.push(`${at}.id: must match ${idPattern}`);
        }
        if (replicaIds.has(replicaId)) problems.push(`${at}.id: duplicate replica id ${replicaId}`);
        replicaIds.add(replicaId);
        const raftIdOrProblem = raftIdOf(replica['raftId'] ?? replicaIndex + 1);
        if (typeof raftIdOrProblem === 'string')
          return void problems.push(`${at}.raftId: ${raftIdOrProblem}`);
        if (raftIds.has(raftIdOrProblem))
          problems.push(`${at}.raftId: duplicate raft id ${raftIdOrProblem} in group ${id}`);
        raftIds.add(raftIdOrProblem);
        const nodeId = replica['node'] ?? null;
        if (nodeId !== null) {
          const node = typeof nodeId === 'string' ? nodesById.get(nodeId) : undefined;
          if (node === undefined) return void problems.push(`${at}.node: must name a node of cluster.nodes`);
          // The node's addresses, or none: a parsed configuration written back out names them.
          const givenUrl = replica['url'];
          const givenPeerAddress = replica['peerAddress'];
          if (
            (givenUrl !== undefined &&
              (typeof givenUrl !== 'string' || givenUrl.replace(/\/+$/, '') !== node.url)) ||
            (givenPeerAddress !== undefined && givenPeerAddress !== node.peerAddress)
          )
            return void problems.push(
              `${at}: a replica on a node takes the node's url and peerAddress; give neither (or the node's own)`,
            );
          // A node holds at most one replica of a group: two would be one failure domain voting twice.
          if (groupNodes.has(node.id))
            return void problems.push(`${at}.node: node ${node.id} already hosts a replica of group ${id}`);
          groupNodes.add(node.id);
          replicas.push(
            Object.freeze({
              id: replicaId,
              node: node.id,
              url: node.url,
              raftId: raftIdOrProblem,
              peerAddress: node.peerAddress,
            }),
          );
          return;
        }
        const url = replica['url'];
        if (typeof url !== 'string' || !isHttpUrl(url)) {
          return void problems.push(`${at}.url: must be an http:// URL with a host and port`);
        }
        const raftId = raftIdOrProblem;
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
        claimEndpoint(endpointOfUrl(url), `${at}.url`, 'address');
        if (peerAddress !== null)
          claimEndpoint(endpointOfPeerAddress(peerAddress), `${at}.peerAddress`, 'address');
        replicas.push(
          Object.freeze({ id: replicaId, node: null, url: url.replace(/\/+$/, ''), raftId, peerAddress }),
        );
      });
      groups.push(Object.freeze({ id, replicas: Object.freeze(replicas) }));
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    epoch: epoch as number,
    virtualNodesPerGroup: virtualNodesPerGroup as number,
    valueBytesMax: valueBytesMax as number,
    keyBytesMax: keyBytesMax as number,
    nodes: Object.freeze(nodes),
    groups: Object.freeze(groups),
  });
}

/** A Raft id, or the problem with it. */
function raftIdOf(value: unknown): number | string {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= 0xffffffff
    ? value
    : 'must be an integer from 1 to 4294967295';
}

/** `cluster.nodes`: each node's id, client URL and peer address, every problem pushed. */
function parseNodes(
  value: unknown,
  problems: string[],
  claimEndpoint: (endpoint: string, at: string, what: string) => void,
): NodeSpec[] {
  if (!Array.isArray(value) || value.length > nodesMax) {
    problems.push(`cluster.nodes: must be an array of at most ${nodesMax} nodes`);
    return [];
  }
  const nodes: NodeSpec[] = [];
  const ids = new Set<string>();
  value.forEach((node: unknown, index) => {
    const at = `cluster.nodes[${index}]`;
    if (typeof node !== 'object' || node === null || Array.isArray(node))
      return void problems.push(`${at}: must be an object`);
    const record = node as Record<string, unknown>;
    problems.push(...unknownFieldProblems(record, nodeFields, at));
    const { id, url, peerAddress } = record;
    if (typeof id !== 'string' || !idPattern.test(id))
      return void problems.push(`${at}.id: must match ${idPattern}`);
    if (ids.has(id)) return void problems.push(`${at}.id: duplicate node id ${id}`);
    ids.add(id);
    if (typeof url !== 'string' || !isHttpUrl(url))
      return void problems.push(`${at}.url: must be an http:// URL with a host and port`);
    if (typeof peerAddress !== 'string' || parsePeerAddress(peerAddress) === undefined)
      return void problems.push(`${at}.peerAddress: must be host:port`);
    claimEndpoint(endpointOfUrl(url), `${at}.url`, 'address');
    claimEndpoint(endpointOfPeerAddress(peerAddress), `${at}.peerAddress`, 'address');
    nodes.push(Object.freeze({ id, url: url.replace(/\/+$/, ''), peerAddress }));
  });
  return nodes;
}

/** `host:port` of an http URL (which always names its port), lower-cased. */
function endpointOfUrl(text: string): string {
  const url = new URL(text);
  return `${url.hostname.toLowerCase()}:${url.port}`;
}

function endpointOfPeerAddress(text: string): string {
  const address = parsePeerAddress(text) as { host: string; port: number };
  return `${address.host.toLowerCase()}:${address.port}`;
}

/** The limits a process enforces, by the names its configuration gives them. */
export interface ProcessLimits {
  readonly valueBytesMax: number;
  readonly keyBytesMax: number;
}

const limitFlags: Record<keyof ProcessLimits, string> = {
  valueBytesMax: '--value-bytes-max (IMPULSE_VALUE_BYTES_MAX)',
  keyBytesMax: '--key-bytes-max (IMPULSE_KEY_BYTES_MAX)',
};

/**
 * The process configuration with the cluster's key and value limits in place of its own. A flag or
 * environment variable that set a limit must agree with the cluster's: a process that enforced
 * another limit than the rest of the cluster would accept data that other processes then cannot
 * serve (a gateway at 1 MiB cannot page a 2 MiB value that a replica at 4 MiB stored). Throws
 * `ConfigError` naming each disagreement.
 */
export function withClusterLimits<Config extends ProcessLimits>(
  config: Config,
  cluster: ClusterConfig,
): Config {
  const given = optionsGiven(config);
  const problems: string[] = [];
  for (const name of ['valueBytesMax', 'keyBytesMax'] as const) {
    if (given.has(name) && config[name] !== cluster[name]) {
      problems.push(
        `${limitFlags[name]} is ${config[name]} bytes but the cluster configuration's ${name} is ${cluster[name]}: the limit is cluster-wide, so set ${name} in the cluster configuration that every gateway and replica reads (and drop the flag)`,
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ ...config, valueBytesMax: cluster.valueBytesMax, keyBytesMax: cluster.keyBytesMax });
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
