/**
 * A simulated cluster: replicas, the network between them, the invariant monitor watching them,
 * and the client workload's way in. One `runTick` advances everything by one tick, in a fixed
 * order, so a seed replays exactly.
 */
import {
  MemoryStorage,
  RaftError,
  encodeConfChange,
  silentLogger,
  type ConfChange,
  type ConfChangeV2,
  type Entry,
  type Logger,
  type Message,
  type NodeId,
} from '../raft/index.js';
import { InvariantMonitor } from './invariants.js';
import { encodeCommand, type KvApplyResult, type KvCommand } from './kv-state-machine.js';
import { SimNetwork } from './network.js';
import type { Prng } from './prng.js';
import {
  readContext,
  SimReplica,
  type CrashPoint,
  type ReplicaHost,
  type ReplicaOptions,
} from './replica.js';
import type { ClientTransport, Workload } from './workload.js';

/** How often (ticks) the durable logs of all replicas are compared for log matching. */
const logMatchingCheckPeriodTicks = 25;

export class SimCluster implements ClientTransport {
  readonly network: SimNetwork;
  readonly monitor = new InvariantMonitor();
  /** Every replica ever started, up or crashed; removed replicas are deleted. */
  readonly replicas = new Map<NodeId, SimReplica>();
  nowTick = 0;
  /** Committed proposals applied by some replica (each command counted once). */
  commandsCommitted = 0;
  workload: Workload | undefined;
  /** Test-only, deliberately wrong: answer reads at once from the asked replica's state. */
  unsafeLocalReads = false;
  private readonly crashPoints = new Map<NodeId, CrashPoint>();
  /** Every id ever given to `addReplica`, removed replicas included. */
  private readonly idsStarted = new Set<NodeId>();
  private snapshotReports: { from: NodeId; to: NodeId; succeeded: boolean }[] = [];
  /**
   * Replicas paused, as a stopped process (SIGSTOP, a long GC pause) is: from when, and what
   * reached them meanwhile (peer messages; client requests and local reports, as calls).
   */
  private readonly paused = new Map<
    NodeId,
    { readonly sinceTick: number; readonly messages: Message[]; readonly calls: (() => void)[] }
  >();
  private readonly host: ReplicaHost;
  /** Commands already counted, so that every replica applying one counts it once. */
  private highestCountedIndex = 0;

  constructor(
    private readonly prng: Prng,
    private readonly replicaOptions: ReplicaOptions,
    voters: readonly NodeId[],
    logger: Logger = silentLogger,
  ) {
    this.network = new SimNetwork(prng);
    this.network.onLost = (message) => {
      if (message.type === 'MsgSnap') {
        this.snapshotReports.push({ from: message.from, to: message.to, succeeded: false });
      }
    };
    this.host = this.makeHost(logger);
    for (const id of voters) this.addReplica(id, bootstrapStorage(voters));
  }

  /**
   * Starts a brand-new replica: an initial member with founded storage (`bootstrapStorage`, the
   * host's `--bootstrap`), or a fresh id joining with empty storage (the host's `--join`). An id
   * is never started twice: a replica that lost its storage would vote again in terms it voted
   * in, which the host refuses too (docs/decisions/0009-found-a-group-once.md).
   */
  addReplica(id: NodeId, storage: MemoryStorage = new MemoryStorage()): SimReplica {
    if (this.idsStarted.has(id))
      throw new Error(`sim: replica ${id} was started before; ids are never reused`);
    this.idsStarted.add(id);
    const replica = new SimReplica(id, storage, this.replicaOptions, this.host, this.prng.fork());
    this.replicas.set(id, replica);
    return replica;
  }

  /** Stops a replica for good (it left the cluster); its storage is discarded. */
  destroyReplica(id: NodeId): void {
    this.dropPaused(id);
    this.replicas.get(id)?.crash();
    this.replicas.delete(id);
    this.network.forget(id);
  }

  /** Crashes a replica while it handles its next Ready, at the given point. */
  scheduleCrash(id: NodeId, point: CrashPoint): void {
    this.crashPoints.set(id, point);
  }

  /** Drops crashes scheduled and not yet struck. */
  cancelCrashes(): void {
    this.crashPoints.clear();
  }

  restart(id: NodeId): void {
    const replica = this.replicas.get(id);
    if (replica !== undefined && !replica.isUp) replica.start(this.prng.fork());
  }

  upReplicas(): SimReplica[] {
    return [...this.replicas.values()].filter((replica) => replica.isUp);
  }

  /** Replicas up and not paused. */
  runningReplicas(): SimReplica[] {
    return [...this.replicas.values()].filter((replica) => replica.isUp && !this.paused.has(replica.id));
  }

  /**
   * Pauses a running replica: it neither ticks nor handles input until `resume`. Messages and
   * client requests that reach it meanwhile wait, as in a stopped process's socket buffers.
   */
  pause(id: NodeId): void {
    if (this.replicas.get(id)?.isUp !== true || this.paused.has(id)) return;
    this.paused.set(id, { sinceTick: this.nowTick + 1, messages: [], calls: [] });
  }

  isPaused(id: NodeId): boolean {
    return this.paused.has(id);
  }

  resumeAll(): void {
    for (const id of [...this.paused.keys()]) this.resume(id);
  }

  /** Forgets what waited in a paused replica that crashed; a lost snapshot is reported lost. */
  private dropPaused(id: NodeId): void {
    const held = this.paused.get(id);
    if (held === undefined) return;
    this.paused.delete(id);
    for (const message of held.messages) {
      if (message.type === 'MsgSnap') {
        this.snapshotReports.push({ from: message.from, to: message.to, succeeded: false });
      }
    }
  }

  /**
   * Resumes a paused replica, as the host's monotonic clock does (`MonotonicTicks`): it first
   * ticks the core once per tick it missed, and only then hands it what arrived meanwhile, client
   * requests first, then peer messages. (Their order is arbitrary in a real process; this one is
   * the one that finds a leader answering reads from a lease it no longer holds.) Called before
   * `runTick`, which then runs the replica's tick of this tick as usual.
   */
  resume(id: NodeId): void {
    const held = this.paused.get(id);
    if (held === undefined) return;
    this.paused.delete(id);
    const node = this.replicas.get(id)?.node;
    if (node === undefined) return;
    for (let tick = held.sinceTick; tick <= this.nowTick; tick += 1) node.tick();
    for (const call of held.calls) call();
    for (const message of held.messages) this.deliver(message);
  }

  /** Runs a call now, or when the replica resumes if it is paused. */
  private callOn(id: NodeId, call: () => void): void {
    const held = this.paused.get(id);
    if (held === undefined) call();
    else held.calls.push(call);
  }

  /** The live leader with the highest term, if any (a paused one is not live). */
  leader(): SimReplica | undefined {
    let best: SimReplica | undefined;
    for (const replica of this.runningReplicas()) {
      if (replica.role !== 'leader') continue;
      if (best === undefined || replica.node!.raft.term > best.node!.raft.term) best = replica;
    }
    return best;
  }

  /** Voters in the configuration the current leader has applied (or the initial one). */
  voters(): readonly NodeId[] {
    return (this.leader() ?? this.upReplicas()[0])?.confState.voters ?? [];
  }

  runTick(): void {
    this.nowTick += 1;
    this.workload?.step(this.nowTick, this);
    for (const report of this.snapshotReports) {
      this.callOn(report.from, () =>
        this.replicas.get(report.from)?.node?.reportSnapshot(report.to, report.succeeded),
      );
    }
    this.snapshotReports = [];
    for (const message of this.network.takeDue(this.nowTick)) this.deliver(message);
    for (const replica of this.runningReplicas()) replica.node!.tick();
    for (const replica of this.upReplicas()) {
      const point = this.crashPoints.get(replica.id);
      if (this.paused.has(replica.id)) {
        // A paused process killed: it has no Ready half handled, so nothing more is lost.
        if (point === undefined) continue;
        this.dropPaused(replica.id);
        this.crashPoints.delete(replica.id);
        replica.crash();
      } else {
        this.crashPoints.delete(replica.id);
        replica.handleReadies(point);
      }
      if (!replica.isUp) {
        this.network.forget(replica.id);
        this.monitor.checkAcknowledgedDurable(replica.id, replica.storage.lastIndex(), this.nowTick);
      }
    }
    this.checkLeaderContacts();
    if (this.nowTick % logMatchingCheckPeriodTicks === 0) this.checkLogMatching();
  }

  /** CheckQuorum: every live leader that runs it has heard from a quorum lately (`invariants.ts`). */
  private checkLeaderContacts(): void {
    const boundTicks = 2 * this.replicaOptions.electionTimeoutTicks;
    for (const replica of this.replicas.values()) {
      const raft = replica.node?.raft;
      if (raft === undefined || raft.role !== 'leader' || !raft.config.checkQuorum) {
        this.monitor.forgetLeader(replica.id);
        continue;
      }
      const voters = raft.tracker.config.voters;
      this.monitor.checkLeaderContact(
        replica.id,
        raft,
        raft.term,
        { incoming: voters.incoming.ids, outgoing: voters.outgoing.ids },
        raft.leadTransferee,
        this.nowTick,
        boundTicks,
        this.paused.has(replica.id),
      );
    }
  }

  checkLogMatching(): void {
    const logs = new Map<NodeId, MemoryStorage>();
    for (const replica of this.replicas.values()) logs.set(replica.id, replica.storage);
    this.monitor.checkLogMatching(logs, this.nowTick);
  }

  proposeConfChange(change: ConfChange | ConfChangeV2): boolean {
    const leader = this.leader();
    if (leader === undefined) return false;
    return attempt(() => leader.node!.proposeConfChange(change));
  }

  // ClientTransport

  chooseReplica(): NodeId | undefined {
    const up = this.upReplicas();
    if (up.length === 0) return undefined;
    // Clients are told who leads by the replica they ask, as a real client is redirected.
    const asked = this.prng.pick(up);
    const hinted = this.replicas.get(asked.leaderId);
    return hinted?.isUp === true && this.prng.chance(0.9) ? hinted.id : asked.id;
  }

  propose(nodeId: NodeId, command: KvCommand): boolean {
    const held = this.paused.get(nodeId);
    if (held !== undefined) {
      // The request waits in the paused process; if it is refused then, the client times out.
      held.calls.push(() => this.propose(nodeId, command));
      return true;
    }
    const node = this.replicas.get(nodeId)?.node;
    return node !== undefined && attempt(() => node.propose(encodeCommand(command)));
  }

  readIndex(nodeId: NodeId, requestId: number): boolean {
    const held = this.paused.get(nodeId);
    if (held !== undefined) {
      held.calls.push(() => this.readIndex(nodeId, requestId));
      return true;
    }
    const replica = this.replicas.get(nodeId);
    const key = this.workload?.keyOf(requestId);
    if (this.unsafeLocalReads && replica?.isUp === true && key !== undefined) {
      this.workload?.onApplied(nodeId, requestId, replica.machine.get(key));
      return true;
    }
    const node = replica?.node;
    return node !== undefined && attempt(() => node.readIndex(readContext(requestId)));
  }

  private deliver(message: Message): void {
    const target = this.replicas.get(message.to);
    const held = this.paused.get(message.to);
    if (held !== undefined && target?.isUp === true) {
      held.messages.push(message);
      return;
    }
    const delivered = target?.node !== undefined;
    if (delivered) {
      const raft = target.node!.raft;
      target.node!.step(message);
      if (
        (message.type === 'MsgAppResp' || message.type === 'MsgHeartbeatResp') &&
        raft.role === 'leader' &&
        raft.term === message.term
      ) {
        this.monitor.observeLeaderHeardFrom(message.to, message.term, message.from, this.nowTick);
      }
    }
    if (message.type === 'MsgSnap') {
      this.snapshotReports.push({ from: message.from, to: message.to, succeeded: delivered });
    }
  }

  private makeHost(logger: Logger): ReplicaHost {
    return {
      logger,
      send: (message) => {
        if (message.type === 'MsgAppResp' && !message.reject) {
          this.monitor.observeAcknowledged(message.from, message.index);
        }
        this.network.send(message, this.nowTick);
      },
      onLeader: (nodeId, term, storage) => {
        this.monitor.observeLeader(nodeId, term, this.nowTick);
        this.monitor.checkLeaderCompleteness(nodeId, term, storage, this.nowTick);
      },
      onAppending: (nodeId, storage, entries) => {
        const first = entries[0];
        if (first !== undefined && first.index <= storage.lastIndex()) {
          this.monitor.observeTruncation(nodeId, first.index - 1);
        }
        this.monitor.observeOverwrite(nodeId, storage, entries, this.nowTick);
      },
      onSnapshotPersisting: (nodeId, index) => this.monitor.observeTruncation(nodeId, index),
      onSnapshotApplied: (nodeId, index, term) =>
        this.monitor.observeSnapshotApplied(nodeId, index, term, this.nowTick),
      onApplied: (nodeId, entry: Entry, result: KvApplyResult | undefined) => {
        this.monitor.observeApplied(nodeId, entry, this.nowTick);
        if (entry.index > this.highestCountedIndex) {
          this.highestCountedIndex = entry.index;
          if (result !== undefined && !result.duplicate) this.commandsCommitted += 1;
        }
        if (result !== undefined && !result.duplicate)
          this.workload?.onApplied(nodeId, result.requestId, result.value);
      },
      onReadServed: (nodeId, requestId, read) => {
        const key = this.workload?.keyOf(requestId);
        if (key !== undefined) this.workload?.onApplied(nodeId, requestId, read(key));
      },
    };
  }
}

/**
 * The storage of an initial member, bootstrapped as etcd's `RawNode.Bootstrap` does: the initial
 * configuration is a run of committed conf-change entries at the head of the log, so that a
 * replica that joins later and replays the log from index 1 rebuilds the same configuration
 * (a configuration held only in a snapshot at index 0 would never reach it).
 */
export function bootstrapStorage(voters: readonly NodeId[]): MemoryStorage {
  const storage = new MemoryStorage();
  const bootstrapTerm = 1;
  storage.append(
    voters.map((nodeId, offset) => ({
      term: bootstrapTerm,
      index: offset + 1,
      ...encodeConfChange({ type: 'addNode', nodeId }),
    })),
  );
  storage.setHardState({ term: bootstrapTerm, vote: 0, commit: voters.length });
  return storage;
}

/** Runs a core call that signals a refusal by throwing a RaftError; returns whether it was accepted. */
export function attempt(call: () => void): boolean {
  try {
    call();
    return true;
  } catch (error: unknown) {
    if (error instanceof RaftError) return false;
    throw error;
  }
}
