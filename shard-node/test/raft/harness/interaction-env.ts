/**
 * The interaction environment behind the golden transcripts (etcd's rafttest.InteractionEnv): a
 * set of RawNodes on MemoryStorages, a shared queue of in-flight messages, and a command
 * interpreter whose output records every Ready, delivered message and log line.
 */
import {
  type Config,
  type ConfChange,
  type ConfChangeSingle,
  type ConfChangeTransition,
  type ConfChangeV2,
  type ConfState,
  createSeededRandom,
  decodeConfChange,
  describeEntry,
  describeMessage,
  describeReady,
  type LogFields,
  type Logger,
  MemoryStorage,
  type Message,
  type NodeId,
  RaftError,
  RawNode,
  type ReadOnlyOption,
} from '../../../src/raft/index.js';
import { type Command, parseIdList } from './datadriven.js';

const levels = ['debug', 'info', 'warn', 'error', 'none'] as const;
type Level = (typeof levels)[number];

const encoder = new TextEncoder();

interface Node {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  readonly config: Config;
  rawNode: RawNode;
  /** The configuration as of the last applied conf change, for snapshots. */
  confState: ConfState;
  /** Applied normal entries' data, as the state machine. */
  applied: string[];
}

function formatFields(fields: LogFields | undefined): string {
  if (fields === undefined) return '';
  let text = '';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    text += ` ${key}=${typeof value === 'string' && value.includes(' ') ? JSON.stringify(value) : String(value)}`;
  }
  return text;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

export class InteractionEnv {
  private readonly nodes = new Map<NodeId, Node>();
  private messages: Message[] = [];
  /** Group index of each node; messages between different groups are dropped. */
  private partition: Map<NodeId, number> | undefined = undefined;
  private output: string[] = [];
  private level: Level = 'info';
  private readonly logger: Logger;

  constructor() {
    const make =
      (level: Level) =>
      (message: string, fields?: LogFields): void => {
        if (levels.indexOf(level) >= levels.indexOf(this.level)) {
          this.output.push(`${level.toUpperCase()} ${message}${formatFields(fields)}`);
        }
      };
    this.logger = { debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') };
  }

  run(command: Command): string {
    this.output = [];
    this.dispatch(command);
    // `silent=true` runs a command (typically set-up) without recording its output.
    if (command.options.get('silent') === 'true') return '';
    return this.output.join('\n');
  }

  private print(text: string): void {
    this.output.push(text);
  }

  private node(id: NodeId | string | undefined): Node {
    const n = this.nodes.get(Number(id));
    if (n === undefined) throw new Error(`no node ${String(id)}`);
    return n;
  }

  private ids(command: Command): NodeId[] {
    return command.args.length > 0 ? command.args.map(Number) : [...this.nodes.keys()].sort((a, b) => a - b);
  }

  private dispatch(command: Command): void {
    const o = command.options;
    switch (command.name) {
      case 'log-level': {
        const level = command.args[0] as Level;
        if (!levels.includes(level)) throw new Error(`bad level ${level}`);
        this.level = level;
        return;
      }
      case 'add-nodes':
        return this.addNodes(command);
      case 'campaign':
        return this.node(command.args[0]).rawNode.campaign();
      case 'propose':
        return this.catchRaftError(() =>
          this.node(command.args[0]).rawNode.propose(encoder.encode(command.args[1] ?? '')),
        );
      case 'propose-batch': {
        const [id, ...data] = command.args;
        return this.catchRaftError(() =>
          this.node(id).rawNode.proposeBatch(data.map((d) => encoder.encode(d))),
        );
      }
      case 'propose-conf-change':
        return this.proposeConfChange(command);
      case 'process-ready':
        for (const id of this.ids(command)) {
          if (this.node(id).rawNode.hasReady()) this.processReady(id);
        }
        return;
      case 'deliver-msgs':
        return this.deliverMessages(command);
      case 'drop-msgs': {
        const ids = new Set(this.ids(command));
        const kept: Message[] = [];
        for (const m of this.messages) {
          if (ids.has(m.to)) this.print(`dropped: ${describeMessage(m)}`);
          else kept.push(m);
        }
        this.messages = kept;
        return;
      }
      case 'stabilize':
        return this.stabilize(this.ids(command));
      case 'tick':
        for (let i = 0; i < Number(command.args[1] ?? 1); i++) this.node(command.args[0]).rawNode.tick();
        return;
      case 'tick-heartbeat': {
        const node = this.node(command.args[0]);
        for (let i = 0; i < node.rawNode.raft.config.heartbeatTicks; i++) node.rawNode.tick();
        return;
      }
      case 'tick-election': {
        // Ticks until the node's timer fires: the randomized election timeout for followers and
        // candidates, the (CheckQuorum) election timeout for leaders.
        const raft = this.node(command.args[0]).rawNode.raft;
        const target =
          raft.role === 'leader' ? raft.config.electionTimeoutTicks : raft.randomizedElectionTimeout;
        const count = Math.max(1, target - raft.electionElapsed);
        for (let i = 0; i < count; i++) raft.tick();
        return;
      }
      case 'partition': {
        this.partition = new Map();
        command.args.forEach((group, index) => {
          for (const id of parseIdList(group)) this.partition!.set(id, index);
        });
        return;
      }
      case 'isolate': {
        const isolated = Number(command.args[0]);
        this.partition = new Map();
        for (const id of this.nodes.keys()) this.partition.set(id, id === isolated ? 1 : 0);
        return;
      }
      case 'heal':
        this.partition = undefined;
        return;
      case 'compact': {
        const node = this.node(command.args[0]);
        const index = Number(command.args[1]);
        node.storage.createSnapshot(index, node.confState, encoder.encode(`snap@${index}`));
        node.storage.compact(index);
        return this.printLog(node);
      }
      case 'transfer-leadership':
        return this.node(o.get('from')).rawNode.transferLeadership(Number(o.get('to')));
      case 'read-index':
        return this.node(command.args[0]).rawNode.readIndex(encoder.encode(command.args[1] ?? ''));
      case 'report-unreachable':
        return this.node(command.args[0]).rawNode.reportUnreachable(Number(command.args[1]));
      case 'report-snapshot':
        return this.node(command.args[0]).rawNode.reportSnapshot(
          Number(command.args[1]),
          o.get('ok') !== 'false',
          Number(o.get('index') ?? 0),
        );
      case 'status':
        return this.printStatus(this.node(command.args[0]));
      case 'raft-log':
        return this.printLog(this.node(command.args[0]));
      case 'raft-state':
        for (const id of [...this.nodes.keys()].sort((a, b) => a - b)) {
          const s = this.node(id).rawNode.status();
          const kind = s.isLearner
            ? 'Learner'
            : s.config.voters.includes(id) || s.config.votersOutgoing.includes(id)
              ? 'Voter'
              : 'Non-Voter';
          this.print(
            `${id}: ${s.role} (${kind}) Term:${s.term} Lead:${s.leaderId} Commit:${s.commit} Applied:${s.applied}`,
          );
        }
        return;
      default:
        throw new Error(`unknown command ${command.name}`);
    }
  }

  private catchRaftError(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      if (error instanceof RaftError) {
        this.print(`error: ${error.code}: ${error.message}`);
        return;
      }
      throw error;
    }
  }

  private addNodes(command: Command): void {
    const o = command.options;
    const count = Number(command.args[0]);
    const voters = parseIdList(o.get('voters'));
    const learners = parseIdList(o.get('learners'));
    const flag = (key: string): boolean => o.get(key) === 'true';
    const num = (key: string, fallback: number): number => (o.has(key) ? Number(o.get(key)) : fallback);
    for (let i = 0; i < count; i++) {
      const id = this.nodes.size + 1;
      const confState: ConfState = {
        voters,
        learners,
        votersOutgoing: [],
        learnersNext: [],
        autoLeave: false,
      };
      const storage = new MemoryStorage({ confState });
      const config: Config = {
        id,
        storage,
        electionTimeoutTicks: num('election', 10),
        heartbeatTicks: num('heartbeat', 1),
        maxSizePerMessageBytes: num('max-size-per-msg', 1024 * 1024),
        maxInflightMessages: num('max-inflight', 256),
        maxInflightBytes: num('max-inflight-bytes', 0),
        maxUncommittedEntriesBytes: num('max-uncommitted', 0),
        maxCommittedBytesPerReady: num('max-committed-per-ready', 64 * 1024 * 1024),
        checkQuorum: flag('checkquorum'),
        preVote: flag('prevote'),
        readOnlyOption: (o.get('read-only') ?? 'safe') as ReadOnlyOption,
        disableProposalForwarding: flag('disable-forwarding'),
        random: createSeededRandom(num('seed', 1) * 1000 + id),
        logger: this.logger,
      };
      this.nodes.set(id, { id, storage, config, rawNode: new RawNode(config), confState, applied: [] });
    }
  }

  private proposeConfChange(command: Command): void {
    const node = this.node(command.args[0]);
    const changes: ConfChangeSingle[] = command.args.slice(1).map((token) => {
      const nodeId = Number(token.slice(1));
      switch (token[0]) {
        case 'v':
          return { type: 'addNode', nodeId };
        case 'l':
          return { type: 'addLearnerNode', nodeId };
        case 'r':
          return { type: 'removeNode', nodeId };
        default:
          throw new Error(`bad change ${token}`);
      }
    });
    let change: ConfChange | ConfChangeV2;
    if (command.options.get('v1') === 'true') {
      if (changes.length !== 1) throw new Error('v1 takes exactly one change');
      change = changes[0]!;
    } else {
      change = { transition: (command.options.get('transition') ?? 'auto') as ConfChangeTransition, changes };
    }
    this.catchRaftError(() => node.rawNode.proposeConfChange(change));
  }

  /** Persists, "sends" (queues), applies and advances one Ready, printing it. */
  private processReady(id: NodeId): void {
    const node = this.node(id);
    const ready = node.rawNode.ready();
    this.print(describeReady(ready));
    if (ready.snapshot !== undefined) {
      node.storage.applySnapshot(ready.snapshot);
      node.confState = ready.snapshot.metadata.confState;
    }
    node.storage.append(ready.entries);
    if (ready.hardState !== undefined) node.storage.setHardState(ready.hardState);
    for (const m of ready.messages) this.messages.push(m);
    for (const entry of ready.committedEntries) {
      if (entry.type === 'normal') {
        if (entry.data.length > 0) node.applied.push(new TextDecoder().decode(entry.data));
        continue;
      }
      try {
        node.confState = node.rawNode.applyConfChange(decodeConfChange(entry.type, entry.data));
      } catch (error) {
        if (!(error instanceof RaftError)) throw error;
        this.print(`error applying conf change: ${error.message}`);
      }
    }
    node.rawNode.advance(ready);
  }

  private isDropped(m: Message): boolean {
    if (this.partition === undefined) return false;
    return (this.partition.get(m.from) ?? -1) !== (this.partition.get(m.to) ?? -1);
  }

  /** Delivers queued messages addressed to `ids`; returns whether any was delivered or dropped. */
  private deliverTo(
    ids: ReadonlySet<NodeId>,
    header: ((id: NodeId) => void) | undefined,
    type?: string,
  ): boolean {
    let any = false;
    const targets = [...ids].sort((a, b) => a - b);
    for (const to of targets) {
      const batch: Message[] = [];
      const kept: Message[] = [];
      for (const m of this.messages) {
        if (m.to === to && (type === undefined || m.type === type)) batch.push(m);
        else kept.push(m);
      }
      this.messages = kept;
      if (batch.length === 0) continue;
      any = true;
      header?.(to);
      for (const m of batch) {
        if (this.isDropped(m)) {
          this.print(`${header === undefined ? '' : '  '}dropped: ${describeMessage(m)}`);
          continue;
        }
        this.print(`${header === undefined ? '' : '  '}${describeMessage(m)}`);
        const error = this.node(m.to).rawNode.step(m);
        if (error !== undefined) this.print(`${header === undefined ? '' : '  '}error: ${error.code}`);
      }
    }
    return any;
  }

  private deliverMessages(command: Command): void {
    const ids = new Set(this.ids(command));
    this.deliverTo(ids, undefined, command.options.get('type'));
  }

  private stabilize(ids: NodeId[]): void {
    const set = new Set(ids);
    for (let round = 0; ; round++) {
      if (round > 1000) throw new Error('stabilize did not converge');
      let any = false;
      for (const id of ids) {
        if (this.node(id).rawNode.hasReady()) {
          any = true;
          this.print(`> ${id} handling Ready`);
          const start = this.output.length;
          this.processReady(id);
          for (let i = start; i < this.output.length; i++) this.output[i] = indent(this.output[i]!);
        }
      }
      const start = this.output.length;
      const delivered = this.deliverTo(set, (id) => this.print(`> ${id} receiving messages`));
      // Log lines produced while stepping belong to the receiving block: indent them too.
      for (let i = start; i < this.output.length; i++) {
        const line = this.output[i]!;
        if (!line.startsWith('>') && !line.startsWith('  ')) this.output[i] = indent(line);
      }
      if (!any && !delivered) return;
    }
  }

  private printStatus(node: Node): void {
    const status = node.rawNode.status();
    if (status.progress === undefined) {
      this.print(
        `${node.id}: ${status.role} term=${status.term} lead=${status.leaderId} (no progress: not leader)`,
      );
      return;
    }
    this.print(`config: ${node.rawNode.raft.tracker.config.toString()}`);
    for (const id of status.progress.keys()) {
      this.print(`${id}: ${node.rawNode.raft.tracker.progress.get(id)!.toString()}`);
    }
  }

  private printLog(node: Node): void {
    const first = node.storage.firstIndex();
    const last = node.storage.lastIndex();
    if (last < first) {
      this.print(`log is empty: first index=${first}, last index=${last}`);
      return;
    }
    for (const entry of node.storage.entries(first, last + 1, Infinity)) this.print(describeEntry(entry));
  }
}
