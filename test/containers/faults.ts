import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ContainerRuntimeClient, StartedNetwork } from 'testcontainers';
import type { ClusterNode } from './cluster.js';

const execFileAsync = promisify(execFile);

/** A one-way partition in force: packets from `from` are dropped when they reach `to`. */
export interface Partition {
  readonly from: ClusterNode;
  readonly to: ClusterNode;
  /** The address dropped, as it was when the partition was made. */
  readonly fromAddress: string;
  /** The process whose network namespace holds the rule: a restart of `to` takes the rule away. */
  readonly toPid: number;
}

/**
 * Faults injected into the containers of one cluster, for fault tests and, later, the nemesis of
 * the linearizability workload. Each fault has its undo (kill/restart, pause/unpause,
 * disconnect/reconnect, partitionOneWay/heal), and `healAll()` undoes whatever is still in force,
 * so a workload can end every run on a whole cluster.
 *
 * Partitions are iptables rules in the target container's network namespace, entered with nsenter
 * from the host: the image has no shell and no iptables, on purpose. That needs root, nsenter and
 * iptables on the host, and a Docker engine on this machine (container pids are host pids).
 */
export class Faults {
  private readonly partitions: Partition[] = [];
  private readonly paused = new Set<ClusterNode>();
  private readonly disconnected = new Set<ClusterNode>();
  private readonly killed = new Set<ClusterNode>();

  constructor(
    private readonly client: ContainerRuntimeClient,
    private readonly network: StartedNetwork,
  ) {}

  /** SIGKILL: the process gets no chance to flush or close anything, like a power cut. */
  async kill(node: ClusterNode): Promise<void> {
    await this.dockerContainer(node).kill({ signal: 'SIGKILL' });
    await this.waitUntil(node, (state) => !state.Running, 'to stop');
    this.killed.add(node);
  }

  /**
   * Starts a node again (after kill, or restarts a running one) and waits until it answers
   * /readyz. Its volume, name and network aliases are the same as before; its address and mapped
   * port may change.
   */
  async restart(node: ClusterNode): Promise<void> {
    await node.container.restart();
    this.killed.delete(node);
  }

  /** Freezes every process of the node (cgroup freezer): connections stay open, nothing answers. */
  async pause(node: ClusterNode): Promise<void> {
    await this.dockerContainer(node).pause();
    this.paused.add(node);
  }

  async unpause(node: ClusterNode): Promise<void> {
    await this.dockerContainer(node).unpause();
    this.paused.delete(node);
  }

  /** Takes the node off the cluster network: its aliases stop resolving, its address goes away. */
  async disconnect(node: ClusterNode): Promise<void> {
    await this.dockerNetwork().disconnect({ Container: node.container.getId(), Force: true });
    this.disconnected.add(node);
  }

  /** Puts the node back on the cluster network under the same aliases. */
  async reconnect(node: ClusterNode): Promise<void> {
    await this.dockerNetwork().connect({
      Container: node.container.getId(),
      EndpointConfig: { Aliases: [...node.aliases] },
    });
    this.disconnected.delete(node);
  }

  /**
   * Drops, at `to`, every packet that comes from `from`; packets from `to` to `from` still leave.
   * (Over TCP that still breaks connections both ways, since the answers are dropped: this is the
   * packet-level one-way partition Jepsen uses.) Call it twice, crossed, for a full partition.
   */
  async partitionOneWay(from: ClusterNode, to: ClusterNode): Promise<Partition> {
    const fromAddress = await this.addressOf(from);
    const toPid = await this.pidOf(to);
    await iptablesIn(toPid, ['-A', 'INPUT', '-s', fromAddress, '-j', 'DROP']);
    const partition: Partition = { from, to, fromAddress, toPid };
    this.partitions.push(partition);
    return partition;
  }

  /** How many packets a partition has dropped so far: proof that it is in force. */
  async droppedPackets(partition: Partition): Promise<number> {
    const { stdout } = await iptablesIn(partition.toPid, ['-L', 'INPUT', '-n', '-v', '-x']);
    // Lines read "pkts bytes target prot opt in out source destination".
    for (const line of stdout.split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields[2] === 'DROP' && fields[7] === partition.fromAddress) return Number(fields[0]);
    }
    throw new Error(`no DROP rule for ${partition.fromAddress} at ${partition.to.name}`);
  }

  /** Removes every partition still in force (a restarted target has already lost its rules). */
  async heal(): Promise<void> {
    while (this.partitions.length > 0) {
      const partition = this.partitions.pop();
      if (partition === undefined) break;
      const state = (await this.dockerContainer(partition.to).inspect()).State;
      if (!state.Running || state.Pid !== partition.toPid) continue;
      await iptablesIn(partition.toPid, ['-D', 'INPUT', '-s', partition.fromAddress, '-j', 'DROP']);
    }
  }

  /** Undoes every fault still in force: heals, unpauses, reconnects, restarts. */
  async healAll(): Promise<void> {
    await this.heal();
    for (const node of [...this.paused]) await this.unpause(node);
    for (const node of [...this.disconnected]) await this.reconnect(node);
    for (const node of [...this.killed]) await this.restart(node);
  }

  /** The node's address on the cluster network, read now (it can change on restart or reconnect). */
  async addressOf(node: ClusterNode): Promise<string> {
    const info = await this.dockerContainer(node).inspect();
    const address = info.NetworkSettings.Networks[this.network.getName()]?.IPAddress;
    if (address === undefined || address === '') {
      throw new Error(`${node.name} has no address on ${this.network.getName()} (disconnected or stopped?)`);
    }
    return address;
  }

  /** The host pid of the node's main process (its network namespace is the container's). */
  async pidOf(node: ClusterNode): Promise<number> {
    const state = (await this.dockerContainer(node).inspect()).State;
    if (!state.Running || state.Pid <= 0) throw new Error(`${node.name} is not running`);
    return state.Pid;
  }

  private async waitUntil(
    node: ClusterNode,
    predicate: (state: { Running: boolean; Paused: boolean }) => boolean,
    what: string,
    timeoutMs = 10_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = (await this.dockerContainer(node).inspect()).State;
      if (predicate(state)) return;
      if (Date.now() > deadline) throw new Error(`${node.name} did not get ${what} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private dockerContainer(node: ClusterNode) {
    return this.client.container.getById(node.container.getId());
  }

  private dockerNetwork() {
    return this.client.network.getById(this.network.getId());
  }
}

/**
 * Runs a host program inside the network namespace of a process (a container's pid, from
 * `docker inspect`): how the suite reaches into containers that have no shell.
 */
export async function runInNetworkNamespace(
  pid: number,
  command: string,
  args: readonly string[],
  timeoutMs = 10_000,
): Promise<{ stdout: string; stderr: string }> {
  return execFileAsync('nsenter', ['--target', String(pid), '--net', command, ...args], {
    timeout: timeoutMs,
  });
}

/** Runs the host's iptables inside a process's network namespace. */
export async function iptablesIn(pid: number, args: readonly string[]): Promise<{ stdout: string }> {
  try {
    return await runInNetworkNamespace(pid, 'iptables', ['-w', ...args]);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(
      code === 'ENOENT'
        ? 'partitions need nsenter (util-linux) and iptables on the host: apt-get install -y iptables'
        : `iptables ${args.join(' ')} in the namespace of pid ${pid} failed (root and a local ` +
            `Docker engine are needed): ${stderr.trim() || String(error)}`,
      { cause: error },
    );
  }
}
