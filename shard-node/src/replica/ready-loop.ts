import type { Message, RawNode, Ready, ReadState, Role, NodeId, HardState, Entry } from '../raft/index.js';
import type { Scheduler } from './scheduler.js';

/**
 * The steps of one Ready, each done by the part of the host that owns it. The loop calls them in
 * the order the fields of a Ready prescribe (see `handle` below).
 */
export interface ReadySteps {
  /** A role or leader change (before anything else: proposals of a deposed leader are failed). */
  softState(role: Role, leaderId: NodeId): void;
  /** Makes the received snapshot the core installs at `index` the live state machine. */
  installSnapshot(index: number): Promise<void>;
  /** Persists snapshot metadata, entries and hard state with at most one fsync. */
  persist(ready: Ready): Promise<void>;
  send(messages: readonly Message[]): void;
  apply(committed: readonly Entry[]): Promise<void>;
  readStates(readStates: readonly ReadState[]): void;
  /** After applying: reads whose index is applied are released; the log may be compacted. */
  afterApply(): Promise<void>;
  /**
   * Work the loop must do before the next Ready, with the core untouched meanwhile (a rebuild, a
   * compaction the node asked for). It runs every time the loop is scheduled (every tick at least),
   * whether or not the core has a Ready.
   */
  beforeReadys(): Promise<void>;
  /** The loop failed: the replica must stop (a failed log write cannot be retried safely). */
  fail(error: unknown): void;
}

/**
 * The Ready loop of one replica: it runs when scheduled, at the end of a round, and handles every
 * Ready the core has, one at a time, then advances the core. Anything the core asks for while a
 * Ready is being handled waits for the next one.
 */
export class ReadyLoop {
  private scheduled = false;
  private running = false;
  private stopped = false;

  constructor(
    private readonly rawNode: RawNode,
    private readonly scheduler: Scheduler,
    private readonly steps: ReadySteps,
  ) {}

  /** Whether a Ready is being handled now (stopping waits for it, so the log is not closed under it). */
  get busy(): boolean {
    return this.running;
  }

  /** Has the loop run at the end of this round, unless it runs already (it will look again). */
  schedule(): void {
    if (this.scheduled || this.running || this.stopped) return;
    this.scheduled = true;
    this.scheduler.setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  stop(): void {
    this.stopped = true;
  }

  private async run(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      await this.steps.beforeReadys();
      // No await between the last hasReady() and the end of the loop: nothing can slip in unseen.
      while (!this.stopped && this.rawNode.hasReady()) {
        const ready = this.rawNode.ready();
        await this.handle(ready);
        this.rawNode.advance(ready);
      }
    } catch (error) {
      this.steps.fail(error);
    } finally {
      this.running = false;
    }
  }

  /**
   * One Ready, in this order:
   * 1. the soft state (a leader that lost office fails its waiting proposals first);
   * 2. a snapshot received from the leader is installed into the state machine before the log
   *    records it, so that a crash between leaves a state machine ahead of its log, which start-up
   *    repairs, never a log ahead of its state machine;
   * 3. snapshot metadata, entries and hard state are persisted with ONE fsync (group commit: every
   *    proposal made while the previous Ready was written is in this one) BEFORE any message is
   *    sent, since messages acknowledge them (a vote, an append response);
   * 4. messages are sent;
   * 5. committed entries are applied in one engine batch (they are durable on a majority, and the
   *    core hands out only entries this replica persisted);
   * 6. read states are noted, and reads whose index is applied are answered;
   * 7. the log may be compacted behind the state machine.
   */
  private async handle(ready: Ready): Promise<void> {
    if (ready.softState !== undefined) this.steps.softState(ready.softState.role, ready.softState.leaderId);
    if (ready.snapshot !== undefined) await this.steps.installSnapshot(ready.snapshot.metadata.index);
    if (persists(ready.hardState, ready.entries, ready.snapshot !== undefined))
      await this.steps.persist(ready);
    this.steps.send(ready.messages);
    if (ready.committedEntries.length > 0) await this.steps.apply(ready.committedEntries);
    this.steps.readStates(ready.readStates);
    await this.steps.afterApply();
  }
}

function persists(hardState: HardState | undefined, entries: readonly Entry[], snapshot: boolean): boolean {
  return hardState !== undefined || entries.length > 0 || snapshot;
}
