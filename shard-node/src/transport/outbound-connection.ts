/**
 * The outbound side of one peer: its bounded send queue and the one persistent connection that
 * carries Raft messages to it. The peer is a replica (`PeerTransport`: one connection per peer
 * replica) or a node (`NodeTransport`: one connection per peer node, shared by every group); the
 * handshake (`handshake.ts`) and the frame the queued messages are written in (`FrameFiller`) say
 * which. The connection dials, exchanges hellos, then writes message frames; when it fails it
 * redials after an exponential, jittered, bounded delay, for as long as the peer is wanted.
 *
 * Messages wait in the queue while the connection is being (re)established, but only for
 * `disconnectedBufferMs`: a peer that stays unreachable gets its messages dropped (and counted)
 * at once, because Raft retransmits anything that matters and stale heartbeats are worthless.
 */
import { connect, type Socket } from 'node:net';

import { Backoff } from './backoff.js';
import { BufferWriter } from './buffer-writer.js';
import type { PeerAddress, TransportContext } from './context.js';
import { PeerFrameMalformedError } from './errors.js';
import { FrameDecoder } from './frame-decoder.js';
import type { FrameKind } from './frame.js';
import type { DiallerHandshake } from './handshake.js';
import { encodeAuthFrame } from './hello.js';
import { newNonce } from './peer-auth.js';
import { connectionStateValues, type DropReason, type PeerMessageCounts } from './metrics.js';
import { SendQueue, type QueuedMessage } from './send-queue.js';

export type PeerConnectionState = 'connecting' | 'handshaking' | 'connected' | 'backoff' | 'closed';

/** What an outbound connection tells its transport. */
export interface OutboundEvents<Item extends QueuedMessage> {
  /** A message was dropped before reaching the socket. Called synchronously; defer any real work. */
  onDropped(item: Item, reason: DropReason): void;
  /** The queue has messages and the connection can take them: schedule a flush. */
  onWritable(connection: OutboundConnection<Item>): void;
}

/**
 * How queued messages become frames: `fill` encodes as many as fit in `frameBytesMax` into one
 * complete frame of `kind` in the (empty) writer and returns them, taken off the queue; a message
 * too large for a frame of its own goes to `dropTooLarge`. An empty result means nothing was
 * written. (`fillMessagesFrame` in `codec.ts`, `fillGroupMessagesFrame` in `group-messages.ts`.)
 */
export interface FrameFiller {
  readonly kind: FrameKind;
  fill<Item extends QueuedMessage>(
    writer: BufferWriter,
    queue: SendQueue<Item>,
    frameBytesMax: number,
    dropTooLarge: (item: Item) => void,
  ): Item[];
}

export interface PeerStatus {
  readonly state: PeerConnectionState;
  readonly address: PeerAddress;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
}

export class OutboundConnection<Item extends QueuedMessage = QueuedMessage> {
  private state: PeerConnectionState = 'connecting';
  private socket: Socket | undefined;
  private readonly queue: SendQueue<Item>;
  private readonly writer = new BufferWriter();
  private readonly backoff: Backoff;
  /** When the peer stopped being connected (or the connection was first wanted); undefined while connected. */
  private disconnectedSinceMs: number | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private writeStallTimer: NodeJS.Timeout | undefined;
  private bufferExpiryTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  /** The messages written to this peer, by group and type (kept by the transport's metrics). */
  private readonly sentCounts: PeerMessageCounts;

  /**
   * `makeHandshake` is asked for the handshake of each dial, so that a connection whose peer
   * moved (`updateAddress`) says the new address in its next hello.
   */
  constructor(
    private readonly context: TransportContext,
    /** The peer as metrics and logs name it: a Raft id, or a node's `host:port`. */
    readonly peerLabel: string,
    private address: PeerAddress,
    private readonly makeHandshake: (address: PeerAddress) => DiallerHandshake,
    private readonly framing: FrameFiller,
    private readonly events: OutboundEvents<Item>,
  ) {
    const limits = context.limits;
    this.queue = new SendQueue<Item>(limits.sendQueueMessagesMax, limits.sendQueueBytesMax);
    this.backoff = new Backoff(limits.reconnectDelayMsMin, limits.reconnectDelayMsMax, context.random);
    this.sentCounts = context.metrics.messagesSent.ofPeer(peerLabel);
    this.markDisconnected();
    this.dial();
  }

  status(): PeerStatus {
    return {
      state: this.state,
      address: this.address,
      queuedMessages: this.queue.messageCount,
      queuedBytes: this.queue.byteCount,
    };
  }

  /** Queues a message for the next flush, or drops it (see the class comment). */
  enqueue(item: Item): void {
    if (this.state === 'closed') {
      this.drop(item, 'stopped');
      return;
    }
    if (this.disconnectedSinceMs !== undefined) {
      const disconnectedMs = this.context.nowMs() - this.disconnectedSinceMs;
      if (disconnectedMs >= this.context.limits.disconnectedBufferMs) {
        this.drop(item, 'disconnected');
        return;
      }
    }
    if (!this.queue.offer(item)) {
      this.drop(item, 'queueFull');
      return;
    }
    if (this.state === 'connected') {
      this.events.onWritable(this);
    }
  }

  /**
   * Writes everything queued, as few frames as `frameBytesMax` allows, in one corked write (one
   * syscall). Stops early when the socket buffer is full; the 'drain' event resumes it.
   */
  flush(): void {
    const socket = this.socket;
    if (this.state !== 'connected' || socket === undefined || socket.writableNeedDrain) {
      return;
    }
    const frameBytesMax = this.context.limits.frameBytesMax;
    const sentCounts = this.sentCounts;
    socket.cork();
    try {
      while (this.queue.messageCount > 0) {
        const written = this.framing.fill(this.writer, this.queue, frameBytesMax, (item) =>
          this.drop(item, 'tooLarge'),
        );
        if (written.length === 0) {
          break;
        }
        const bytes = this.writer.takeBytes();
        this.countSent(this.framing.kind, bytes.byteLength);
        for (const { groupId, message } of written) sentCounts.count(groupId, message.type);
        if (!socket.write(bytes)) {
          this.startWriteStallTimer();
          break;
        }
      }
    } finally {
      socket.uncork();
    }
  }

  /** Points the connection at a new address: the current connection is replaced at once. */
  updateAddress(address: PeerAddress): void {
    if (this.state === 'closed') {
      return;
    }
    this.address = address;
    this.backoff.reset();
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.teardownSocket();
    this.enterDisconnected();
    this.dial();
  }

  /** Closes the connection for good and drops what is queued. Idempotent. */
  close(): void {
    if (this.state === 'closed') {
      return;
    }
    this.state = 'closed';
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.bufferExpiryTimer);
    this.teardownSocket();
    for (const item of this.queue.takeAll()) {
      this.drop(item, 'stopped');
    }
    this.context.metrics.connectionState.remove({ peer: this.peerLabel });
    this.context.metrics.sendQueueMessages.remove({ peer: this.peerLabel });
    this.context.metrics.sendQueueBytes.remove({ peer: this.peerLabel });
  }

  /** Publishes the queue gauges (called when metrics are collected). */
  observeQueue(): void {
    this.context.metrics.sendQueueMessages.set({ peer: this.peerLabel }, this.queue.messageCount);
    this.context.metrics.sendQueueBytes.set({ peer: this.peerLabel }, this.queue.byteCount);
  }

  private dial(): void {
    this.setState('connecting');
    if (this.attempts > 0) {
      this.context.metrics.reconnects.inc({ peer: this.peerLabel });
    }
    this.attempts += 1;
    const limits = this.context.limits;
    const handshake = this.makeHandshake(this.address);
    const socket = connect({ host: this.address.host, port: this.address.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, limits.keepAliveInitialDelayMs);
    const decoder = new FrameDecoder(limits.frameBytesMax);
    this.handshakeTimer = setTimeout(() => {
      this.failSocket(socket, 'handshake timed out', { timeoutMs: limits.handshakeTimeoutMs });
    }, limits.handshakeTimeoutMs);
    const nonce = newNonce();
    socket.on('connect', () => {
      this.setState('handshaking');
      handshake.writeHello(this.writer, nonce);
      const hello = this.writer.takeBytes();
      this.countSent(handshake.helloKind, hello.byteLength);
      socket.write(hello);
    });
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      this.readFrames(socket, decoder, handshake, nonce);
    });
    socket.on('drain', () => {
      clearTimeout(this.writeStallTimer);
      this.writeStallTimer = undefined;
      if (this.queue.messageCount > 0) {
        this.events.onWritable(this);
      }
    });
    socket.on('error', (error: Error) => {
      // Refused and reset connections are the normal life of a peer that restarts: debug level.
      this.context.logger.debug(
        { peer: this.peerLabel, error: error.message },
        'transport: peer connection error',
      );
    });
    socket.on('close', () => {
      this.onSocketClosed(socket);
    });
  }

  /** The only frame a peer sends on our outbound connection is its hello answer. */
  private readFrames(
    socket: Socket,
    decoder: FrameDecoder,
    handshake: DiallerHandshake,
    nonce: Uint8Array,
  ): void {
    try {
      for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
        if (this.state !== 'handshaking') {
          throw new PeerFrameMalformedError(
            'kind',
            `unexpected ${frame.kind} frame on an outbound connection`,
          );
        }
        const verdict = handshake.checkAnswer(frame, nonce);
        this.context.metrics.framesReceived.inc({ peer: this.peerLabel, kind: frame.kind });
        this.context.metrics.bytesReceived.inc({ peer: this.peerLabel }, frame.frameBytes);
        if (verdict.refusal !== undefined) {
          this.context.metrics.handshakesRefused.inc({ reason: verdict.refusal });
          this.context.warnings.warn(
            `outboundHello:${this.peerLabel}`,
            { peer: this.peerLabel, address: this.address, reason: verdict.refusal, hello: verdict.hello },
            'transport: peer answered with a hello for another cluster, group or peer; closing',
          );
          socket.destroy();
          return;
        }
        encodeAuthFrame(this.writer, verdict.accepted.proof);
        const auth = this.writer.takeBytes();
        this.countSent('auth', auth.byteLength);
        socket.write(auth);
        this.onConnected();
      }
    } catch (error: unknown) {
      if (!(error instanceof PeerFrameMalformedError)) {
        throw error;
      }
      const reason = error.reason;
      this.context.metrics.framesMalformed.inc({ reason });
      this.context.warnings.warn(
        `outboundMalformed:${reason}`,
        { peer: this.peerLabel, reason, error: error.message },
        'transport: peer sent a malformed frame on an outbound connection; closing',
      );
      socket.destroy();
    }
  }

  private onConnected(): void {
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    clearTimeout(this.bufferExpiryTimer);
    this.bufferExpiryTimer = undefined;
    this.disconnectedSinceMs = undefined;
    this.backoff.reset();
    this.setState('connected');
    this.context.logger.info({ peer: this.peerLabel, address: this.address }, 'transport: connected to peer');
    if (this.queue.messageCount > 0) {
      this.events.onWritable(this);
    }
  }

  private onSocketClosed(socket: Socket): void {
    if (socket !== this.socket) {
      return;
    }
    const wasConnected = this.state === 'connected';
    this.teardownSocket();
    if (this.state === 'closed') {
      return;
    }
    if (wasConnected) {
      this.context.logger.info({ peer: this.peerLabel }, 'transport: connection to peer lost');
    }
    this.enterDisconnected();
    const delayMs = this.backoff.nextDelayMs();
    this.setState('backoff');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.dial();
    }, delayMs);
  }

  /** Starts the disconnected-buffer clock, unless it already runs. */
  private enterDisconnected(): void {
    if (this.disconnectedSinceMs === undefined) {
      this.markDisconnected();
    }
  }

  private markDisconnected(): void {
    this.disconnectedSinceMs = this.context.nowMs();
    clearTimeout(this.bufferExpiryTimer);
    this.bufferExpiryTimer = setTimeout(() => {
      this.bufferExpiryTimer = undefined;
      if (this.disconnectedSinceMs === undefined) {
        return;
      }
      for (const item of this.queue.takeAll()) {
        this.drop(item, 'disconnected');
      }
    }, this.context.limits.disconnectedBufferMs);
  }

  private startWriteStallTimer(): void {
    if (this.writeStallTimer !== undefined) {
      return;
    }
    const socket = this.socket;
    const timeoutMs = this.context.limits.writeStallTimeoutMs;
    this.writeStallTimer = setTimeout(() => {
      this.writeStallTimer = undefined;
      if (socket !== undefined) {
        this.failSocket(socket, 'writes stalled (the peer does not read)', { timeoutMs });
      }
    }, timeoutMs);
  }

  private failSocket(socket: Socket, why: string, fields: Record<string, unknown>): void {
    if (socket !== this.socket) {
      return;
    }
    this.context.warnings.warn(
      `outboundFailed:${this.peerLabel}`,
      { peer: this.peerLabel, address: this.address, ...fields },
      `transport: ${why}; reconnecting`,
    );
    socket.destroy();
  }

  private teardownSocket(): void {
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.writeStallTimer);
    this.handshakeTimer = undefined;
    this.writeStallTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }

  private setState(state: PeerConnectionState): void {
    this.state = state;
    const value =
      state === 'connected'
        ? connectionStateValues.connected
        : state === 'connecting' || state === 'handshaking'
          ? connectionStateValues.connecting
          : connectionStateValues.disconnected;
    this.context.metrics.connectionState.set({ peer: this.peerLabel }, value);
  }

  private countSent(kind: FrameKind, frameBytes: number): void {
    this.context.metrics.framesSent.inc({ peer: this.peerLabel, kind });
    this.context.metrics.bytesSent.inc({ peer: this.peerLabel }, frameBytes);
  }

  private drop(item: Item, reason: DropReason): void {
    this.context.metrics.messagesDropped.inc({
      peer: this.peerLabel,
      group: item.groupId,
      type: item.message.type,
      reason,
    });
    this.events.onDropped(item, reason);
  }
}
