/**
 * Clients of the node simulator. Each client runs one operation at a time against one group, as
 * the gateway would: it sends a write or a linearizable read to the node it believes leads the
 * group, follows NOT_LEADER hints, and retries a write under the same request id (so that the
 * state machine applies it once) until its deadline. Every operation is recorded in the history
 * the linearizability checker reads: `ok` with what it saw, `fail` when it certainly did not take
 * effect, `info` when its fate is unknown (its deadline passed).
 */
import type { HistoryEvent } from '@impulse/common';
import type { Prng } from '../prng.js';
import type { Replica } from '../../replica/index.js';
import { NodeClock, type SimTime } from './sim-clock.js';

export interface SimClientsOptions {
  readonly groups: readonly string[];
  readonly clientsPerGroup: number;
  readonly keysPerGroup: number;
  /** How long a client keeps retrying one operation before its outcome is unknown. */
  readonly operationDeadlineMs: number;
  /** Pause between two attempts of one operation (a leader being elected). */
  readonly retryPauseMs: number;
  /** Pause between two operations of one client, drawn from [0, thinkMsMax]. */
  readonly thinkMsMax: number;
  readonly readFraction: number;
  readonly deleteFraction: number;
  /**
   * A group whose clients stop after `afterMs` of load: an idle group, whose entries stay in its
   * nodes' logs until the node asks it to compact (`node/log-purge.ts`). The final reads check
   * that what it took before survived.
   */
  readonly quiet?: { readonly group: string; readonly afterMs: number };
}

/** Where the clients find a group's replicas: the running ones, by node name. */
export interface ReplicaDirectory {
  nodeNames(): readonly string[];
  replicaOf(node: string, group: string): Replica | undefined;
}

/** The first client id of targeted schedules' probes (below the final reads' `1_000_000`). */
export const probeClientFirst = 500_000;

export interface ClientCounters {
  ok: number;
  failed: number;
  unknown: number;
  attempts: number;
}

export class SimClients {
  readonly history: HistoryEvent[] = [];
  readonly counters: ClientCounters = { ok: 0, failed: 0, unknown: 0, attempts: 0 };
  private readonly clock: NodeClock;
  private running = false;
  private readonly loops: Promise<void>[] = [];
  private writeCounter = 0;
  /** The node each group's clients last found leading it. */
  private readonly leaderHint = new Map<string, string>();

  constructor(
    private readonly options: SimClientsOptions,
    time: SimTime,
    private readonly prng: Prng,
    private readonly directory: ReplicaDirectory,
  ) {
    this.clock = new NodeClock(time, 0);
  }

  keysOf(group: string): string[] {
    return Array.from({ length: this.options.keysPerGroup }, (_, index) => `${group}/k${index}`);
  }

  /** Starts every client's loop; `stop` ends them after their current operation. */
  start(): void {
    this.running = true;
    let client = 0;
    for (const group of this.options.groups) {
      for (let index = 0; index < this.options.clientsPerGroup; index++) {
        this.loops.push(this.loop(client++, group));
      }
    }
  }

  /** Ends the loops; resolves once every operation in flight ended (or hit its deadline). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops.splice(0));
  }

  /** One linearizable read of every key of every group, recorded, by fresh clients: the final state. */
  async readAll(): Promise<void> {
    let client = 1_000_000;
    await Promise.all(
      this.options.groups.flatMap((group) =>
        this.keysOf(group).map((key) => this.read(client++, group, key)),
      ),
    );
  }

  /**
   * One operation of a targeted schedule's probe client (ids from `probeClientFirst`), at `node`
   * only: no leader hints, no retries, one attempt until `deadlineMs` passes. Recorded in the
   * history like any other, so that the checker judges it: a schedule writes a key through a new
   * leader, then reads it at a leader that was deposed meanwhile. Resolves with the outcome.
   */
  async probe(
    client: number,
    group: string,
    node: string,
    operation:
      | { readonly f: 'put'; readonly key: string; readonly value: string }
      | { readonly f: 'get'; readonly key: string },
    deadlineMs: number,
  ): Promise<{ readonly ok: boolean; readonly value?: string | null }> {
    const replica = this.directory.replicaOf(node, group);
    if (operation.f === 'put') {
      const { key, value } = operation;
      this.record({ client, type: 'invoke', f: 'put', key, value });
      const result =
        replica === undefined
          ? ({ state: 'error', error: undefined } as const)
          : await this.withDeadline(
              calling(() =>
                replica.write({
                  operation: 'put',
                  requestId: Buffer.from(`probe${client}-w${this.writeCounter++}`),
                  key,
                  value: Buffer.from(value),
                }),
              ),
              deadlineMs,
            );
      // Only `ok` is certain: a refused write may still be in a log.
      this.record({ client, type: result.state === 'ok' ? 'ok' : 'info', f: 'put', key });
      return { ok: result.state === 'ok' };
    }
    const { key } = operation;
    this.record({ client, type: 'invoke', f: 'get', key });
    const result =
      replica === undefined
        ? ({ state: 'error', error: undefined } as const)
        : await this.withDeadline(
            calling(() => replica.read(key, 'linearizable')),
            deadlineMs,
          );
    if (result.state !== 'ok') {
      this.record({ client, type: 'fail', f: 'get', key });
      return { ok: false };
    }
    const value = result.value === undefined ? null : result.value.toString();
    this.record({ client, type: 'ok', f: 'get', key, value });
    return { ok: true, value };
  }

  private async loop(client: number, group: string): Promise<void> {
    const keys = this.keysOf(group);
    const quiet = this.options.quiet;
    const quietAtMs = quiet?.group === group ? this.clock.nowMs() + quiet.afterMs : Infinity;
    while (this.running && this.clock.nowMs() < quietAtMs) {
      const key = keys[this.prng.int(keys.length)] as string;
      const draw = this.prng.next();
      if (draw < this.options.readFraction) await this.read(client, group, key);
      else if (draw < this.options.readFraction + this.options.deleteFraction)
        await this.write(client, group, key, null);
      else await this.write(client, group, key, `${client}-${this.writeCounter++}`);
      await this.sleep(this.prng.int(this.options.thinkMsMax + 1));
    }
  }

  private async write(client: number, group: string, key: string, value: string | null): Promise<void> {
    const f = value === null ? 'delete' : 'put';
    this.record({ client, type: 'invoke', f, key, ...(value === null ? {} : { value }) });
    const requestId = Buffer.from(`c${client}-w${this.writeCounter++}`);
    const outcome = await this.attempt(group, (replica) =>
      value === null
        ? replica.write({ operation: 'delete', requestId, key })
        : replica.write({ operation: 'put', requestId, key, value: Buffer.from(value) }),
    );
    // A write whose every attempt was refused before it reached a log may still not be known
    // to have failed: an attempt that timed out may apply later. Only `ok` is certain.
    if (outcome.ok) this.record({ client, type: 'ok', f, key });
    else this.record({ client, type: 'info', f, key });
  }

  private async read(client: number, group: string, key: string): Promise<void> {
    this.record({ client, type: 'invoke', f: 'get', key });
    const outcome = await this.attempt(group, (replica) => replica.read(key, 'linearizable'));
    if (outcome.ok) {
      const value = outcome.value === undefined ? null : outcome.value.toString();
      this.record({ client, type: 'ok', f: 'get', key, value });
    } else {
      // A read that saw nothing changed nothing.
      this.record({ client, type: 'fail', f: 'get', key });
    }
  }

  /**
   * Tries `call` on the node believed to lead `group`, following NOT_LEADER hints and else trying
   * the nodes in turn, until it succeeds or the deadline passes.
   */
  private async attempt<T>(
    group: string,
    call: (replica: Replica) => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false }> {
    const deadlineMs = this.clock.nowMs() + this.options.operationDeadlineMs;
    const nodes = this.directory.nodeNames();
    while (this.clock.nowMs() < deadlineMs) {
      const hinted = this.leaderHint.get(group);
      const node =
        hinted !== undefined && nodes.includes(hinted)
          ? hinted
          : (nodes[this.prng.int(nodes.length)] as string);
      const replica = this.directory.replicaOf(node, group);
      if (replica !== undefined) {
        this.counters.attempts++;
        const result = await this.withDeadline(call(replica), deadlineMs - this.clock.nowMs());
        if (result.state === 'ok') {
          this.leaderHint.set(group, node);
          this.counters.ok++;
          return { ok: true, value: result.value };
        }
        if (result.state === 'deadline') break;
        const hint = leaderNodeOf(result.error);
        if (hint !== undefined && hint !== node) {
          this.leaderHint.set(group, hint);
          continue;
        }
      }
      this.leaderHint.delete(group);
      await this.sleep(this.options.retryPauseMs);
    }
    this.counters.unknown++;
    return { ok: false };
  }

  /** Races `promise` against the client's own clock: a crashed node never answers. */
  private withDeadline<T>(
    promise: Promise<T>,
    remainingMs: number,
  ): Promise<{ state: 'ok'; value: T } | { state: 'error'; error: unknown } | { state: 'deadline' }> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => resolve({ state: 'deadline' }), Math.max(0, remainingMs));
      promise.then(
        (value) => {
          timer.cancel();
          resolve({ state: 'ok', value });
        },
        (error: unknown) => {
          timer.cancel();
          resolve({ state: 'error', error });
        },
      );
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }

  private record(event: Omit<HistoryEvent, 'time'>): void {
    // The position in the history orders events exactly as they happened, which is all the checker
    // reads of time.
    this.history.push({ ...event, time: this.history.length });
  }
}

/** `call()`, with a synchronous throw turned into a rejection. */
function calling<T>(call: () => Promise<T>): Promise<T> {
  try {
    return call();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The node a NOT_LEADER answer names as leader (replica ids are `<group>@<node>#<raft id>`). */
function leaderNodeOf(error: unknown): string | undefined {
  const details = (error as { details?: { leaderHint?: unknown } } | undefined)?.details;
  const hint = details?.leaderHint;
  if (typeof hint !== 'string') return undefined;
  const match = /@([^#]+)(#|$)/.exec(hint);
  return match?.[1];
}
