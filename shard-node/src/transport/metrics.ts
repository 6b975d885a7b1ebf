/**
 * The transport's Prometheus metrics. Labels stay few: `peer` (a replica id: a handful per group),
 * `type` (a Raft message type: fourteen), `reason` and `kind` (small fixed sets).
 */
import { Counter, Gauge, metricPrefix, type Registry } from '@impulse/common';

/** Why a message was dropped before it reached the socket. */
export type DropReason = 'queueFull' | 'disconnected' | 'tooLarge' | 'unknownPeer' | 'stopped';

/** The connection state gauge's values. */
export const connectionStateValues = { disconnected: 0, connecting: 1, connected: 2 } as const;

export interface TransportMetrics {
  readonly messagesSent: Counter<'peer' | 'type'>;
  readonly messagesReceived: Counter<'peer' | 'type'>;
  readonly messagesDropped: Counter<'peer' | 'type' | 'reason'>;
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
  readonly snapshotStreams: Counter<'direction' | 'result'>;
  readonly snapshotBytes: Counter<'direction'>;
}

/**
 * Registers the transport metrics on `registry`. One transport per registry: a process runs one
 * replica, and its registry's default labels say which.
 */
export function createTransportMetrics(
  registry: Registry,
  /** Called before the queue gauges are read, to set them (they are not updated per message). */
  observeQueues: () => void = () => {},
): TransportMetrics {
  const registers = [registry];
  const name = (suffix: string): string => `${metricPrefix}transport_${suffix}`;
  return {
    messagesSent: new Counter({
      name: name('messages_sent_total'),
      help: 'Raft messages written to a peer connection, by peer and message type.',
      labelNames: ['peer', 'type'],
      registers,
    }),
    messagesReceived: new Counter({
      name: name('messages_received_total'),
      help: 'Raft messages received from a peer and handed to the host, by peer and message type.',
      labelNames: ['peer', 'type'],
      registers,
    }),
    messagesDropped: new Counter({
      name: name('messages_dropped_total'),
      help: 'Raft messages dropped before reaching a peer (Raft retransmits), by peer, type and reason.',
      labelNames: ['peer', 'type', 'reason'],
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
    snapshotBytes: new Counter({
      name: name('snapshot_bytes_total'),
      help: 'Snapshot data bytes streamed, by direction (sent, received).',
      labelNames: ['direction'],
      registers,
    }),
  };
}
