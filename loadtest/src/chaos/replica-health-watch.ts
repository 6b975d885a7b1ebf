/**
 * Watches the nodes for replicas that stopped while their node runs on. A node contains a
 * replica's failure (a failed log write or apply, a failed invariant, a replica that cannot start
 * after a power cut): it stops that replica, answers `REPLICA_FAILED` for its group, stays ready
 * (`degraded`), and serves its other groups. No process exits, so the watch on unexpected exits
 * never sees it, and the group may well go on serving from its other replicas: without this watch
 * such a failure would pass unnoticed. A replica whose state machine met a storage fault
 * (`storage-fault`) is counted too: it no longer applies, which under power cuts means that a
 * cut left its storage in a state it cannot read.
 *
 * Every `intervalMs` each running node's `/admin/status` is read; a node that does not answer
 * (killed, paused, starting) is skipped until it does. Each replica found unhealthy is recorded
 * once per kind of failure.
 */

export interface ReplicaFailure {
  /** The node that hosts it. */
  readonly node: string;
  readonly groupId: string;
  readonly replicaId: string;
  /** `failed` or `storage-fault`, as the node's status says. */
  readonly health: string;
  readonly message: string;
  /** When it was first seen, in seconds on the run's clock. */
  readonly seenSeconds: number;
}

export interface ReplicaHealthWatchOptions {
  /** The nodes to ask now: their names, client URLs, and the headers (the admin token's) to ask with. */
  readonly nodes: () => readonly {
    readonly name: string;
    readonly url: string;
    readonly headers?: Readonly<Record<string, string>>;
  }[];
  readonly nowSeconds: () => number;
  readonly onFailure?: (failure: ReplicaFailure) => void;
  readonly intervalMs?: number;
  /** A node's `/admin/status` answer, or undefined when it does not answer (tests replace it). */
  readonly readStatus?: (url: string, headers: Readonly<Record<string, string>>) => Promise<unknown>;
}

const intervalMsDefault = 1_000;
const statusTimeoutMs = 1_000;

/** One hosted replica as a node's `/admin/status` lists it. */
interface ReportedReplica {
  readonly groupId?: unknown;
  readonly replicaId?: unknown;
  readonly health?: unknown;
  readonly message?: unknown;
  readonly code?: unknown;
  readonly storageFault?: unknown;
}

export class ReplicaHealthWatch {
  readonly failures: ReplicaFailure[] = [];
  private readonly seen = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(private readonly options: ReplicaHealthWatchOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      this.reading = this.reading.then(() => this.poll());
    }, this.options.intervalMs ?? intervalMsDefault);
    // A run that fails before stop() must still be able to exit.
    this.timer.unref();
  }

  /** Stops watching after one last reading. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.reading;
    await this.poll();
  }

  /** Reads every node's status once (exposed for tests). */
  async poll(): Promise<void> {
    const readStatus = this.options.readStatus ?? readNodeStatus;
    await Promise.all(
      this.options.nodes().map(async (node) => {
        const status = (await readStatus(node.url, node.headers ?? {}).catch(() => undefined)) as
          { replicas?: readonly ReportedReplica[] } | undefined;
        for (const replica of status?.replicas ?? []) this.check(node.name, replica);
      }),
    );
  }

  private check(node: string, replica: ReportedReplica): void {
    const health = typeof replica.health === 'string' ? replica.health : 'unknown';
    if (health === 'running') return;
    const groupId = String(replica.groupId);
    // A failed replica is listed by its group alone.
    const replicaId = typeof replica.replicaId === 'string' ? replica.replicaId : `the replica of ${groupId}`;
    const key = `${node}/${replicaId}/${health}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    const message =
      typeof replica.message === 'string'
        ? `${typeof replica.code === 'string' ? `${replica.code}: ` : ''}${replica.message}`
        : replica.storageFault === undefined || replica.storageFault === null
          ? ''
          : JSON.stringify(replica.storageFault);
    const failure: ReplicaFailure = {
      node,
      groupId,
      replicaId,
      health,
      message,
      seenSeconds: this.options.nowSeconds(),
    };
    this.failures.push(failure);
    this.options.onFailure?.(failure);
  }
}

/**
 * A node's status. An error answer (a refused admin token, say) throws, as no answer does:
 * neither is a status, and an error body must not pass for a node with no replica to report.
 */
async function readNodeStatus(url: string, headers: Readonly<Record<string, string>>): Promise<unknown> {
  const response = await fetch(`${url}/admin/status`, {
    headers,
    signal: AbortSignal.timeout(statusTimeoutMs),
  });
  const body = (await response.json()) as unknown;
  if (response.status !== 200) throw new Error(`GET /admin/status answered ${response.status}`);
  return body;
}

/** One line for a failure: `g1-r2 on n3: failed at 12.5 s: <message>`. */
export function describeReplicaFailure(failure: ReplicaFailure): string {
  return `${failure.replicaId} on ${failure.node}: ${failure.health} at ${failure.seenSeconds.toFixed(1)} s${failure.message === '' ? '' : `: ${failure.message}`}`;
}
