/**
 * One accepted connection. It must open with a hello that the transport's handshake accepts
 * (`handshake.ts`: a known peer replica of this group, or any node of this cluster), then the
 * dialler's proof; then it carries either message frames (handed to the transport, which checks
 * and dispatches them) or one snapshot stream (handed chunk by chunk to its sink, with
 * backpressure). A node transport's stream opens with a header naming its group and replicas,
 * from which the transport picks the sink; a replica transport's stream needs none.
 *
 * Anything unexpected (a frame that fails its checks, a kind out of place, a message that claims
 * another sender, a chunk out of order) closes this connection, is counted and is logged at a
 * limited rate. It never throws out of a socket callback, so a hostile peer cannot crash the
 * process, and other connections carry on.
 */
import type { Socket } from 'node:net';

import type { NodeId } from '../raft/index.js';
import { BufferWriter } from './buffer-writer.js';
import type { TransportContext } from './context.js';
import { PeerFrameMalformedError } from './errors.js';
import { FrameDecoder } from './frame-decoder.js';
import type { Frame, FrameKind } from './frame.js';
import type { AcceptorHandshake } from './handshake.js';
import { decodeAuth, type ConnectionPurpose } from './hello.js';
import { proofMatches } from './peer-auth.js';
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

/** Where the chunks of one inbound snapshot stream go. */
export interface SnapshotSink {
  /** The sending replica's Raft id. */
  readonly from: NodeId;
  /** Returning a promise stops reading the stream until it settles; a rejection aborts the stream. */
  onChunk(chunk: SnapshotChunk): void | Promise<void>;
  onAborted(abort: SnapshotAbort): void;
}

export interface InboundHandlers {
  readonly handshake: AcceptorHandshake;
  /**
   * A frame on an identified messages connection: check it and hand its messages over. Throws
   * `PeerFrameMalformedError` for a frame of another kind or one that does not decode.
   */
  onMessagesFrame(frame: Frame, connection: InboundConnection): void;
  /** Whether snapshot streams are taken at all (they are refused at the hello otherwise). */
  readonly takesSnapshots: boolean;
  /** Whether one more snapshot stream may start now. */
  canStartSnapshotStream(): boolean;
  /** Whether a snapshot stream opens with a `snapshotHeader` frame (a node transport's do). */
  readonly snapshotStreamsHaveHeader: boolean;
  /**
   * The sink of a new snapshot stream, chosen from its header frame (undefined when streams have
   * none), or why the stream is refused (the connection is then closed). Throws
   * `PeerFrameMalformedError` for a header that does not decode.
   */
  openSnapshotStream(
    header: Frame | undefined,
    connection: InboundConnection,
  ): SnapshotSink | { readonly refusal: string };
  /** The connection is identified (its hello and proof were accepted). */
  onIdentified(connection: InboundConnection): void;
  onClosed(connection: InboundConnection): void;
}

/** `auth`: the hello was answered; the dialler's proof must come before anything else. */
type InboundState = 'hello' | 'auth' | 'messages' | 'snapshotHeader' | 'snapshot' | 'snapshotDone' | 'closed';

export class InboundConnection {
  private state: InboundState = 'hello';
  private readonly decoder: FrameDecoder;
  private peer: NodeId | undefined;
  private peerName = 'unknown';
  /** True while the snapshot handler works on a chunk: frames wait in the decoder, the socket is paused. */
  private waitingForHandler = false;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private sink: SnapshotSink | undefined;
  private snapshotId: string | undefined;
  private nextSequence = 0;
  /** Whether this side closed the connection (then a partial frame in the decoder is no news). */
  private closedByUs = false;
  private snapshotBytes = 0;
  /** Between our hello answer and the dialler's proof: what that proof must be, and the purpose. */
  private awaitedProof: { readonly proof: Uint8Array; readonly purpose: ConnectionPurpose } | undefined;

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
        { peer: this.peerName, error: error.message },
        'transport: inbound connection error',
      );
    });
    socket.on('close', () => {
      this.onSocketClosed();
    });
  }

  /** The peer's Raft id, once its hello was accepted (replica connections only). */
  get peerId(): NodeId | undefined {
    return this.peer;
  }

  /** The peer as metrics and logs name it, once its hello was accepted ('unknown' before). */
  get peerLabel(): string {
    return this.peerName;
  }

  get purpose(): InboundState {
    return this.state;
  }

  /** Whether this connection carries (or is about to carry) a snapshot stream. */
  get isSnapshotStream(): boolean {
    return this.state === 'snapshotHeader' || this.state === 'snapshot';
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
    if (previous === 'snapshot' && this.snapshotId !== undefined && this.sink !== undefined) {
      this.context.metrics.snapshotStreams.inc({ direction: 'received', result: 'failure' });
      this.sink.onAborted({
        from: this.sink.from,
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
    if (this.state !== 'hello') {
      this.context.metrics.framesReceived.inc({ peer: this.peerName, kind: frame.kind });
      this.context.metrics.bytesReceived.inc({ peer: this.peerName }, frame.frameBytes);
    }
    switch (this.state) {
      case 'hello':
        this.handleHello(frame);
        return;
      case 'auth':
        this.handleAuth(frame);
        return;
      case 'messages':
        this.handlers.onMessagesFrame(frame, this);
        return;
      case 'snapshotHeader':
        if (frame.kind !== 'snapshotHeader') {
          throw new PeerFrameMalformedError('kind', `${frame.kind} frame before the snapshot header`);
        }
        this.openSnapshotStream(frame);
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
    const writer = new BufferWriter(512);
    const verdict = this.handlers.handshake.answer(frame, writer);
    if (verdict.refusal !== undefined) {
      this.refuseHello(verdict.refusal, verdict.hello);
      return;
    }
    const accepted = verdict.accepted;
    if (accepted.purpose === 'snapshot') {
      if (!this.handlers.takesSnapshots) {
        this.refuseHello('snapshotsNotTaken', undefined);
        return;
      }
      if (!this.handlers.canStartSnapshotStream()) {
        this.refuseHello('snapshotStreamsFull', undefined);
        return;
      }
    }
    this.peer = accepted.peerId;
    this.peerName = accepted.peerLabel;
    this.state = 'auth';
    this.context.metrics.framesReceived.inc({ peer: this.peerName, kind: frame.kind });
    this.context.metrics.bytesReceived.inc({ peer: this.peerName }, frame.frameBytes);
    this.awaitedProof = { proof: accepted.awaitedProof, purpose: accepted.purpose };
    this.writeFrame(frame.kind, writer.takeBytes());
  }

  private refuseHello(reason: string, hello: unknown): void {
    this.context.metrics.handshakesRefused.inc({ reason });
    // A sender of this cluster and group that is not a member is routine during membership
    // changes (a replica started with --join dials before the leader adds it, a removed one until
    // it is stopped): info, not a warning. Every refusal is counted all the same.
    this.context.warnings.warn(
      `inboundRefused:${reason}`,
      { remoteAddress: this.socket.remoteAddress, reason, hello },
      'transport: refused a connection whose hello is not for this replica or node',
      reason === 'unknownPeer' ? 'info' : 'warn',
    );
    this.close();
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
        { remoteAddress: this.socket.remoteAddress, reason: 'authentication', claimedPeer: this.peerName },
        'transport: refused a connection from a peer that does not hold the cluster secret',
      );
      this.close();
      return;
    }
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    if (awaited.purpose === 'messages') {
      this.state = 'messages';
    } else if (this.handlers.snapshotStreamsHaveHeader) {
      this.state = 'snapshotHeader';
    } else {
      this.openSnapshotStream(undefined);
    }
    if (this.state !== 'closed') this.handlers.onIdentified(this);
  }

  private openSnapshotStream(header: Frame | undefined): void {
    const opened = this.handlers.openSnapshotStream(header, this);
    if ('refusal' in opened) {
      this.context.metrics.snapshotStreamsRefused.inc({ reason: opened.refusal });
      this.context.warnings.warn(
        `snapshotRefused:${opened.refusal}`,
        { peer: this.peerName, reason: opened.refusal },
        'transport: refused a snapshot stream that no replica here takes',
      );
      this.close();
      return;
    }
    this.sink = opened;
    this.state = 'snapshot';
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
    const sink = this.sink!;
    const result = sink.onChunk({
      from: sink.from,
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
          { peer: this.peerName, snapshotId: chunk.snapshotId, error: String(error) },
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
    this.context.metrics.framesSent.inc({ peer: this.peerName, kind });
    this.context.metrics.bytesSent.inc({ peer: this.peerName }, frameBytes);
  }

  private countMalformed(error: PeerFrameMalformedError): void {
    this.context.metrics.framesMalformed.inc({ reason: error.reason });
    this.context.warnings.warn(
      `inboundMalformed:${error.reason}`,
      {
        peer: this.peerName,
        remoteAddress: this.socket.remoteAddress,
        reason: error.reason,
        error: error.message,
      },
      'transport: closed a connection that sent a malformed frame',
    );
  }
}
