/**
 * Counts peer connections that did not pass through the fault proxy. Every replica advertises a
 * proxy port, so every peer connection should reach a replica's real peer listener from one of the
 * proxy's own sockets; a connection from any other port bypasses the proxy, and a partition set on
 * the proxy does not cut it (it becomes one-way, or no partition at all).
 *
 * The kernel's table of TCP connections (`/proc/net/tcp`, Linux) is read every `intervalMs`: each
 * established connection whose local port is a replica's real peer port must be one of the proxy's
 * open sockets to that port. One that is still unexplained on the next reading (the proxy learns
 * its socket's port a moment after the kernel connects it) is counted once.
 */
import { readFile } from 'node:fs/promises';
import { upstreamLinkKey } from './fault-network.js';

export interface TcpConnection {
  readonly localPort: number;
  readonly remotePort: number;
}

export interface Bypass {
  readonly listenPort: number;
  readonly remotePort: number;
  /** When it was counted, in seconds on the run's clock. */
  readonly seenSeconds: number;
}

export interface BypassWatchOptions {
  /** The real peer listen ports of the replicas of the moment. */
  readonly listenPorts: () => Iterable<number>;
  /** The proxy's open sockets to real listeners, as `upstreamLinkKey(localPort, listenPort)`. */
  readonly proxyConnections: () => ReadonlySet<string>;
  readonly nowSeconds: () => number;
  readonly intervalMs?: number;
  /** The kernel's table; /proc/net/tcp by default. */
  readonly readTable?: () => Promise<string>;
}

const intervalMsDefault = 250;
/** TCP_ESTABLISHED in /proc/net/tcp. */
const establishedState = '01';

/** The established IPv4 connections of a /proc/net/tcp table. */
export function establishedConnections(table: string): TcpConnection[] {
  const connections: TcpConnection[] = [];
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [local, remote, state] = [fields[1], fields[2], fields[3]];
    if (local === undefined || remote === undefined || state !== establishedState) continue;
    const localPort = Number.parseInt(local.split(':')[1] ?? '', 16);
    const remotePort = Number.parseInt(remote.split(':')[1] ?? '', 16);
    if (Number.isInteger(localPort) && Number.isInteger(remotePort))
      connections.push({ localPort, remotePort });
  }
  return connections;
}

export class BypassWatch {
  /** Connections to a real peer listener that did not come from the proxy, each counted once. */
  readonly bypasses: Bypass[] = [];
  /** Why the watch could not run (no /proc/net/tcp); undefined while it can. */
  unavailable: string | undefined;
  private readonly suspects = new Set<string>();
  private readonly counted = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(private readonly options: BypassWatchOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      this.reading = this.reading.then(() => this.poll());
    }, this.options.intervalMs ?? intervalMsDefault);
  }

  /** Stops watching after one last reading. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.reading;
    await this.poll();
  }

  /** Reads the table once (exposed for tests). */
  async poll(): Promise<void> {
    if (this.unavailable !== undefined) return;
    let table: string;
    try {
      table = await (this.options.readTable ?? (() => readFile('/proc/net/tcp', 'utf8')))();
    } catch (error) {
      this.unavailable = `cannot read the TCP table: ${(error as Error).message}`;
      return;
    }
    const listenPorts = new Set(this.options.listenPorts());
    const proxyConnections = this.options.proxyConnections();
    const suspects = new Set<string>();
    for (const connection of establishedConnections(table)) {
      if (!listenPorts.has(connection.localPort)) continue;
      if (proxyConnections.has(upstreamLinkKey(connection.remotePort, connection.localPort))) continue;
      const key = `${connection.localPort}<-${connection.remotePort}`;
      if (this.counted.has(key)) continue;
      if (this.suspects.has(key)) {
        this.counted.add(key);
        this.bypasses.push({
          listenPort: connection.localPort,
          remotePort: connection.remotePort,
          seenSeconds: this.options.nowSeconds(),
        });
      } else {
        suspects.add(key);
      }
    }
    this.suspects.clear();
    for (const key of suspects) this.suspects.add(key);
  }
}
