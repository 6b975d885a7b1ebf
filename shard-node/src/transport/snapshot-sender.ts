/**
 * Sends one snapshot stream to a peer, on a connection of its own: hello, chunks in order, an
 * empty chunk flagged last, then the receiver's acknowledgement. Each chunk write waits while the socket
 * buffer is full, and the receiver stops reading while its handler works, so a slow disk on the
 * receiving side slows the sender down instead of filling memory on either side.
 */
import { EMPTY_BYTES, type NodeId } from '../raft/index.js';
import { BufferWriter } from './buffer-writer.js';
import type { PeerAddress, TransportContext } from './context.js';
import { PeerFrameMalformedError, TransportError } from './errors.js';
import { FrameChannel } from './frame-channel.js';
import type { Frame } from './frame.js';
import { decodeHello, encodeAuthFrame, encodeHelloFrame, protocolVersion, refuseHello } from './hello.js';
import { newNonce, proofMatches, proofOf, type ConnectionIdentity } from './peer-auth.js';
import {
  decodeSnapshotAck,
  encodeSnapshotChunkFrame,
  snapshotChunkOverheadBytesMax,
} from './snapshot-chunk.js';

export interface SnapshotSendResult {
  /** The chunk frames sent (input chunks larger than a frame are split). */
  readonly chunkCount: number;
  readonly byteCount: number;
}

export async function sendSnapshotStream(
  context: TransportContext,
  to: NodeId,
  address: PeerAddress,
  snapshotId: string,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  signal: AbortSignal,
): Promise<SnapshotSendResult> {
  const limits = context.limits;
  const peerLabel = String(to);
  const channel = await FrameChannel.connect(
    address,
    {
      frameBytesMax: limits.frameBytesMax,
      timeoutMs: limits.handshakeTimeoutMs,
      keepAliveInitialDelayMs: limits.keepAliveInitialDelayMs,
    },
    signal,
  );
  try {
    const writer = new BufferWriter();
    const send = async (kind: 'hello' | 'auth' | 'snapshotChunk'): Promise<void> => {
      const bytes = writer.takeBytes();
      context.metrics.framesSent.inc({ peer: peerLabel, kind });
      context.metrics.bytesSent.inc({ peer: peerLabel }, bytes.byteLength);
      await channel.write(bytes, limits.writeStallTimeoutMs);
    };

    const nonce = newNonce();
    encodeHelloFrame(writer, {
      protocolVersion,
      purpose: 'snapshot',
      clusterId: context.clusterId,
      groupId: context.groupId,
      senderId: context.selfId,
      receiverId: to,
      nonce,
      proof: new Uint8Array(0),
    });
    await send('hello');
    const receive = async (timeoutMs: number): Promise<Frame> => {
      const frame = await channel.nextFrame(timeoutMs);
      context.metrics.framesReceived.inc({ peer: peerLabel, kind: frame.kind });
      context.metrics.bytesReceived.inc({ peer: peerLabel }, frame.frameBytes);
      return frame;
    };
    const helloFrame = await receive(limits.handshakeTimeoutMs);
    if (helloFrame.kind !== 'hello') {
      throw new PeerFrameMalformedError('kind', `${helloFrame.kind} frame instead of the hello answer`);
    }
    const hello = decodeHello(helloFrame.payload);
    const identity: ConnectionIdentity = {
      clusterId: context.clusterId,
      groupId: context.groupId,
      purpose: 'snapshot',
      diallerId: context.selfId,
      acceptorId: to,
    };
    const refusal =
      refuseHello(hello, {
        clusterId: context.clusterId,
        groupId: context.groupId,
        selfId: context.selfId,
        expectedSenderId: to,
        isKnownPeer: (id) => id === to,
      }) ??
      (proofMatches(proofOf(context.secret, 'acceptor', identity, nonce, hello.nonce), hello.proof)
        ? undefined
        : 'authentication');
    if (refusal !== undefined || hello.purpose !== 'snapshot') {
      context.metrics.handshakesRefused.inc({ reason: refusal ?? 'purpose' });
      throw new TransportError(
        'PEER_HANDSHAKE_REJECTED',
        `transport: the peer's hello was refused (${refusal ?? 'purpose'})`,
      );
    }
    encodeAuthFrame(writer, proofOf(context.secret, 'dialler', identity, nonce, hello.nonce));
    await send('auth');

    // Input chunks are written as they come (split when larger than a frame), and an empty chunk
    // flagged last closes the stream. Holding a chunk back to flag it instead would keep a view of
    // the producer's buffer across an await, which a producer that reuses its buffer would corrupt.
    const pieceBytesMax = limits.frameBytesMax - snapshotChunkOverheadBytesMax;
    let sequence = 0;
    let byteCount = 0;
    const sendPiece = async (bytes: Uint8Array, last: boolean): Promise<void> => {
      encodeSnapshotChunkFrame(writer, { snapshotId, sequence, last }, bytes);
      sequence += 1;
      byteCount += bytes.byteLength;
      context.metrics.snapshotBytes.inc({ direction: 'sent' }, bytes.byteLength);
      await send('snapshotChunk');
    };
    for await (const chunk of chunks) {
      if (signal.aborted) {
        throw new TransportError('TRANSPORT_STOPPED', 'transport: the snapshot stream was aborted');
      }
      for (let offset = 0; offset < chunk.byteLength; offset += pieceBytesMax) {
        await sendPiece(chunk.subarray(offset, Math.min(chunk.byteLength, offset + pieceBytesMax)), false);
      }
    }
    await sendPiece(EMPTY_BYTES, true);

    const ackFrame = await receive(limits.snapshotAckTimeoutMs);
    if (ackFrame.kind !== 'snapshotAck') {
      throw new PeerFrameMalformedError(
        'kind',
        `${ackFrame.kind} frame instead of the snapshot acknowledgement`,
      );
    }
    const ack = decodeSnapshotAck(ackFrame.payload);
    if (ack.snapshotId !== snapshotId || ack.chunkCount !== sequence || ack.byteCount !== byteCount) {
      throw new PeerFrameMalformedError(
        'protocol',
        `acknowledgement of ${ack.snapshotId} (${ack.chunkCount} chunks, ${ack.byteCount} bytes) does not match`,
      );
    }
    return { chunkCount: sequence, byteCount };
  } finally {
    channel.close();
  }
}
