import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ContainerRuntimeClient, StartedNetwork } from 'testcontainers';
import type { ClusterContainer } from './cluster.js';

const execFileAsync = promisify(execFile);

/** A one-way partition in force: packets from `from` are dropped when they reach `to`. */
export interface Partition {
  readonly from: ClusterContainer;
  readonly to: ClusterContainer;
  /** The address dropped, as it was when the partition was made. */
  readonly fromAddress: string;
  /** The process whose network namespace holds the rule: a restart of `to` takes the rule away. */
  readonly toPid: number;
}

/**
 * Faults injected into the containers of one cluster, for the fault tests and the nemesis of the
 * linearizability workload. A fault of a node container hits every replica the node hosts, as a
 * machine's failure does in production. Each fault has its undo (kill/restart, pause/unpause,
 * disconnect/reconnect, partitionOneWay/heal), and `healAll()` undoes whatever is still in force,
 * so a workload can end every run on a whole cluster.
 *
 * Partitions are iptables rules in the target container's network namespace, entered with nsenter
 * from the host: the image has no shell and no iptables, on purpose. That needs root, nsenter and
 * iptables on the host, and a Docker engine on this machine (container pids are host pids).
 */
export class Faults {
  private readonly partitions: Partition[] = [];
  private readonly paused = new Set<ClusterContainer>();
  private readonly disconnected = new Set<ClusterContainer>();
  private readonly killed = new Set<ClusterContainer>();

  constructor(
    private readonly client: ContainerRuntimeClient,
    private readonly network: StartedNetwork,
  ) {}

  /** SIGKILL: the process gets no chance to flush or close anything, like a power cut. */
  async kill(target: ClusterContainer): Promise<void> {
    await this.dockerContainer(target).kill({ signal: 'SIGKILL' });
    await this.waitUntil(target, (state) => !state.Running, 'to stop');
    this.killed.add(target);
  }

  /**
   * Starts a container again (after kill, or restarts a running one) and waits until it answers
   * /readyz. Its volume, name and network aliases are the same as before; its address and mapped
   * port may change.
   */
  async restart(target: ClusterContainer): Promise<void> {
    await target.container.restart();
    this.killed.delete(target);
  }

  /** Freezes every process of the container (cgroup freezer): connections stay open, nothing answers. */
  async pause(target: ClusterContainer): Promise<void> {
    await this.dockerContainer(target).pause();
    this.paused.add(target);
  }

  async unpause(target: ClusterContainer): Promise<void> {
    await this.dockerContainer(target).unpause();
    this.paused.delete(target);
  }

  /** Takes the container off the cluster network: its aliases stop resolving, its address goes away. */
  async disconnect(target: ClusterContainer): Promise<void> {
    await this.dockerNetwork().disconnect({ Container: target.container.getId(), Force: true });
    this.disconnected.add(target);
  }

  /** Puts the container back on the cluster network under the same aliases. */
  async reconnect(target: ClusterContainer): Promise<void> {
    await this.dockerNetwork().connect({
      Container: target.container.getId(),
      EndpointConfig: { Aliases: [...target.aliases] },
    });
    this.disconnected.delete(target);
  }

  /**
   * Drops, at `to`, every packet that comes from `from`; packets from `to` to `from` still leave.
   * (Over TCP that still breaks connections both ways, since the answers are dropped: this is the
   * packet-level one-way partition Jepsen uses.) Call it twice, crossed, for a full partition.
   */
  async partitionOneWay(from: ClusterContainer, to: ClusterContainer): Promise<Partition> {
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
    for (const target of [...this.paused]) await this.unpause(target);
    for (const target of [...this.disconnected]) await this.reconnect(target);
    for (const target of [...this.killed]) await this.restart(target);
  }

  /** The container's address on the cluster network, read now (it can change on restart or reconnect). */
  async addressOf(target: ClusterContainer): Promise<string> {
    const info = await this.dockerContainer(target).inspect();
    const address = info.NetworkSettings.Networks[this.network.getName()]?.IPAddress;
    if (address === undefined || address === '') {
      throw new Error(
        `${target.name} has no address on ${this.network.getName()} (disconnected or stopped?)`,
      );
    }
    return address;
  }

  /** The host pid of the container's main process (its network namespace is the container's). */
  async pidOf(target: ClusterContainer): Promise<number> {
    const state = (await this.dockerContainer(target).inspect()).State;
    if (!state.Running || state.Pid <= 0) throw new Error(`${target.name} is not running`);
    return state.Pid;
  }

  private async waitUntil(
    target: ClusterContainer,
    predicate: (state: { Running: boolean; Paused: boolean }) => boolean,
    what: string,
    timeoutMs = 10_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = (await this.dockerContainer(target).inspect()).State;
      if (predicate(state)) return;
      if (Date.now() > deadline) throw new Error(`${target.name} did not get ${what} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private dockerContainer(target: ClusterContainer) {
    return this.client.container.getById(target.container.getId());
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
