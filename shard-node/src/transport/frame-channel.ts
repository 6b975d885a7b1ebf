/**
 * A socket seen as a sequence of awaitable steps: connect, write a frame (waiting for 'drain' when
 * the socket buffer is full), read the next frame with a deadline. Snapshot streams use it: their
 * pace is set by the receiver, so the sender's code reads best as a loop of awaits.
 *
 * Every failure (connection error, close, malformed frame, deadline, abort) rejects the pending
 * step and every later one with a `TransportError`.
 */
import { connect, type Socket } from 'node:net';

import type { PeerAddress } from './context.js';
import { PeerFrameMalformedError, TransportError } from './errors.js';
import { FrameDecoder } from './frame-decoder.js';
import type { Frame } from './frame.js';

export class FrameChannel {
  private readonly decoder: FrameDecoder;
  private failure: TransportError | undefined;
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly socket: Socket,
    frameBytesMax: number,
  ) {
    this.decoder = new FrameDecoder(frameBytesMax);
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      this.wake();
    });
    socket.on('connect', () => this.wake());
    socket.on('drain', () => this.wake());
    socket.on('error', (error: Error) => {
      this.fail(new TransportError('PEER_DISCONNECTED', `transport: ${error.message}`, error));
    });
    socket.on('close', () => {
      this.fail(new TransportError('PEER_DISCONNECTED', 'transport: the peer closed the connection'));
    });
  }

  /** Connects to `address`; rejects after `timeoutMs` or when `signal` aborts. */
  static async connect(
    address: PeerAddress,
    options: {
      readonly frameBytesMax: number;
      readonly timeoutMs: number;
      readonly keepAliveInitialDelayMs: number;
    },
    signal: AbortSignal,
  ): Promise<FrameChannel> {
    const socket = connect({ host: address.host, port: address.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, options.keepAliveInitialDelayMs);
    const channel = new FrameChannel(socket, options.frameBytesMax);
    channel.closeOnAbort(signal);
    await channel.until(() => !socket.connecting, options.timeoutMs, 'connecting');
    return channel;
  }

  /** Writes `bytes`; resolves at once if the socket buffer has room, else once it drained. */
  async write(bytes: Uint8Array, stallTimeoutMs: number): Promise<void> {
    this.throwIfFailed();
    if (this.socket.write(bytes)) {
      return;
    }
    await this.until(
      () => {
        // Here a failure wins: a destroyed socket no longer needs to drain, yet nothing was sent.
        this.throwIfFailed();
        return !this.socket.writableNeedDrain;
      },
      stallTimeoutMs,
      'waiting for the peer to read',
    );
  }

  /** Resolves with the next frame; rejects on failure or after `timeoutMs`. */
  async nextFrame(timeoutMs: number): Promise<Frame> {
    let frame: Frame | undefined;
    await this.until(
      () => {
        frame = this.decodeNext();
        return frame !== undefined;
      },
      timeoutMs,
      'waiting for a frame',
    );
    return frame!;
  }

  close(): void {
    this.socket.destroy();
  }

  private closeOnAbort(signal: AbortSignal): void {
    const onAbort = (): void => {
      this.fail(new TransportError('TRANSPORT_STOPPED', 'transport: the snapshot stream was aborted'));
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    this.socket.once('close', () => signal.removeEventListener('abort', onAbort));
  }

  private decodeNext(): Frame | undefined {
    try {
      return this.decoder.next();
    } catch (error: unknown) {
      if (error instanceof PeerFrameMalformedError) {
        this.failure ??= error;
        this.socket.destroy();
      }
      throw error;
    }
  }

  /**
   * Waits until `ready()` holds, checking it now and after each socket event. A condition that
   * holds wins over a failure, so that a frame that arrived just before the peer closed is read.
   */
  private until(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const settledNow = this.check(ready);
    if (settledNow === true) {
      return Promise.resolve();
    }
    if (settledNow !== false) {
      return Promise.reject(settledNow);
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const error = new TransportError(
          'PEER_TIMEOUT',
          `transport: timed out after ${timeoutMs} ms ${what}`,
        );
        this.fail(error);
        reject(error);
      }, timeoutMs);
      const waiter = (): void => {
        const settled = this.check(ready);
        if (settled === false) {
          return;
        }
        clearTimeout(timer);
        this.waiters.delete(waiter);
        if (settled === true) {
          resolve();
        } else {
          reject(settled);
        }
      };
      this.waiters.add(waiter);
    });
  }

  /** True when ready, the failure when failed, false when still waiting. */
  private check(ready: () => boolean): boolean | TransportError {
    try {
      if (ready()) {
        return true;
      }
    } catch (error: unknown) {
      if (!(error instanceof TransportError)) {
        throw error;
      }
      return error;
    }
    return this.failure ?? false;
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) {
      waiter();
    }
  }

  private fail(failure: TransportError): void {
    if (this.failure === undefined) {
      this.failure = failure;
    }
    this.socket.destroy();
    this.wake();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) {
      throw this.failure;
    }
  }
}
