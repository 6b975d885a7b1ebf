/**
 * The transport's Prometheus metrics. Labels stay few: `peer` (a replica transport's peer Raft id,
 * a handful per group; a node transport's peer node address, a handful per cluster), `group` (the
 * group of a message: the node's hosted groups; never an id read from an unknown peer's bytes),
 * `type` (a Raft message type: fourteen), `reason` and `kind` (small fixed sets).
 */
import {
  Counter,
  FoldedCounter,
  Gauge,
  metricPrefix,
  type FoldedCounterConfiguration,
  type FoldedCounterSeries,
  type Registry,
} from '@impulse/common';

import type { MessageType } from '../raft/index.js';
import { networkMessageTypes } from './codec.js';
import { assert } from './errors.js';

/** Why a message was dropped before it reached the socket. */
export type DropReason = 'queueFull' | 'disconnected' | 'tooLarge' | 'unknownPeer' | 'stopped';

/**
 * Why a message that arrived on an authenticated node connection was not handed to a replica.
 * - `unknownGroup`: no replica of its group is hosted here (it moved, or was never here).
 * - `wrongReceiver`: the replica hosted here for its group has another Raft id than the message's
 *   receiver (a replica of the group that was replaced, or a confused peer).
 */
export type InboundDropReason = 'unknownGroup' | 'wrongReceiver';

/** The connection state gauge's values. */
export const connectionStateValues = { disconnected: 0, connecting: 1, connected: 2 } as const;

export interface TransportMetrics {
  /** Counted per message (`MessageCounter`), added to the prom-client counter on each scrape. */
  readonly messagesSent: MessageCounter;
  /** Counted per message (`MessageCounter`), added to the prom-client counter on each scrape. */
  readonly messagesReceived: MessageCounter;
  readonly messagesDropped: Counter<'peer' | 'group' | 'type' | 'reason'>;
  readonly inboundMessagesDropped: Counter<'peer' | 'reason'>;
  readonly bytesSent: Counter<'peer'>;
  readonly bytesReceived: Counter<'peer'>;
  readonly framesSent: Counter<'peer' | 'kind'>;
  readonly framesReceived: Counter<'peer' | 'kind'>;
  readonly framesMalformed: Counter<'reason'>;
  readonly handshakesRefused: Counter<'reason'>;
  readonly connectionState: Gauge<'peer'>;
  readonly reconnects: Counter<'peer'>;
  readonly sendQueueMessages: Gauge<'peer'>;
  readonly sendQueueBytes: Gauge<'peer'>;
  readonly coalescedHeartbeats: Counter<'peer'>;
  readonly coalescedHeartbeatEntries: Counter<'peer'>;
  readonly snapshotStreams: Counter<'direction' | 'result'>;
  readonly snapshotStreamsRefused: Counter<'reason'>;
  readonly snapshotBytes: Counter<'direction'>;
}

/**
 * Registers the transport metrics on `registry`, once per transport: a process of one replica
 * runs one `PeerTransport`, a node runs one `NodeTransport` whose replicas all share its metrics
 * (opening a replica's endpoint registers nothing).
 */
export function createTransportMetrics(
  registry: Registry,
  /** Called before the queue gauges are read, to set them (they are not updated per message). */
  observeQueues: () => void = () => {},
): TransportMetrics {
  const registers = [registry];
  const name = (suffix: string): string => `${metricPrefix}transport_${suffix}`;
  return {
    messagesSent: new MessageCounter({
      name: name('messages_sent_total'),
      help: 'Raft messages written to a peer connection, by peer, group and message type.',
      labelNames: ['peer', 'group', 'type'],
      registers,
    }),
    messagesReceived: new MessageCounter({
      name: name('messages_received_total'),
      help: 'Raft messages received from a peer and handed to a replica, by peer, group and message type.',
      labelNames: ['peer', 'group', 'type'],
      registers,
    }),
    messagesDropped: new Counter({
      name: name('messages_dropped_total'),
      help: 'Raft messages dropped before reaching a peer (Raft retransmits), by peer, group, type and reason.',
      labelNames: ['peer', 'group', 'type', 'reason'],
      registers,
    }),
    inboundMessagesDropped: new Counter({
      name: name('inbound_messages_dropped_total'),
      help: 'Raft messages from an authenticated peer node that no replica here takes (unknownGroup, wrongReceiver), by peer and reason.',
      labelNames: ['peer', 'reason'],
      registers,
    }),
    bytesSent: new Counter({
      name: name('bytes_sent_total'),
      help: 'Frame bytes written to peer connections (messages and snapshot streams), by peer.',
      labelNames: ['peer'],
      registers,
    }),
    bytesReceived: new Counter({
      name: name('bytes_received_total'),
      help: 'Frame bytes received from identified peers, by peer.',
      labelNames: ['peer'],
      registers,
    }),
    framesSent: new Counter({
      name: name('frames_sent_total'),
      help: 'Frames written, by peer and frame kind.',
      labelNames: ['peer', 'kind'],
      registers,
    }),
    framesReceived: new Counter({
      name: name('frames_received_total'),
      help: 'Valid frames received from identified peers, by peer and frame kind.',
      labelNames: ['peer', 'kind'],
      registers,
    }),
    framesMalformed: new Counter({
      name: name('frames_malformed_total'),
      help: 'Connections closed because of bytes that are not a valid frame or message, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    handshakesRefused: new Counter({
      name: name('handshakes_refused_total'),
      help: 'Connections closed because the hello named another cluster, group or replica, by reason.',
      labelNames: ['reason'],
      registers,
    }),
    connectionState: new Gauge({
      name: name('connection_state'),
      help: 'State of the outbound connection to each peer: 0 disconnected, 1 connecting, 2 connected.',
      labelNames: ['peer'],
      registers,
    }),
    reconnects: new Counter({
      name: name('reconnects_total'),
      help: 'Connection attempts to a peer after the first one, by peer.',
      labelNames: ['peer'],
      registers,
    }),
    sendQueueMessages: new Gauge({
      name: name('send_queue_messages'),
      help: 'Messages waiting in the send queue of each peer.',
      labelNames: ['peer'],
      registers,
      collect: observeQueues,
    }),
    sendQueueBytes: new Gauge({
      name: name('send_queue_bytes'),
      help: 'Encoded bytes (upper bound) waiting in the send queue of each peer.',
      labelNames: ['peer'],
      registers,
      collect: observeQueues,
    }),
    snapshotStreams: new Counter({
      name: name('snapshot_streams_total'),
      help: 'Snapshot streams finished, by direction (sent, received) and result (success, failure).',
      labelNames: ['direction', 'result'],
      registers,
    }),
    coalescedHeartbeats: new Counter({
      name: name('coalesced_heartbeats_sent_total'),
      help: 'Coalesced heartbeat messages sent (at most one per frame), each carrying the heartbeats or responses of many groups, by peer node.',
      labelNames: ['peer'],
      registers,
    }),
    coalescedHeartbeatEntries: new Counter({
      name: name('coalesced_heartbeat_entries_sent_total'),
      help: 'Per-group heartbeats and heartbeat responses sent inside coalesced heartbeats, by peer node.',
      labelNames: ['peer'],
      registers,
    }),
    snapshotStreamsRefused: new Counter({
      name: name('snapshot_streams_refused_total'),
      help: 'Inbound snapshot streams refused at their header (unknownGroup, wrongReceiver, snapshotsNotTaken), by reason.',
      labelNames: ['reason'],
      registers,
    }),
    snapshotBytes: new Counter({
      name: name('snapshot_bytes_total'),
      help: 'Snapshot data bytes streamed, by direction (sent, received).',
      labelNames: ['direction'],
      registers,
    }),
  };
}

/** Each network message type's position in a group's row of series. */
const typeIndexes: Partial<Record<MessageType, number>> = Object.fromEntries(
  networkMessageTypes.map((type, index) => [type, index]),
);

/**
 * Raft messages by peer, group and type, counted as they are sent or handed to a replica. A node
 * counts every message of every hosted group (a coalesced heartbeat counts once per group it
 * carries), so a prom-client increment per (peer, group, type) and frame, each hashing three
 * labels, grew with the number of groups. Each (peer, group, type) is instead a `FoldedCounter`
 * series, resolved the first time a message of it is counted and kept: a message costs two map
 * lookups and an addition, and a scrape adds the counts to the prom-client counter. The exported
 * series are unchanged. Like the counter's series, the kept ones live as long as the transport: a
 * replica that stops or moves away keeps its totals, as it always did.
 */
export class MessageCounter {
  private readonly folded: FoldedCounter<'peer' | 'group' | 'type'>;
  private readonly peers = new Map<string, PeerMessageCounts>();

  constructor(configuration: FoldedCounterConfiguration<'peer' | 'group' | 'type'>) {
    this.folded = new FoldedCounter(configuration);
  }

  /** The counts of the messages to or from `peer` (a metrics peer label): look it up once per batch. */
  ofPeer(peer: string): PeerMessageCounts {
    let counts = this.peers.get(peer);
    if (counts === undefined) {
      counts = new PeerMessageCounts(this.folded, peer);
      this.peers.set(peer, counts);
    }
    return counts;
  }
}

/** One peer's share of a `MessageCounter`: its series by group, then by message type. */
export class PeerMessageCounts {
  private readonly groups = new Map<string, (FoldedCounterSeries | undefined)[]>();

  constructor(
    private readonly folded: FoldedCounter<'peer' | 'group' | 'type'>,
    readonly peer: string,
  ) {}

  /** Counts one message of `group` of `type` (a network message type). */
  count(group: string, type: MessageType): void {
    const index = typeIndexes[type];
    // Not assert(index !== undefined, `...`): the message would be built for every message.
    if (index === undefined) assert(false, `${type} is a network message type`);
    let row = this.groups.get(group);
    if (row === undefined) {
      row = new Array<FoldedCounterSeries | undefined>(networkMessageTypes.length).fill(undefined);
      this.groups.set(group, row);
    }
    let series = row[index];
    if (series === undefined) {
      series = this.folded.series({ peer: this.peer, group, type });
      row[index] = series;
    }
    series.inc();
  }
}
