/**
 * The outbound side of one peer: its bounded send queue and the one persistent connection that
 * carries Raft messages to it. The connection dials, exchanges hellos, then writes `messages`
 * frames; when it fails it redials after an exponential, jittered, bounded delay, for as long as
 * the peer is part of the transport.
 *
 * Messages wait in the queue while the connection is being (re)established, but only for
 * `disconnectedBufferMs`: a peer that stays unreachable gets its messages dropped (and counted)
 * at once, because Raft retransmits anything that matters and stale heartbeats are worthless.
 */
import { connect, type Socket } from 'node:net';

import type { Message, NodeId } from '../raft/index.js';
import { Backoff } from './backoff.js';
import { BufferWriter } from './buffer-writer.js';
import { encodeMessage, messageEncodedBytesBound } from './codec.js';
import type { PeerAddress, TransportContext } from './context.js';
import { PeerFrameMalformedError } from './errors.js';
import { FrameDecoder } from './frame-decoder.js';
import { beginFrame, finishFrame, type FrameKind } from './frame.js';
import { decodeHello, encodeAuthFrame, encodeHelloFrame, protocolVersion, refuseHello } from './hello.js';
import { newNonce, proofMatches, proofOf, type ConnectionIdentity } from './peer-auth.js';
import { connectionStateValues, type DropReason } from './metrics.js';
import { SendQueue } from './send-queue.js';

export type PeerConnectionState = 'connecting' | 'handshaking' | 'connected' | 'backoff' | 'closed';

/** What a peer connection tells its transport. */
export interface PeerConnectionEvents {
  /** A message was dropped before reaching the socket. Called synchronously; defer any real work. */
  onDropped(peerId: NodeId, message: Message, reason: DropReason): void;
  /** The queue has messages and the connection can take them: schedule a flush. */
  onWritable(peer: PeerConnection): void;
}

export interface PeerStatus {
  readonly state: PeerConnectionState;
  readonly address: PeerAddress;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
}

export class PeerConnection {
  private state: PeerConnectionState = 'connecting';
  private socket: Socket | undefined;
  private readonly queue: SendQueue;
  private readonly writer = new BufferWriter();
  private readonly backoff: Backoff;
  private readonly peerLabel: string;
  /** When the peer stopped being connected (or the connection was first wanted); undefined while connected. */
  private disconnectedSinceMs: number | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private writeStallTimer: NodeJS.Timeout | undefined;
  private bufferExpiryTimer: NodeJS.Timeout | undefined;
  private attempts = 0;

  constructor(
    private readonly context: TransportContext,
    readonly peerId: NodeId,
    private address: PeerAddress,
    private readonly events: PeerConnectionEvents,
  ) {
    const limits = context.limits;
    this.queue = new SendQueue(limits.sendQueueMessagesMax, limits.sendQueueBytesMax);
    this.backoff = new Backoff(limits.reconnectDelayMsMin, limits.reconnectDelayMsMax, context.random);
    this.peerLabel = String(peerId);
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
  enqueue(message: Message): void {
    if (this.state === 'closed') {
      this.drop(message, 'stopped');
      return;
    }
    if (this.disconnectedSinceMs !== undefined) {
      const disconnectedMs = this.context.nowMs() - this.disconnectedSinceMs;
      if (disconnectedMs >= this.context.limits.disconnectedBufferMs) {
        this.drop(message, 'disconnected');
        return;
      }
    }
    if (!this.queue.offer({ message, encodedBytesBound: messageEncodedBytesBound(message) })) {
      this.drop(message, 'queueFull');
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
    const metrics = this.context.metrics;
    socket.cork();
    try {
      while (this.queue.messageCount > 0) {
        const start = beginFrame(this.writer, 'messages');
        const sentByType = new Map<string, number>();
        let count = 0;
        for (let item = this.queue.peek(); item !== undefined; item = this.queue.peek()) {
          const mark = this.writer.byteLength;
          encodeMessage(this.writer, item.message);
          if (this.writer.byteLength - start <= frameBytesMax) {
            this.queue.shift();
            count += 1;
            sentByType.set(item.message.type, (sentByType.get(item.message.type) ?? 0) + 1);
            continue;
          }
          this.writer.truncate(mark);
          if (count > 0) {
            break;
          }
          // Alone in a frame and still too large: it can never be sent.
          this.queue.shift();
          this.drop(item.message, 'tooLarge');
        }
        if (count === 0) {
          this.writer.resetAndShrink(2 * frameBytesMax);
          break;
        }
        const frameBytes = finishFrame(this.writer, start);
        const bytes = this.writer.takeBytes();
        this.countSent('messages', frameBytes);
        for (const [type, sent] of sentByType) {
          metrics.messagesSent.inc({ peer: this.peerLabel, type }, sent);
        }
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
      this.drop(item.message, 'stopped');
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
      const { selfId, clusterId, groupId } = this.context;
      encodeHelloFrame(this.writer, {
        protocolVersion,
        purpose: 'messages',
        clusterId,
        groupId,
        senderId: selfId,
        receiverId: this.peerId,
        nonce,
        proof: new Uint8Array(0),
      });
      const hello = this.writer.takeBytes();
      this.countSent('hello', hello.byteLength);
      socket.write(hello);
    });
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      this.readFrames(socket, decoder, nonce);
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
        { peerId: this.peerId, error: error.message },
        'transport: peer connection error',
      );
    });
    socket.on('close', () => {
      this.onSocketClosed(socket);
    });
  }

  /** The only frame a peer sends on our outbound connection is its hello answer. */
  private readFrames(socket: Socket, decoder: FrameDecoder, nonce: Uint8Array): void {
    try {
      for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
        if (this.state !== 'handshaking' || frame.kind !== 'hello') {
          throw new PeerFrameMalformedError(
            'kind',
            `unexpected ${frame.kind} frame on an outbound connection`,
          );
        }
        const hello = decodeHello(frame.payload);
        this.context.metrics.framesReceived.inc({ peer: this.peerLabel, kind: frame.kind });
        this.context.metrics.bytesReceived.inc({ peer: this.peerLabel }, frame.frameBytes);
        const identity: ConnectionIdentity = {
          clusterId: this.context.clusterId,
          groupId: this.context.groupId,
          purpose: 'messages',
          diallerId: this.context.selfId,
          acceptorId: this.peerId,
        };
        const refusal =
          refuseHello(hello, {
            clusterId: this.context.clusterId,
            groupId: this.context.groupId,
            selfId: this.context.selfId,
            expectedSenderId: this.peerId,
            isKnownPeer: (id) => id === this.peerId,
          }) ??
          (proofMatches(proofOf(this.context.secret, 'acceptor', identity, nonce, hello.nonce), hello.proof)
            ? undefined
            : 'authentication');
        if (refusal !== undefined || hello.purpose !== 'messages') {
          this.context.metrics.handshakesRefused.inc({ reason: refusal ?? 'purpose' });
          this.context.warnings.warn(
            `outboundHello:${this.peerId}`,
            { peerId: this.peerId, address: this.address, reason: refusal, hello },
            'transport: peer answered with a hello for another cluster, group or replica; closing',
          );
          socket.destroy();
          return;
        }
        encodeAuthFrame(this.writer, proofOf(this.context.secret, 'dialler', identity, nonce, hello.nonce));
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
        { peerId: this.peerId, reason, error: error.message },
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
    this.context.logger.info({ peerId: this.peerId, address: this.address }, 'transport: connected to peer');
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
      this.context.logger.info({ peerId: this.peerId }, 'transport: connection to peer lost');
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
        this.drop(item.message, 'disconnected');
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
      `outboundFailed:${this.peerId}`,
      { peerId: this.peerId, address: this.address, ...fields },
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

  private drop(message: Message, reason: DropReason): void {
    this.context.metrics.messagesDropped.inc({ peer: this.peerLabel, type: message.type, reason });
    this.events.onDropped(this.peerId, message, reason);
  }
}
