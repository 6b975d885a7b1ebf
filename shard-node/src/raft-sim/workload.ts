/**
 * Simulated clients: each issues put, delete and get operations on a small key set, one at a time,
 * to a replica it believes is the leader, and records every invocation and completion in a
 * history for the linearizability checker. Reads go through ReadIndex or through the log.
 *
 * An operation without an answer before its deadline is recorded as `info` (it may or may not
 * have taken effect); the client then continues under a new history id, as its old operation may
 * still be in flight. Like a real client, it backs off after timeouts (exponentially, up to
 * `backoffTicksMax`): clients that fire write after write into an unavailable group pile up
 * hundreds of indeterminate operations on one key, which no client would do and which makes the
 * linearizability search explode without testing anything more.
 */
import type { NodeId } from '../raft/index.js';
import type { SimHistoryEvent as HistoryEvent } from './history-checker.js';
import type { KvCommand } from './kv-state-machine.js';
import type { Prng } from './prng.js';

export interface WorkloadOptions {
  readonly clientCount: number;
  readonly keys: readonly string[];
  /** Ticks a client waits for an answer before recording `info`. */
  readonly requestTimeoutTicks: number;
  /** Probability that an idle client starts an operation in a tick. */
  readonly issueProbability: number;
  /** Share of gets served by ReadIndex (the rest go through the log). */
  readonly readIndexShare: number;
}

/** How clients reach replicas; `false` means the replica refused at once (certainly no effect). */
export interface ClientTransport {
  /** A replica the client would contact: the leader it has heard of, else any live replica. */
  chooseReplica(): NodeId | undefined;
  propose(nodeId: NodeId, command: KvCommand): boolean;
  readIndex(nodeId: NodeId, requestId: number): boolean;
}

interface PendingOperation {
  readonly historyClient: number;
  readonly requestId: number;
  readonly f: 'get' | 'put' | 'delete';
  readonly key: string;
  readonly nodeId: NodeId;
  readonly deadlineTick: number;
}

/** The longest a client waits after timeouts before trying again. */
const backoffTicksMax = 400;

export class Workload {
  readonly history: HistoryEvent[] = [];
  operationsInvoked = 0;
  operationsOk = 0;
  private readonly pendingBySlot: (PendingOperation | undefined)[];
  private readonly slotByRequest = new Map<number, number>();
  private readonly historyClientBySlot: number[];
  /** The tick before which a client that timed out issues nothing, and its timeouts in a row. */
  private readonly idleUntilTickBySlot: number[];
  private readonly timeoutsInARowBySlot: number[];
  private nextHistoryClient: number;
  private eventTime = 0;
  private stopped = false;

  constructor(
    private readonly prng: Prng,
    private readonly options: WorkloadOptions,
    private readonly nextRequestId: () => number,
  ) {
    this.pendingBySlot = new Array<PendingOperation | undefined>(options.clientCount).fill(undefined);
    this.historyClientBySlot = Array.from({ length: options.clientCount }, (_, slot) => slot);
    this.idleUntilTickBySlot = new Array<number>(options.clientCount).fill(0);
    this.timeoutsInARowBySlot = new Array<number>(options.clientCount).fill(0);
    this.nextHistoryClient = options.clientCount;
  }

  /** Clients start no new operation after this (the run is settling). */
  stop(): void {
    this.stopped = true;
  }

  /** Expires overdue operations and lets idle clients start new ones. */
  step(nowTick: number, transport: ClientTransport): void {
    for (let slot = 0; slot < this.options.clientCount; slot += 1) {
      const pending = this.pendingBySlot[slot];
      if (pending !== undefined && nowTick >= pending.deadlineTick) {
        this.complete(slot, pending, 'info', undefined);
        this.historyClientBySlot[slot] = this.nextHistoryClient;
        this.nextHistoryClient += 1;
        const timeouts = (this.timeoutsInARowBySlot[slot] ?? 0) + 1;
        this.timeoutsInARowBySlot[slot] = timeouts;
        const backoffTicks = Math.min(
          backoffTicksMax,
          this.options.requestTimeoutTicks * 2 ** (timeouts - 1),
        );
        this.idleUntilTickBySlot[slot] = nowTick + backoffTicks;
      }
      if (
        this.pendingBySlot[slot] === undefined &&
        !this.stopped &&
        nowTick >= (this.idleUntilTickBySlot[slot] ?? 0) &&
        this.prng.chance(this.options.issueProbability)
      ) {
        this.issue(slot, nowTick, transport);
      }
    }
  }

  /** A replica applied a command; answers its client if it asked that replica. */
  onApplied(nodeId: NodeId, requestId: number, value: string | null): void {
    const slot = this.slotByRequest.get(requestId);
    if (slot === undefined) return;
    const pending = this.pendingBySlot[slot]!;
    if (pending.nodeId !== nodeId) return;
    this.complete(slot, pending, 'ok', pending.f === 'get' ? value : undefined);
  }

  private issue(slot: number, nowTick: number, transport: ClientTransport): void {
    const nodeId = transport.chooseReplica();
    if (nodeId === undefined) return;
    const requestId = this.nextRequestId();
    const key = this.prng.pick(this.options.keys);
    const roll = this.prng.next();
    const f = roll < 0.4 ? 'put' : roll < 0.55 ? 'delete' : 'get';
    const value = `v${requestId}`;
    const pending: PendingOperation = {
      historyClient: this.historyClientBySlot[slot]!,
      requestId,
      f,
      key,
      nodeId,
      deadlineTick: nowTick + this.options.requestTimeoutTicks,
    };
    this.pendingBySlot[slot] = pending;
    this.slotByRequest.set(requestId, slot);
    this.operationsInvoked += 1;
    this.record({ client: pending.historyClient, type: 'invoke', f, key, ...(f === 'put' ? { value } : {}) });
    let accepted: boolean;
    if (f === 'get' && this.prng.chance(this.options.readIndexShare)) {
      accepted = transport.readIndex(nodeId, requestId);
    } else if (f === 'put') {
      accepted = transport.propose(nodeId, { requestId, op: 'put', key, value });
    } else {
      accepted = transport.propose(nodeId, { requestId, op: f, key });
    }
    // The replica may have answered already (a read served at once); then nothing is pending.
    if (!accepted && this.pendingBySlot[slot] === pending) this.complete(slot, pending, 'fail', undefined);
  }

  private complete(
    slot: number,
    pending: PendingOperation,
    type: 'ok' | 'fail' | 'info',
    value: string | null | undefined,
  ): void {
    this.pendingBySlot[slot] = undefined;
    this.slotByRequest.delete(pending.requestId);
    if (type === 'ok') this.operationsOk += 1;
    if (type !== 'info') this.timeoutsInARowBySlot[slot] = 0;
    this.record({
      client: pending.historyClient,
      type,
      f: pending.f,
      key: pending.key,
      ...(value === undefined ? {} : { value }),
    });
  }

  /** Events are stamped with a counter: the simulation is sequential, so it is real-time order. */
  private record(event: Omit<HistoryEvent, 'time'>): void {
    this.eventTime += 1;
    this.history.push({ ...event, time: this.eventTime });
  }

  /** The key a pending read asks for (replicas serve confirmed reads through this). */
  keyOf(requestId: number): string | undefined {
    const slot = this.slotByRequest.get(requestId);
    return slot === undefined ? undefined : this.pendingBySlot[slot]?.key;
  }
}
