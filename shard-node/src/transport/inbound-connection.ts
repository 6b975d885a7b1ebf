/**
 * One accepted connection. It must open with a `hello` from a known peer of this cluster and
 * group, addressed to this replica; then it carries either `messages` frames (handed to the host)
 * or one snapshot stream (handed chunk by chunk to the snapshot handler, with backpressure).
 *
 * Anything unexpected (a frame that fails its checks, a kind out of place, a message that claims
 * another sender, a chunk out of order) closes this connection, is counted and is logged at a
 * limited rate. It never throws out of a socket callback, so a hostile peer cannot crash the
 * process, and other connections carry on.
 */
import type { Socket } from 'node:net';

import type { Message, NodeId } from '../raft/index.js';
import { BufferReader } from './buffer-reader.js';
import { BufferWriter } from './buffer-writer.js';
import { decodeMessageBatch } from './codec.js';
import type { TransportContext } from './context.js';
import { PeerFrameMalformedError } from './errors.js';
import { FrameDecoder } from './frame-decoder.js';
import type { Frame, FrameKind } from './frame.js';
import {
  decodeAuth,
  decodeHello,
  encodeHelloFrame,
  protocolVersion,
  refuseHello,
  type ConnectionPurpose,
} from './hello.js';
import { newNonce, proofMatches, proofOf, type ConnectionIdentity } from './peer-auth.js';
import { decodeSnapshotChunk, encodeSnapshotAckFrame } from './snapshot-chunk.js';

/** One chunk of an inbound snapshot stream, as handed to the host. */
export interface SnapshotChunk {
  readonly from: NodeId;
  readonly snapshotId: string;
  /** 0 for the first chunk, then 1, 2...; chunks arrive in order. */
  readonly sequence: number;
  /** Whether this is the stream's last chunk. */
  readonly last: boolean;
  /** The chunk's bytes. The handler owns them. */
  readonly bytes: Uint8Array;
}

/** An inbound snapshot stream that ended before its last chunk was handled. */
export interface SnapshotAbort {
  readonly from: NodeId;
  readonly snapshotId: string;
  readonly reason: string;
}

export interface InboundHandlers {
  onMessages(messages: Message[], from: NodeId): void;
  /** Undefined when this replica does not take snapshot streams (they are refused at hello). */
  readonly onSnapshotChunk: ((chunk: SnapshotChunk) => void | Promise<void>) | undefined;
  onSnapshotAborted(abort: SnapshotAbort): void;
  /** Whether one more snapshot stream may start now. */
  canStartSnapshotStream(): boolean;
  /** The connection is identified (its hello was accepted). */
  onIdentified(connection: InboundConnection): void;
  onClosed(connection: InboundConnection): void;
}

/** `auth`: the hello was answered; the dialler's proof must come before anything else. */
type InboundState = 'hello' | 'auth' | ConnectionPurpose | 'snapshotDone' | 'closed';

export class InboundConnection {
  private state: InboundState = 'hello';
  private readonly decoder: FrameDecoder;
  private peer: NodeId | undefined;
  private peerLabel = 'unknown';
  /** True while the snapshot handler works on a chunk: frames wait in the decoder, the socket is paused. */
  private waitingForHandler = false;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private snapshotId: string | undefined;
  private nextSequence = 0;
  /** Whether this side closed the connection (then a partial frame in the decoder is no news). */
  private closedByUs = false;
  private snapshotBytes = 0;
  /** Between our hello answer and the dialler's proof: what that proof must be, and the purpose. */
  private awaitedProof: { readonly proof: Buffer; readonly purpose: ConnectionPurpose } | undefined;

  constructor(
    private readonly context: TransportContext,
    private readonly socket: Socket,
    private readonly handlers: InboundHandlers,
  ) {
    this.decoder = new FrameDecoder(context.limits.frameBytesMax);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, context.limits.keepAliveInitialDelayMs);
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = undefined;
      this.context.warnings.warn(
        'inboundHelloTimeout',
        { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort },
        'transport: closed an inbound connection that sent no hello in time',
      );
      this.close();
    }, context.limits.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      this.pump();
    });
    socket.on('error', (error: Error) => {
      this.context.logger.debug(
        { peerId: this.peer, error: error.message },
        'transport: inbound connection error',
      );
    });
    socket.on('close', () => {
      this.onSocketClosed();
    });
  }

  /** The peer's replica id, once its hello was accepted. */
  get peerId(): NodeId | undefined {
    return this.peer;
  }

  get purpose(): InboundState {
    return this.state;
  }

  close(): void {
    if (this.state === 'closed') {
      return;
    }
    this.closedByUs = true;
    this.socket.destroy();
    this.onSocketClosed();
  }

  private onSocketClosed(): void {
    if (this.state === 'closed') {
      return;
    }
    const previous = this.state;
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    if (!this.closedByUs && this.decoder.isInsideFrame) {
      this.countMalformed(new PeerFrameMalformedError('truncated', 'the connection ended inside a frame'));
    }
    if (previous === 'snapshot' && this.snapshotId !== undefined && this.peer !== undefined) {
      this.context.metrics.snapshotStreams.inc({ direction: 'received', result: 'failure' });
      this.handlers.onSnapshotAborted({
        from: this.peer,
        snapshotId: this.snapshotId,
        reason: 'the connection closed before the last chunk',
      });
    }
    this.handlers.onClosed(this);
  }

  /** Handles the frames buffered in the decoder, unless the snapshot handler is busy. */
  private pump(): void {
    try {
      while (!this.waitingForHandler && this.state !== 'closed') {
        const frame = this.decoder.next();
        if (frame === undefined) {
          return;
        }
        this.handleFrame(frame);
      }
    } catch (error: unknown) {
      if (!(error instanceof PeerFrameMalformedError)) {
        throw error;
      }
      this.countMalformed(error);
      this.close();
    }
  }

  private handleFrame(frame: Frame): void {
    if (this.peer !== undefined) {
      this.context.metrics.framesReceived.inc({ peer: this.peerLabel, kind: frame.kind });
      this.context.metrics.bytesReceived.inc({ peer: this.peerLabel }, frame.frameBytes);
    }
    switch (this.state) {
      case 'hello':
        this.handleHello(frame);
        return;
      case 'auth':
        this.handleAuth(frame);
        return;
      case 'messages':
        this.handleMessages(frame);
        return;
      case 'snapshot':
        this.handleSnapshotChunk(frame);
        return;
      case 'snapshotDone':
      case 'closed':
        throw new PeerFrameMalformedError(
          'protocol',
          `${frame.kind} frame after the end of a snapshot stream`,
        );
    }
  }

  private handleHello(frame: Frame): void {
    if (frame.kind !== 'hello') {
      throw new PeerFrameMalformedError('kind', `${frame.kind} frame before the hello`);
    }
    const hello = decodeHello(frame.payload);
    const { clusterId, groupId, selfId } = this.context;
    let refusal: string | undefined = refuseHello(hello, {
      clusterId,
      groupId,
      selfId,
      isKnownPeer: (id) => this.context.isKnownPeer(id),
    });
    if (refusal === undefined && hello.purpose === 'snapshot') {
      if (this.handlers.onSnapshotChunk === undefined) {
        refusal = 'snapshotsNotTaken';
      } else if (!this.handlers.canStartSnapshotStream()) {
        refusal = 'snapshotStreamsFull';
      }
    }
    if (refusal !== undefined) {
      this.context.metrics.handshakesRefused.inc({ reason: refusal });
      // A sender of this cluster and group that is not a member is routine during membership
      // changes (a replica started with --join dials before the leader adds it, a removed one
      // until it is stopped): info, not a warning. Every refusal is counted all the same.
      this.context.warnings.warn(
        `inboundRefused:${refusal}`,
        { remoteAddress: this.socket.remoteAddress, reason: refusal, hello },
        'transport: refused a connection whose hello is not for this replica',
        refusal === 'unknownPeer' ? 'info' : 'warn',
      );
      this.close();
      return;
    }
    this.peer = hello.senderId;
    this.peerLabel = String(hello.senderId);
    this.state = 'auth';
    this.context.metrics.framesReceived.inc({ peer: this.peerLabel, kind: 'hello' });
    this.context.metrics.bytesReceived.inc({ peer: this.peerLabel }, frame.frameBytes);
    const identity: ConnectionIdentity = {
      clusterId,
      groupId,
      purpose: hello.purpose,
      diallerId: hello.senderId,
      acceptorId: selfId,
    };
    const nonce = newNonce();
    this.awaitedProof = {
      proof: proofOf(this.context.secret, 'dialler', identity, hello.nonce, nonce),
      purpose: hello.purpose,
    };
    const writer = new BufferWriter(256);
    encodeHelloFrame(writer, {
      protocolVersion,
      purpose: hello.purpose,
      clusterId,
      groupId,
      senderId: selfId,
      receiverId: hello.senderId,
      nonce,
      proof: proofOf(this.context.secret, 'acceptor', identity, hello.nonce, nonce),
    });
    this.writeFrame('hello', writer.takeBytes());
  }

  /**
   * The dialler's proof that it holds the cluster secret. Until it comes (within the handshake
   * timeout, which still runs), nothing else is taken; a wrong one closes the connection.
   */
  private handleAuth(frame: Frame): void {
    if (frame.kind !== 'auth') {
      throw new PeerFrameMalformedError('kind', `${frame.kind} frame before the peer's proof`);
    }
    const awaited = this.awaitedProof as NonNullable<typeof this.awaitedProof>;
    this.awaitedProof = undefined;
    if (!proofMatches(awaited.proof, decodeAuth(frame.payload))) {
      this.context.metrics.handshakesRefused.inc({ reason: 'authentication' });
      this.context.warnings.warn(
        'inboundRefused:authentication',
        { remoteAddress: this.socket.remoteAddress, reason: 'authentication', claimedPeerId: this.peer },
        'transport: refused a connection from a peer that does not hold the cluster secret',
      );
      this.close();
      return;
    }
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.state = awaited.purpose;
    this.handlers.onIdentified(this);
  }

  private handleMessages(frame: Frame): void {
    if (frame.kind !== 'messages') {
      throw new PeerFrameMalformedError('kind', `${frame.kind} frame on a messages connection`);
    }
    const from = this.peer!;
    const messages = decodeMessageBatch(new BufferReader(frame.payload), from, this.context.selfId);
    const receivedByType = new Map<string, number>();
    for (const message of messages) {
      receivedByType.set(message.type, (receivedByType.get(message.type) ?? 0) + 1);
    }
    for (const [type, received] of receivedByType) {
      this.context.metrics.messagesReceived.inc({ peer: this.peerLabel, type }, received);
    }
    if (messages.length > 0) {
      this.handlers.onMessages(messages, from);
    }
  }

  private handleSnapshotChunk(frame: Frame): void {
    if (frame.kind !== 'snapshotChunk') {
      throw new PeerFrameMalformedError('kind', `${frame.kind} frame on a snapshot connection`);
    }
    const chunk = decodeSnapshotChunk(frame.payload);
    if (this.snapshotId === undefined) {
      this.snapshotId = chunk.snapshotId;
    } else if (chunk.snapshotId !== this.snapshotId) {
      throw new PeerFrameMalformedError(
        'protocol',
        `chunk of snapshot ${chunk.snapshotId} in stream ${this.snapshotId}`,
      );
    }
    if (chunk.sequence !== this.nextSequence) {
      throw new PeerFrameMalformedError(
        'protocol',
        `chunk ${chunk.sequence} where ${this.nextSequence} was due`,
      );
    }
    this.nextSequence += 1;
    this.snapshotBytes += chunk.bytes.byteLength;
    this.context.metrics.snapshotBytes.inc({ direction: 'received' }, chunk.bytes.byteLength);
    const onSnapshotChunk = this.handlers.onSnapshotChunk!;
    const result = onSnapshotChunk({
      from: this.peer!,
      snapshotId: chunk.snapshotId,
      sequence: chunk.sequence,
      last: chunk.last,
      bytes: chunk.bytes,
    });
    if (result === undefined) {
      this.afterChunkHandled(chunk.last);
      return;
    }
    // The handler is asynchronous: stop reading until it is done. TCP flow control then pushes
    // back to the sender, whose writes wait for 'drain'.
    this.waitingForHandler = true;
    this.socket.pause();
    result.then(
      () => {
        this.waitingForHandler = false;
        if (this.state === 'closed') {
          return;
        }
        this.afterChunkHandled(chunk.last);
        this.socket.resume();
        this.pump();
      },
      (error: unknown) => {
        this.waitingForHandler = false;
        this.context.warnings.warn(
          'snapshotHandlerFailed',
          { peerId: this.peer, snapshotId: chunk.snapshotId, error: String(error) },
          'transport: the snapshot handler failed; closing the stream',
        );
        this.close();
      },
    );
  }

  private afterChunkHandled(last: boolean): void {
    if (!last) {
      return;
    }
    this.state = 'snapshotDone';
    this.context.metrics.snapshotStreams.inc({ direction: 'received', result: 'success' });
    const writer = new BufferWriter(512);
    encodeSnapshotAckFrame(writer, {
      snapshotId: this.snapshotId!,
      chunkCount: this.nextSequence,
      byteCount: this.snapshotBytes,
    });
    // The sender closes the connection once it has the acknowledgement; ending our side too
    // releases the socket even if it does not.
    const ack = writer.takeBytes();
    this.countSent('snapshotAck', ack.byteLength);
    this.socket.end(ack);
  }

  private writeFrame(kind: FrameKind, bytes: Buffer): void {
    this.countSent(kind, bytes.byteLength);
    this.socket.write(bytes);
  }

  private countSent(kind: FrameKind, frameBytes: number): void {
    this.context.metrics.framesSent.inc({ peer: this.peerLabel, kind });
    this.context.metrics.bytesSent.inc({ peer: this.peerLabel }, frameBytes);
  }

  private countMalformed(error: PeerFrameMalformedError): void {
    this.context.metrics.framesMalformed.inc({ reason: error.reason });
    this.context.warnings.warn(
      `inboundMalformed:${error.reason}`,
      {
        peerId: this.peer,
        remoteAddress: this.socket.remoteAddress,
        reason: error.reason,
        error: error.message,
      },
      'transport: closed a connection that sent a malformed frame',
    );
  }
}
