/**
 * Sends one snapshot stream to a peer, on a connection of its own: hello, chunks in order, an
 * empty chunk flagged last, then the receiver's acknowledgement. Each chunk write waits while the socket
 * buffer is full, and the receiver stops reading while its handler works, so a slow disk on the
 * receiving side slows the sender down instead of filling memory on either side.
 */
import { EMPTY_BYTES } from '../raft/index.js';
import { BufferWriter } from './buffer-writer.js';
import type { PeerAddress, TransportContext } from './context.js';
import { PeerFrameMalformedError, TransportError, assert } from './errors.js';
import { FrameChannel } from './frame-channel.js';
import type { Frame } from './frame.js';
import type { DiallerHandshake } from './handshake.js';
import { encodeAuthFrame } from './hello.js';
import { newNonce } from './peer-auth.js';
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

/**
 * Streams `chunks` to the peer at `address` as snapshot `snapshotId`. `handshake` (of purpose
 * `snapshot`) says who speaks to whom; `writeHeader`, when given, writes the frame that follows the
 * handshake before the first chunk (a node transport's `snapshotHeader`, naming the group and the
 * replicas).
 */
export async function sendSnapshotStream(
  context: TransportContext,
  peerLabel: string,
  address: PeerAddress,
  handshake: DiallerHandshake,
  writeHeader: ((writer: BufferWriter) => void) | undefined,
  snapshotId: string,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  signal: AbortSignal,
): Promise<SnapshotSendResult> {
  assert(handshake.purpose === 'snapshot', 'a snapshot stream has a snapshot handshake');
  const limits = context.limits;
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
    const send = async (
      kind: 'hello' | 'nodeHello' | 'auth' | 'snapshotHeader' | 'snapshotChunk',
    ): Promise<void> => {
      const bytes = writer.takeBytes();
      context.metrics.framesSent.inc({ peer: peerLabel, kind });
      context.metrics.bytesSent.inc({ peer: peerLabel }, bytes.byteLength);
      await channel.write(bytes, limits.writeStallTimeoutMs);
    };

    const nonce = newNonce();
    handshake.writeHello(writer, nonce);
    await send(handshake.helloKind);
    const receive = async (timeoutMs: number): Promise<Frame> => {
      const frame = await channel.nextFrame(timeoutMs);
      context.metrics.framesReceived.inc({ peer: peerLabel, kind: frame.kind });
      context.metrics.bytesReceived.inc({ peer: peerLabel }, frame.frameBytes);
      return frame;
    };
    const verdict = handshake.checkAnswer(await receive(limits.handshakeTimeoutMs), nonce);
    if (verdict.refusal !== undefined) {
      context.metrics.handshakesRefused.inc({ reason: verdict.refusal });
      throw new TransportError(
        'PEER_HANDSHAKE_REJECTED',
        `transport: the peer's hello was refused (${verdict.refusal})`,
      );
    }
    encodeAuthFrame(writer, verdict.accepted.proof);
    await send('auth');
    if (writeHeader !== undefined) {
      writeHeader(writer);
      await send('snapshotHeader');
    }

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
