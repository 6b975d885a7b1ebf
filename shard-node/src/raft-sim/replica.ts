/**
 * One simulated replica: a RawNode, its durable storage (a MemoryStorage that survives crashes),
 * the key-value state machine, and the host loop that processes each Ready in the order its
 * fields prescribe: persist, send, apply, advance.
 */
import {
  type MemoryStorage,
  RawNode,
  decodeConfChange,
  type ConfState,
  type Entry,
  type Logger,
  type Message,
  type NodeId,
  type RaftMutant,
  type Ready,
  type Role,
} from '../raft/index.js';
import { decodeCommand, KvStateMachine, type KvApplyResult } from './kv-state-machine.js';

/** Where a crash strikes while a Ready is being handled (what is lost is what was not persisted). */
export type CrashPoint = 'before-persist' | 'after-persist' | 'after-send';

export interface ReplicaHost {
  readonly logger: Logger;
  send(message: Message): void;
  onLeader(nodeId: NodeId, term: number, storage: MemoryStorage): void;
  /** Called before `entries` are appended to `storage` (they may replace part of its tail). */
  onAppending(nodeId: NodeId, storage: MemoryStorage, entries: readonly Entry[]): void;
  /** Called before a snapshot at `index` replaces the whole log in `storage`. */
  onSnapshotPersisting(nodeId: NodeId, index: number): void;
  onSnapshotApplied(nodeId: NodeId, index: number, term: number): void;
  onApplied(nodeId: NodeId, entry: Entry, result: KvApplyResult | undefined): void;
  /** A confirmed read may be served now; `read` looks a key up in this replica's state. */
  onReadServed(nodeId: NodeId, requestId: number, read: (key: string) => string | null): void;
}

export interface ReplicaOptions {
  readonly electionTimeoutTicks: number;
  readonly heartbeatTicks: number;
  /** Take a snapshot and compact the log every this many applied entries. */
  readonly snapshotEveryEntries: number;
  /** Entries kept in the log behind a snapshot, so that slightly slow followers need none. */
  readonly entriesKeptAfterCompaction: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** How the leader confirms reads; 'leaseBased' requires checkQuorum. */
  readonly readOnlyOption: 'safe' | 'leaseBased';
  /** Small values split appends into many messages and exercise flow control. */
  readonly maxSizePerMessageBytes: number;
  readonly maxInflightMessages: number;
  /**
   * Back-pressure: proposals beyond this many uncommitted payload bytes fail at once. Without it,
   * a slow seed (one entry per message, one message in flight, a lossy network) queues proposals
   * faster than it commits them, every write times out, and the history is all indeterminate.
   */
  readonly maxUncommittedEntriesBytes: number;
  /**
   * Test-only, deliberately wrong: send a Ready's messages before persisting it, so that a crash
   * between the two forgets entries and votes already acknowledged. Proves the checks can fail.
   */
  readonly unsafeSendBeforePersist?: boolean;
  /**
   * Test-only planted bug of the host (`mutants.ts`): send a Ready's acknowledgements (MsgAppResp)
   * before persisting the entries they acknowledge; every other message still goes after.
   */
  readonly ackBeforePersist?: boolean;
  /** Test-only planted bugs of the core (`Config.mutants`). */
  readonly mutants?: readonly RaftMutant[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function readContext(requestId: number): Uint8Array {
  return encoder.encode(String(requestId));
}

export class SimReplica {
  node: RawNode | undefined;
  machine = new KvStateMachine();
  applied = 0;
  confState: ConfState;
  leaderId: NodeId = 0;
  role: Role = 'follower';
  /** Set when a conf change was applied: the next snapshot must not wait for the usual interval. */
  private configurationChanged = false;
  /** Reads confirmed by the leader, waiting for this replica to apply their index. */
  private pendingReads: { requestId: number; index: number }[] = [];

  constructor(
    readonly id: NodeId,
    readonly storage: MemoryStorage,
    private readonly options: ReplicaOptions,
    private readonly host: ReplicaHost,
    random: () => number,
  ) {
    this.confState = storage.snapshot().metadata.confState;
    this.start(random);
  }

  get isUp(): boolean {
    return this.node !== undefined;
  }

  /** Forgets everything not durable: the core, the state machine, pending reads. */
  crash(): void {
    this.node = undefined;
    this.pendingReads = [];
    this.leaderId = 0;
    this.role = 'follower';
  }

  /** Rebuilds the replica from its durable storage, as a process restarting would. */
  start(random: () => number): void {
    const snapshot = this.storage.snapshot();
    this.machine = KvStateMachine.fromSnapshot(snapshot.data);
    this.applied = snapshot.metadata.index;
    this.confState = snapshot.metadata.confState;
    this.node = new RawNode({
      id: this.id,
      storage: this.storage,
      applied: this.applied,
      electionTimeoutTicks: this.options.electionTimeoutTicks,
      heartbeatTicks: this.options.heartbeatTicks,
      preVote: this.options.preVote,
      checkQuorum: this.options.checkQuorum,
      readOnlyOption: this.options.readOnlyOption,
      maxSizePerMessageBytes: this.options.maxSizePerMessageBytes,
      maxInflightMessages: this.options.maxInflightMessages,
      maxUncommittedEntriesBytes: this.options.maxUncommittedEntriesBytes,
      random,
      logger: this.host.logger,
      ...(this.options.mutants === undefined ? {} : { mutants: this.options.mutants }),
    });
  }

  /**
   * Handles every pending Ready. With a crash point, handles one Ready up to that point and then
   * crashes: what the Ready held beyond it is lost, as in a process killed there.
   */
  handleReadies(crashPoint?: CrashPoint): void {
    while (this.node?.hasReady() === true) {
      const ready = this.node.ready();
      if (crashPoint === 'before-persist') return this.crash();
      if (this.options.unsafeSendBeforePersist === true) {
        for (const message of ready.messages) this.host.send(message);
        if (crashPoint === 'after-send') return this.crash();
        this.persist(ready);
        if (crashPoint === 'after-persist') return this.crash();
      } else if (this.options.ackBeforePersist === true) {
        // MUTANT (test only): acknowledgements leave before what they acknowledge is durable; a
        // crash at 'after-send' strikes between the two.
        const isAck = (message: Message): boolean => message.type === 'MsgAppResp';
        for (const message of ready.messages) if (isAck(message)) this.host.send(message);
        if (crashPoint === 'after-send') return this.crash();
        this.persist(ready);
        if (crashPoint === 'after-persist') return this.crash();
        for (const message of ready.messages) if (!isAck(message)) this.host.send(message);
      } else {
        this.persist(ready);
        if (crashPoint === 'after-persist') return this.crash();
        for (const message of ready.messages) this.host.send(message);
        if (crashPoint === 'after-send') return this.crash();
      }
      this.apply(ready);
      this.node.advance(ready);
      this.maybeCompact();
    }
    if (crashPoint !== undefined) this.crash();
  }

  private persist(ready: Ready): void {
    if (ready.snapshot !== undefined) {
      this.host.onSnapshotPersisting(this.id, ready.snapshot.metadata.index);
      this.storage.applySnapshot(ready.snapshot);
    }
    if (ready.entries.length > 0) {
      this.host.onAppending(this.id, this.storage, ready.entries);
      this.storage.append(ready.entries);
    }
    const termBefore = this.storage.initialState().hardState.term;
    if (ready.hardState !== undefined) this.storage.setHardState(ready.hardState);
    if (ready.softState !== undefined) {
      this.leaderId = ready.softState.leaderId;
      this.role = ready.softState.role;
    }
    // Checked once this Ready's entries are durable: the log is then the leader's whole log. A
    // leader is reported when it takes office and also whenever its term changes while it leads
    // (which a correct core never does: a higher term makes it a follower first).
    const becameLeader = ready.softState?.role === 'leader';
    const termChanged = ready.hardState !== undefined && ready.hardState.term !== termBefore;
    if (this.role === 'leader' && (becameLeader || termChanged)) {
      this.host.onLeader(this.id, this.node!.raft.term, this.storage);
    }
  }

  private apply(ready: Ready): void {
    const node = this.node!;
    if (ready.snapshot !== undefined) {
      const { metadata, data } = ready.snapshot;
      this.machine = KvStateMachine.fromSnapshot(data);
      this.applied = metadata.index;
      this.confState = metadata.confState;
      this.host.onSnapshotApplied(this.id, metadata.index, metadata.term);
    }
    for (const entry of ready.committedEntries) {
      if (entry.index <= this.applied) continue;
      let result: KvApplyResult | undefined;
      if (entry.type === 'normal') {
        if (entry.data.byteLength > 0) result = this.machine.apply(decodeCommand(entry.data));
      } else {
        this.confState = node.applyConfChange(decodeConfChange(entry.type, entry.data));
        this.configurationChanged = true;
      }
      this.applied = entry.index;
      this.host.onApplied(this.id, entry, result);
    }
    for (const readState of ready.readStates) {
      const requestId = Number(decoder.decode(readState.requestContext));
      this.pendingReads.push({ requestId, index: readState.index });
    }
    this.serveReads();
  }

  private serveReads(): void {
    if (this.pendingReads.length === 0) return;
    const waiting: { requestId: number; index: number }[] = [];
    for (const read of this.pendingReads) {
      if (read.index <= this.applied) {
        this.host.onReadServed(this.id, read.requestId, (key) => this.machine.get(key));
      } else {
        waiting.push(read);
      }
    }
    this.pendingReads = waiting;
  }

  /**
   * Takes a snapshot every `snapshotEveryEntries` applied entries, and at once after a
   * configuration change. The latter matters: the leader sends its latest snapshot to a replica
   * that joined, and a snapshot from before the join does not name it, so the joiner would refuse
   * it forever (etcd's server likewise builds the snapshot it sends from its current state).
   */
  private maybeCompact(): void {
    const snapshotIndex = this.storage.snapshot().metadata.index;
    const due = this.applied - snapshotIndex >= this.options.snapshotEveryEntries;
    if (!(due || (this.configurationChanged && this.applied > snapshotIndex))) return;
    this.configurationChanged = false;
    this.storage.createSnapshot(this.applied, this.confState, this.machine.encodeSnapshot());
    const compactIndex = this.applied - this.options.entriesKeptAfterCompaction;
    if (compactIndex > this.storage.firstIndex() - 1) this.storage.compact(compactIndex);
  }
}
