/**
 * The cluster a chaos run faults, in either shape, seen the way the nemeses need it: processes by
 * name, the processes that host each group, and what can be done to a process (kill -9, SIGSTOP,
 * a power cut, a restart).
 *
 * - `nodes` (the production shape, the default): node processes (`shard-node --node-id`), each
 *   hosting a replica of many groups (`LocalNodeCluster`). A fault acts on a node, so a kill, a
 *   pause, a power cut or a partition hits every replica on it, as it would in production.
 * - `replicas` (the shape before nodes): one process per replica (`LocalCluster`). Kept because
 *   it costs one small adapter, so that both shapes can be compared under the same faults.
 *
 * Either way, every peer link goes through the fault proxy: each process advertises a proxy port,
 * and the proxy names the dialler of each connection from the hello it opens with (a replica's
 * names its group and Raft id; a node's names its own and the acceptor's advertised addresses).
 */
import { groupHeader } from '@impulse/common';
import { LocalCluster, LocalNodeCluster, type PowerCut, type ProcessExit } from '@impulse/local-cluster';
import { helloAtStreamStart, nodeHelloAtStreamStart } from '@impulse/shard-node';
import { FaultNetwork } from './fault-network.js';

export const chaosShapes = ['nodes', 'replicas'] as const;
export type ChaosShape = (typeof chaosShapes)[number];

/** One replica of a group, and the process (replica or node) that hosts it. */
export interface GroupReplica {
  readonly replicaId: string;
  readonly raftId: number;
  /** The name of the process that hosts it: the replica's own (replicas), or its node's. */
  readonly host: string;
}

/** A replica a membership change adds: what the leader's `POST /admin/members` is given. */
export interface NewMember {
  readonly replicaId: string;
  readonly raftId: number;
  readonly url: string;
  readonly peerAddress: string;
}

/** Replacing replicas (the `member` nemesis). */
export interface Membership {
  /** The replicas of a group of the moment. */
  replicasOf(groupId: string): GroupReplica[];
  /**
   * Starts a new replica of the group that waits to join it (as `--join` does); the caller adds it.
   * Where it goes: a process of its own (replicas), or a node that does not host the group, which
   * `choose` picks among those that could (nodes; none picked, none started: `undefined`).
   */
  addReplica(
    groupId: string,
    choose: (candidates: readonly string[]) => string | undefined,
  ): Promise<{ readonly replica: GroupReplica; readonly member: NewMember } | undefined>;
  /** Stops a replica removed from its group for good, with its data, and forgets it. */
  retire(replica: GroupReplica): Promise<void>;
}

export interface ChaosCluster {
  readonly shape: ChaosShape;
  readonly gatewayUrl: string;
  /** Exits of a process that had become ready which the cluster did not cause. */
  readonly unexpectedExits: readonly ProcessExit[];
  readonly groupIds: readonly string[];
  /** The processes hosting a replica of the group: the replicas themselves, or their nodes. */
  hostsOf(groupId: string): string[];
  /** The replica ids a process hosts (itself, for a replica's process). */
  replicasOn(name: string): string[];
  /** Whether a process of that name is part of the cluster (a retired replica is not). */
  has(name: string): boolean;
  /** The process whose replica of the group leads, waiting up to `timeoutMs`. */
  leaderOf(groupId: string, timeoutMs: number): Promise<string>;
  /**
   * The URL of a process's client API, and the headers of an admin request to its replica of a
   * group: the group's, and the admin token's.
   */
  requestTarget(
    name: string,
    groupId: string,
  ): { readonly url: string; readonly headers: Record<string, string> };
  isReady(name: string): boolean;
  pid(name: string): number | undefined;
  kill(name: string): Promise<void>;
  restart(name: string): Promise<void>;
  signal(name: string, signal: NodeJS.Signals): void;
  powerCut(names: readonly string[]): Promise<PowerCut[]>;
  /**
   * The processes whose `/admin/status` lists replicas that may fail while the process runs on:
   * the ready nodes (a node contains a replica's failure); none in the replica shape, where a
   * replica that fails exits.
   */
  healthTargets(): { name: string; url: string; headers: Record<string, string> }[];
  /** The ports the processes' peer transports really listen on (behind the proxy). */
  peerListenPorts(): number[];
  /** A process's data directory (tests that sabotage a run damage it). */
  dataDirectoryOf(name: string): string;
  /** The folders under the data root that hold the processes' data (removed after a passed run). */
  dataFolderNames(): string[];
  readonly membership: Membership;
  /**
   * Test-only, a bug planted on purpose (with `power`): every node's disk acknowledges fsyncs
   * without making anything durable from now on, so that a power cut loses acknowledged writes.
   * The planted-bug test of `test/integration/chaos.test.ts` uses it to show that a run catches it.
   */
  plantLyingDisks(): Promise<void>;
  stop(): Promise<void>;
}

export interface ChaosClusterOptions {
  readonly shape: ChaosShape;
  /** Nodes (`nodes` shape only). */
  readonly nodes: number;
  readonly groups: number;
  readonly replicasPerGroup: number;
  readonly dataDirectory: string;
  readonly host: string;
  readonly powerLoss: boolean;
  readonly onUnexpectedExit: (exit: ProcessExit) => void;
  readonly shardNodeArguments: readonly string[];
  readonly gatewayArguments: readonly string[];
}

/**
 * Names the node that dialled a proxied connection from the node hello it opens with: the node
 * whose advertised peer address (a proxy port, in `nodeByAddress`) the hello gives as its sender.
 * The hello names the node dialled too, and a connection whose hello names another node than the
 * one whose listener it reached is refused (`null`), as is one from an address no node has.
 */
export function nodeDiallerOf(
  nodeByAddress: ReadonlyMap<string, string>,
): (firstBytes: Buffer, destination: string) => string | null | undefined {
  return (firstBytes, destination) => {
    const hello = nodeHelloAtStreamStart(firstBytes);
    if (hello === undefined || hello === null) return hello;
    const dialler = nodeByAddress.get(hello.senderAddress);
    if (dialler === undefined || nodeByAddress.get(hello.receiverAddress) !== destination) return null;
    return dialler;
  };
}

/**
 * Starts the fault proxy and the cluster behind it. The network is returned for the caller to
 * close; it is closed here only when the cluster does not start.
 */
export async function startChaosCluster(
  options: ChaosClusterOptions,
): Promise<{ readonly cluster: ChaosCluster; readonly network: FaultNetwork }> {
  // The node of each advertised peer address (a proxy port): a node hello names addresses.
  const nodeByAddress = new Map<string, string>();
  const network = FaultNetwork.create({
    host: options.host,
    identifyDialler:
      options.shape === 'nodes'
        ? nodeDiallerOf(nodeByAddress)
        : (firstBytes) => {
            // LocalCluster names replicas <group>-r<raft id>.
            const hello = helloAtStreamStart(firstBytes);
            if (hello === undefined || hello === null) return hello;
            return `${hello.groupId}-r${hello.senderId}`;
          },
  });
  const common = {
    groups: options.groups,
    replicasPerGroup: options.replicasPerGroup,
    dataDirectory: options.dataDirectory,
    host: options.host,
    powerLoss: options.powerLoss,
    onUnexpectedExit: options.onUnexpectedExit,
    shardNodeArguments: options.shardNodeArguments,
    gatewayArguments: options.gatewayArguments,
  };
  try {
    if (options.shape === 'nodes') {
      const cluster = await LocalNodeCluster.start({
        ...common,
        nodes: options.nodes,
        advertisePeerPort: async (nodeId, listenPort) => {
          const port = await network.addNode(nodeId, { host: options.host, port: listenPort });
          nodeByAddress.set(`${options.host}:${port}`, nodeId);
          return port;
        },
      });
      return { cluster: new NodeShape(cluster), network };
    }
    const cluster = await LocalCluster.start({
      ...common,
      advertisePeerPort: (replica, listenPort) =>
        network.addNode(replica.replicaId, { host: options.host, port: listenPort }),
    });
    return { cluster: new ReplicaShape(cluster, network), network };
  } catch (error) {
    await network.close();
    throw error;
  }
}

/** What both launchers do alike to a process named by its replica or node id. */
interface ProcessCluster {
  readonly gatewayUrl: string;
  readonly unexpectedExits: readonly ProcessExit[];
  isReady(name: string): boolean;
  kill(name: string): Promise<void>;
  restart(name: string): Promise<void>;
  signal(name: string, signal: NodeJS.Signals): void;
  powerCut(names: readonly string[]): Promise<PowerCut[]>;
  stop(): Promise<void>;
}

/** The part of both shapes that only passes a process's name on to its launcher. */
abstract class ProcessShape {
  constructor(private readonly processes: ProcessCluster) {}

  get gatewayUrl(): string {
    return this.processes.gatewayUrl;
  }

  get unexpectedExits(): readonly ProcessExit[] {
    return this.processes.unexpectedExits;
  }

  isReady(name: string): boolean {
    return this.processes.isReady(name);
  }

  kill(name: string): Promise<void> {
    return this.processes.kill(name);
  }

  restart(name: string): Promise<void> {
    return this.processes.restart(name);
  }

  signal(name: string, signal: NodeJS.Signals): void {
    this.processes.signal(name, signal);
  }

  powerCut(names: readonly string[]): Promise<PowerCut[]> {
    return this.processes.powerCut(names);
  }

  stop(): Promise<void> {
    return this.processes.stop();
  }
}

/** One process per replica (`LocalCluster`). */
class ReplicaShape extends ProcessShape implements ChaosCluster {
  readonly shape = 'replicas';
  readonly membership: Membership;

  constructor(
    private readonly cluster: LocalCluster,
    network: FaultNetwork,
  ) {
    super(cluster);
    this.membership = {
      replicasOf: (groupId) =>
        cluster.group(groupId).map((replica) => ({
          replicaId: replica.replicaId,
          raftId: replica.raftId,
          host: replica.replicaId,
        })),
      addReplica: async (groupId) => {
        const replica = await cluster.addReplica(groupId);
        return {
          replica: { replicaId: replica.replicaId, raftId: replica.raftId, host: replica.replicaId },
          member: {
            replicaId: replica.replicaId,
            raftId: replica.raftId,
            url: replica.url,
            peerAddress: `${cluster.host}:${replica.peerPort}`,
          },
        };
      },
      retire: async (replica) => {
        await cluster.retire(replica.replicaId);
        await network.removeNode(replica.replicaId);
      },
    };
  }

  get groupIds(): string[] {
    return [...new Set(this.cluster.replicas.map((replica) => replica.groupId))];
  }

  hostsOf(groupId: string): string[] {
    return this.cluster.group(groupId).map((replica) => replica.replicaId);
  }

  replicasOn(name: string): string[] {
    return [name];
  }

  has(name: string): boolean {
    return this.cluster.replicas.some((replica) => replica.replicaId === name);
  }

  async leaderOf(groupId: string, timeoutMs: number): Promise<string> {
    return (await this.cluster.leaderOf(groupId, timeoutMs)).replicaId;
  }

  requestTarget(name: string): { url: string; headers: Record<string, string> } {
    return { url: this.cluster.replica(name).url, headers: this.cluster.adminHeaders() };
  }

  pid(name: string): number | undefined {
    return this.cluster.replica(name).child?.pid;
  }

  peerListenPorts(): number[] {
    return this.cluster.replicas.map((replica) => replica.peerListenPort);
  }

  healthTargets(): { name: string; url: string; headers: Record<string, string> }[] {
    return [];
  }

  dataDirectoryOf(name: string): string {
    return this.cluster.replica(name).dataDirectory;
  }

  dataFolderNames(): string[] {
    return this.groupIds;
  }

  plantLyingDisks(): Promise<void> {
    return Promise.reject(new Error('lying disks are planted in the nodes shape only'));
  }
}

/** Node processes hosting a replica of many groups (`LocalNodeCluster`). */
class NodeShape extends ProcessShape implements ChaosCluster {
  readonly shape = 'nodes';
  /** Moves a group's replica to a node that does not host it (the node's `/admin/replicas`). */
  readonly membership: Membership;

  constructor(private readonly cluster: LocalNodeCluster) {
    super(cluster);
    this.membership = {
      replicasOf: (groupId) =>
        cluster.groupMembers(groupId).map((member) => ({
          replicaId: member.replicaId,
          raftId: member.raftId,
          host: member.nodeId,
        })),
      addReplica: async (groupId, choose) => {
        const hosts = new Set(this.hostsOf(groupId));
        const nodeId = choose(cluster.nodes.map((node) => node.nodeId).filter((name) => !hosts.has(name)));
        if (nodeId === undefined) return undefined;
        const added = await cluster.addReplica(groupId, nodeId);
        return {
          replica: { replicaId: added.replicaId, raftId: added.raftId, host: nodeId },
          member: {
            replicaId: added.replicaId,
            raftId: added.raftId,
            url: added.url,
            peerAddress: added.peerAddress,
          },
        };
      },
      retire: (replica) => cluster.removeReplica(replica.replicaId),
    };
  }

  get groupIds(): string[] {
    return this.cluster.groupIds;
  }

  hostsOf(groupId: string): string[] {
    return this.cluster.nodesOf(groupId).map((node) => node.nodeId);
  }

  replicasOn(name: string): string[] {
    return this.cluster.replicasOn(name).map((replica) => replica.replicaId);
  }

  has(name: string): boolean {
    return this.cluster.nodes.some((node) => node.nodeId === name);
  }

  async leaderOf(groupId: string, timeoutMs: number): Promise<string> {
    return (await this.cluster.leaderOf(groupId, timeoutMs)).nodeId;
  }

  requestTarget(name: string, groupId: string): { url: string; headers: Record<string, string> } {
    return {
      url: this.cluster.node(name).url,
      headers: { [groupHeader]: groupId, ...this.cluster.adminHeaders() },
    };
  }

  pid(name: string): number | undefined {
    return this.cluster.node(name).child?.pid;
  }

  peerListenPorts(): number[] {
    return this.cluster.nodes.map((node) => node.peerListenPort);
  }

  healthTargets(): { name: string; url: string; headers: Record<string, string> }[] {
    const headers = this.cluster.adminHeaders();
    return this.cluster.nodes
      .filter((node) => this.cluster.isReady(node.nodeId))
      .map((node) => ({ name: node.nodeId, url: node.url, headers }));
  }

  dataDirectoryOf(name: string): string {
    return this.cluster.node(name).dataDirectory;
  }

  dataFolderNames(): string[] {
    return this.cluster.nodes.map((node) => node.nodeId);
  }

  plantLyingDisks(): Promise<void> {
    return this.cluster.plantLyingDisks(this.cluster.nodes.map((node) => node.nodeId));
  }
}
