import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/**
 * A fault-injecting TCP proxy network for chaos tests of replicas running as local processes,
 * in the manner of etcd's robustness-test proxy. Every replica advertises, as its peer address, a
 * proxy listener owned by this module, and the proxy forwards to the replica's real peer listener.
 *
 * Each proxied connection is dialled by one replica (the dialler) to another (the destination, the
 * node that owns the proxy listener). The destination is known from the listener; the dialler is
 * named from the first bytes it sends by an injected function, so this module knows nothing of
 * the replicas' protocol. The dialler must speak first.
 *
 * Direction rule: bytes the dialler A sends to B obey the fault on the link (A, B); the bytes B
 * sends back over that connection obey the fault on (B, A). A one-way fault (A, B) therefore blocks
 * only A's data to B. Faults apply to connections already open when they are set or cleared.
 */

/** A fault on one directed link: what happens to the bytes one node sends to another. */
export type LinkFault =
  /**
   * Bytes are silently discarded and the connection is kept open. When the fault is cleared (or
   * replaced), a connection that lost bytes is destroyed, because a byte stream with a hole in it
   * cannot continue; the dialler redials.
   */
  | { readonly kind: 'blackhole' }
  /**
   * Bytes are not read (the source socket is paused, so TCP backpressure builds up) and are
   * delivered in order once the fault clears, like TCP retransmission after a partition heals.
   */
  | { readonly kind: 'stall' }
  /**
   * Each chunk is delivered `delayMs` plus a uniform jitter in [0, `jitterMs`) after the proxy read
   * it, order preserved per direction. A chunk keeps the due time it was given when it was read,
   * as a packet already in flight would, even if the fault is cleared meanwhile.
   */
  | { readonly kind: 'delay'; readonly delayMs: number; readonly jitterMs?: number }
  /**
   * Connections on the link are destroyed with a TCP reset at once, and new ones are accepted and
   * then reset as soon as their dialler is known. A connection between A and B is on both (A, B)
   * and (B, A), since a reset kills the whole connection.
   */
  | { readonly kind: 'reset' };

/** What the network reports through `onEvent`, for logs; `type` is a short kebab-case name. */
export interface FaultNetworkEvent {
  readonly type: string;
  readonly from?: string;
  readonly to?: string;
  readonly detail?: string;
}

/** Where a proxy listener forwards to: a replica's real peer listener. */
export interface ProxyTarget {
  readonly host: string;
  readonly port: number;
}

export interface FaultNetworkOptions {
  /** The address the proxy listeners bind to, such as '127.0.0.1'. */
  readonly host: string;
  /**
   * Names the dialler from the first bytes of a connection (never more than `identifyBytesMax`):
   * a node id; `undefined` when more bytes are needed; or `null` when the bytes cannot name a
   * dialler, in which case the connection is destroyed and counted as unidentified. A throw counts
   * as `null`.
   */
  readonly identifyDialler: (firstBytes: Buffer, destination: string) => string | null | undefined;
  /** The most bytes read while waiting for a dialler's name before giving up. Default 4096. */
  readonly identifyBytesMax?: number;
  /** How long a new connection may take to send enough bytes to be identified. Default 10 000 ms. */
  readonly identifyTimeoutMs?: number;
  /**
   * The most bytes one direction of a connection holds back under a 'delay' fault before the proxy
   * stops reading from its source until the backlog drains. Default 16 MiB.
   */
  readonly delayQueueBytesMax?: number;
  /** The source of jitter for 'delay' faults, uniform in [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** Called for every notable event; it must not throw (a throw is ignored). */
  readonly onEvent?: (event: FaultNetworkEvent) => void;
}

export interface FaultNetworkStats {
  /** Connections accepted by any proxy listener since the network was created. */
  readonly connectionsAccepted: number;
  /** Accepted connections not yet closed or destroyed. */
  readonly connectionsOpen: number;
  /** Connections destroyed because their dialler could not be named (null, too many bytes, timeout, early end). */
  readonly connectionsUnidentified: number;
  /** Connections destroyed by a 'reset' fault, when it was set or when they were accepted. */
  readonly connectionsReset: number;
  /** Connections destroyed because a 'blackhole' that had discarded some of their bytes ended. */
  readonly connectionsBrokenByBlackhole: number;
  /** Socket errors (refused upstream, peer reset, broken pipe); each destroys its connection. */
  readonly socketErrors: number;
  /** Bytes written onward to their destination socket. */
  readonly bytesForwarded: number;
  /** Bytes discarded by 'blackhole' faults (bytes dropped because a connection died are not counted). */
  readonly bytesDiscarded: number;
}

/** Names one TCP connection from the proxy to a real listener on the same host. */
export function upstreamLinkKey(localPort: number, listenPort: number): string {
  return `${localPort}->${listenPort}`;
}

const identifyBytesMaxDefault = 4096;
const identifyTimeoutMsDefault = 10_000;
const delayQueueBytesMaxDefault = 16 * 1024 * 1024;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What a connection needs from the network that owns it. */
interface NetworkContext {
  readonly counters: Mutable<FaultNetworkStats>;
  readonly random: () => number;
  readonly delayQueueBytesMax: number;
  faultOf(from: string, to: string): LinkFault | undefined;
  emit(event: FaultNetworkEvent): void;
  forget(connection: Connection): void;
  /** The proxy's open sockets to real listeners, as `upstreamLinkKey(localPort, listenPort)`. */
  readonly upstreamLinks: Set<string>;
}

interface ProxyNode {
  readonly id: string;
  readonly server: Server;
  target: ProxyTarget;
}

interface QueuedChunk {
  readonly chunk: Buffer;
  readonly dueAtMs: number;
}

export class FaultNetwork {
  private readonly nodes = new Map<string, ProxyNode>();
  private readonly faults = new Map<string, { from: string; to: string; fault: LinkFault }>();
  private readonly connections = new Set<Connection>();
  private readonly counters: Mutable<FaultNetworkStats> = {
    connectionsAccepted: 0,
    connectionsOpen: 0,
    connectionsUnidentified: 0,
    connectionsReset: 0,
    connectionsBrokenByBlackhole: 0,
    socketErrors: 0,
    bytesForwarded: 0,
    bytesDiscarded: 0,
  };
  private readonly context: NetworkContext;
  private readonly upstreamLinks = new Set<string>();
  private readonly identifyBytesMax: number;
  private readonly identifyTimeoutMs: number;
  private closing: Promise<void> | undefined;

  private constructor(private readonly options: FaultNetworkOptions) {
    this.identifyBytesMax = options.identifyBytesMax ?? identifyBytesMaxDefault;
    this.identifyTimeoutMs = options.identifyTimeoutMs ?? identifyTimeoutMsDefault;
    assertPositiveInteger('identifyBytesMax', this.identifyBytesMax);
    assertPositiveInteger('identifyTimeoutMs', this.identifyTimeoutMs);
    const delayQueueBytesMax = options.delayQueueBytesMax ?? delayQueueBytesMaxDefault;
    assertPositiveInteger('delayQueueBytesMax', delayQueueBytesMax);
    this.context = {
      counters: this.counters,
      random: options.random ?? Math.random,
      delayQueueBytesMax,
      faultOf: (from, to) => this.faults.get(linkKey(from, to))?.fault,
      emit: (event) => this.emit(event),
      forget: (connection) => this.connections.delete(connection),
      upstreamLinks: this.upstreamLinks,
    };
  }

  static create(options: FaultNetworkOptions): FaultNetwork {
    return new FaultNetwork(options);
  }

  /**
   * Starts a proxy listener for node `id` that forwards to `target`, on `listenPort` (0, the
   * default, picks a free port), and returns the port it listens on.
   */
  async addNode(id: string, target: ProxyTarget, listenPort = 0): Promise<number> {
    if (this.closing !== undefined) throw new Error('fault network: addNode after close');
    if (this.nodes.has(id)) throw new Error(`fault network: node ${id} already added`);
    // Half-open connections are kept so that a FIN from one side is forwarded, after any bytes
    // held back before it, rather than closing the other side early.
    const server = createServer({ allowHalfOpen: true });
    const node: ProxyNode = { id, server, target };
    this.nodes.set(id, node);
    server.on('connection', (socket) => this.accept(node, socket));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listenPort, this.options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      this.nodes.delete(id);
      throw error;
    }
    server.on('error', (error) => this.emit({ type: 'listener-error', to: id, detail: describe(error) }));
    const port = (server.address() as AddressInfo).port;
    this.emit({ type: 'node-added', to: id, detail: `:${port} -> ${target.host}:${target.port}` });
    return port;
  }

  /** Points node `id`'s proxy at a new target, such as after a restart; its connections are destroyed. */
  retarget(id: string, target: ProxyTarget): void {
    const node = this.nodeOf(id);
    node.target = target;
    this.emit({ type: 'node-retargeted', to: id, detail: `${target.host}:${target.port}` });
    this.destroyConnectionsTo(id, 'destination retargeted');
  }

  /** Closes node `id`'s proxy listener and destroys the connections it accepted. */
  async removeNode(id: string): Promise<void> {
    const node = this.nodeOf(id);
    this.nodes.delete(id);
    this.destroyConnectionsTo(id, 'destination removed');
    await closeServer(node.server);
    this.emit({ type: 'node-removed', to: id });
  }

  /** Sets the fault on the directed link from → to, or clears it with `undefined`. */
  setLinkFault(from: string, to: string, fault: LinkFault | undefined): void {
    if (fault !== undefined) assertValidFault(fault);
    const key = linkKey(from, to);
    if (fault === undefined) {
      if (!this.faults.delete(key)) return;
      this.emit({ type: 'fault-cleared', from, to });
    } else {
      this.faults.set(key, { from, to, fault });
      this.emit({ type: 'fault-set', from, to, detail: describeFault(fault) });
    }
    // Copied because a connection that the change destroys removes itself from the set.
    for (const connection of [...this.connections]) connection.handleLinkFaultChanged(from, to);
  }

  /** Gives every link between nodes on different sides `fault` (default blackhole), both ways. */
  partition(sides: ReadonlyArray<ReadonlyArray<string>>, fault: LinkFault = { kind: 'blackhole' }): void {
    const seen = new Set<string>();
    for (const side of sides) {
      for (const id of side) {
        if (seen.has(id)) throw new Error(`fault network: node ${id} is on more than one side`);
        seen.add(id);
      }
    }
    sides.forEach((side, sideIndex) => {
      sides.forEach((otherSide, otherIndex) => {
        if (sideIndex === otherIndex) return;
        for (const from of side) for (const to of otherSide) this.setLinkFault(from, to, fault);
      });
    });
  }

  /** Cuts node `id` off from every other added node, both ways, with `fault` (default blackhole). */
  isolate(id: string, fault: LinkFault = { kind: 'blackhole' }): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.setLinkFault(id, other, fault);
      this.setLinkFault(other, id, fault);
    }
  }

  /** Clears every link fault. */
  heal(): void {
    for (const { from, to } of [...this.faults.values()]) this.setLinkFault(from, to, undefined);
  }

  activeFaults(): Array<{ from: string; to: string; fault: LinkFault }> {
    return [...this.faults.values()].map(({ from, to, fault }) => ({ from, to, fault }));
  }

  stats(): FaultNetworkStats {
    return { ...this.counters };
  }

  /**
   * The proxy's open connections to the real listeners, each as `upstreamLinkKey(its local port,
   * the listener's port)`: a connection to a real listener that is not among them did not pass
   * through the proxy. (A local port alone does not name a connection: Linux gives one ephemeral
   * port to several connections to different destinations.)
   */
  upstreamConnections(): ReadonlySet<string> {
    return this.upstreamLinks;
  }

  /** Closes every listener and destroys every connection. Calling it again returns the same promise. */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    for (const connection of [...this.connections]) connection.destroy('network closed');
    const servers = [...this.nodes.values()].map((node) => node.server);
    this.nodes.clear();
    await Promise.all(servers.map(closeServer));
    this.emit({ type: 'network-closed' });
  }

  private accept(node: ProxyNode, socket: Socket): void {
    this.counters.connectionsAccepted += 1;
    this.counters.connectionsOpen += 1;
    const connection = new Connection(this.context, node.id, socket, () => node.target, {
      identifyDialler: this.options.identifyDialler,
      identifyBytesMax: this.identifyBytesMax,
      identifyTimeoutMs: this.identifyTimeoutMs,
    });
    this.connections.add(connection);
    connection.start();
  }

  private destroyConnectionsTo(id: string, reason: string): void {
    for (const connection of [...this.connections]) {
      if (connection.destination === id) connection.destroy(reason);
    }
  }

  private nodeOf(id: string): ProxyNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`fault network: unknown node ${id}`);
    return node;
  }

  private emit(event: FaultNetworkEvent): void {
    // A logging hook must never take down a socket event handler, so its failures are dropped.
    try {
      this.options.onEvent?.(event);
    } catch {
      // Ignored on purpose; see above.
    }
  }
}

interface IdentifyOptions {
  readonly identifyDialler: FaultNetworkOptions['identifyDialler'];
  readonly identifyBytesMax: number;
  readonly identifyTimeoutMs: number;
}

/**
 * One proxied connection: the client socket the dialler opened to a proxy listener and, once the
 * dialler is named, the upstream socket to the destination's real listener. The upstream is only
 * dialled after identification so that no byte, and not even a connection, reaches the
 * destination before the link's fault is known.
 */
class Connection {
  private dialler: string | undefined;
  private upstream: Socket | undefined;
  private forward: Direction | undefined;
  private backward: Direction | undefined;
  private firstBytes = Buffer.alloc(0);
  private identifyTimer: ReturnType<typeof setTimeout> | undefined;
  private clientClosed = false;
  private upstreamClosed = false;
  private destroyed = false;

  constructor(
    private readonly context: NetworkContext,
    readonly destination: string,
    private readonly client: Socket,
    private readonly targetOf: () => ProxyTarget,
    private readonly identify: IdentifyOptions,
  ) {}

  start(): void {
    this.client.setNoDelay(true);
    this.client.on('error', (error) => this.handleSocketError('client', error));
    this.client.on('close', (hadError) => {
      this.clientClosed = true;
      this.handleSocketClosed(hadError);
    });
    this.client.on('data', this.handleIdentifyData);
    this.client.on('end', this.handleIdentifyEnd);
    this.identifyTimer = setTimeout(
      () => this.giveUpIdentifying(`not identified within ${this.identify.identifyTimeoutMs} ms`),
      this.identify.identifyTimeoutMs,
    );
    this.identifyTimer.unref();
  }

  /** Applies a change of the fault on (from, to) to whichever directions of this connection it governs. */
  handleLinkFaultChanged(from: string, to: string): void {
    if (this.destroyed || this.dialler === undefined) return;
    const forwardMatches = this.dialler === from && this.destination === to;
    const backwardMatches = this.destination === from && this.dialler === to;
    if (!forwardMatches && !backwardMatches) return;
    if (this.context.faultOf(from, to)?.kind === 'reset') {
      this.context.counters.connectionsReset += 1;
      this.destroy('reset fault', { reset: true });
      return;
    }
    if (forwardMatches) this.forward?.handleFaultChanged();
    if (backwardMatches) this.backward?.handleFaultChanged();
  }

  /** Destroys both sockets; `reset` sends a TCP reset to the peers instead of a FIN. */
  destroy(reason: string, options: { readonly reset?: boolean } = {}): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.identifyTimer);
    this.forward?.dispose();
    this.backward?.dispose();
    if (options.reset === true) {
      resetSocket(this.client);
      if (this.upstream !== undefined) resetSocket(this.upstream);
    } else {
      this.client.destroy();
      this.upstream?.destroy();
    }
    this.context.counters.connectionsOpen -= 1;
    this.context.forget(this);
    this.context.emit({
      type: 'connection-closed',
      ...(this.dialler === undefined ? {} : { from: this.dialler }),
      to: this.destination,
      detail: reason,
    });
  }

  private readonly handleIdentifyData = (chunk: Buffer): void => {
    if (this.destroyed) return;
    this.firstBytes = Buffer.concat([this.firstBytes, chunk]);
    const shown = this.firstBytes.subarray(0, this.identify.identifyBytesMax);
    let answer: string | null | undefined;
    try {
      answer = this.identify.identifyDialler(shown, this.destination);
    } catch (error) {
      this.giveUpIdentifying(`identifyDialler threw: ${describe(error)}`);
      return;
    }
    if (answer === null) {
      this.giveUpIdentifying('identifyDialler could not name the dialler');
    } else if (answer === undefined) {
      if (shown.length >= this.identify.identifyBytesMax) {
        this.giveUpIdentifying(`no dialler named within ${this.identify.identifyBytesMax} bytes`);
      }
    } else {
      this.becomeIdentified(answer);
    }
  };

  private readonly handleIdentifyEnd = (): void => {
    this.giveUpIdentifying('ended before the dialler was named');
  };

  private giveUpIdentifying(reason: string): void {
    if (this.destroyed) return;
    this.context.counters.connectionsUnidentified += 1;
    this.destroy(`unidentified: ${reason}`);
  }

  private becomeIdentified(dialler: string): void {
    clearTimeout(this.identifyTimer);
    this.identifyTimer = undefined;
    this.client.off('data', this.handleIdentifyData);
    this.client.off('end', this.handleIdentifyEnd);
    this.dialler = dialler;
    this.context.emit({ type: 'connection-identified', from: dialler, to: this.destination });
    if (
      this.context.faultOf(dialler, this.destination)?.kind === 'reset' ||
      this.context.faultOf(this.destination, dialler)?.kind === 'reset'
    ) {
      this.context.counters.connectionsReset += 1;
      this.destroy('reset fault', { reset: true });
      return;
    }
    const target = this.targetOf();
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.upstream = upstream;
    upstream.setNoDelay(true);
    let link: string | undefined;
    upstream.once('connect', () => {
      if (upstream.localPort === undefined) return;
      link = upstreamLinkKey(upstream.localPort, target.port);
      this.context.upstreamLinks.add(link);
    });
    upstream.on('error', (error) => this.handleSocketError('upstream', error));
    upstream.on('close', (hadError) => {
      if (link !== undefined) this.context.upstreamLinks.delete(link);
      this.upstreamClosed = true;
      this.handleSocketClosed(hadError);
    });
    this.forward = new Direction(this.context, this, this.client, upstream, dialler, this.destination);
    this.backward = new Direction(this.context, this, upstream, this.client, this.destination, dialler);
    const firstBytes = this.firstBytes;
    this.firstBytes = Buffer.alloc(0);
    this.forward.accept(firstBytes);
    this.forward.start();
    this.backward.start();
  }

  private handleSocketError(side: 'client' | 'upstream', error: Error): void {
    if (this.destroyed) return;
    this.context.counters.socketErrors += 1;
    this.context.emit({
      type: 'socket-error',
      ...(this.dialler === undefined ? {} : { from: this.dialler }),
      to: this.destination,
      detail: `${side}: ${describe(error)}`,
    });
    this.destroy(`${side} socket error`);
  }

  /**
   * A socket that closed cleanly has already passed its end on through its direction, and the
   * other socket closes once its own bytes are through, so the connection is done when both have
   * closed. A socket that closed with an error takes the other one down with it.
   */
  private handleSocketClosed(hadError: boolean): void {
    if (this.destroyed) return;
    if (hadError) {
      this.destroy('socket closed with an error');
    } else if (this.clientClosed && (this.upstream === undefined || this.upstreamClosed)) {
      this.destroy('closed');
    }
  }
}

/**
 * One direction of a connection: bytes read from `source` and written to `sink`, governed by the
 * fault on the link (from, to). Every chunk passes through a queue so that order holds whatever
 * the fault does; with no fault, a chunk is written as soon as it is read.
 */
class Direction {
  private readonly queue: QueuedChunk[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sourcePaused = false;
  private sinkBlocked = false;
  private sourceEnded = false;
  private sinkEnded = false;
  private disposed = false;
  /** Whether a blackhole discarded any of this direction's bytes, which breaks the stream for good. */
  private lostBytes = false;

  constructor(
    private readonly context: NetworkContext,
    private readonly connection: Connection,
    private readonly source: Socket,
    private readonly sink: Socket,
    private readonly from: string,
    private readonly to: string,
  ) {}

  start(): void {
    this.source.on('data', (chunk: Buffer) => this.accept(chunk));
    this.source.on('end', () => {
      this.sourceEnded = true;
      this.pump();
    });
    this.sink.on('drain', () => {
      this.sinkBlocked = false;
      this.pump();
    });
  }

  accept(chunk: Buffer): void {
    if (this.disposed || chunk.length === 0) return;
    const fault = this.fault();
    if (fault?.kind === 'blackhole') {
      this.discard(chunk.length);
      return;
    }
    const delayMs =
      fault?.kind === 'delay' ? fault.delayMs + this.context.random() * (fault.jitterMs ?? 0) : 0;
    this.queue.push({ chunk, dueAtMs: performance.now() + delayMs });
    this.queuedBytes += chunk.length;
    // A pending timer already waits for the head of the queue, which this chunk is behind.
    if (this.timer === undefined) this.pump();
    else this.updateFlow();
  }

  handleFaultChanged(): void {
    if (this.disposed) return;
    if (this.lostBytes && this.fault()?.kind !== 'blackhole') {
      this.context.counters.connectionsBrokenByBlackhole += 1;
      this.connection.destroy(`blackhole ${this.from} -> ${this.to} lost bytes; the stream cannot continue`);
      return;
    }
    this.pump();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.queueHead = 0;
    this.queuedBytes = 0;
  }

  /** Writes every chunk that is due, discards or holds them as the fault says, and passes the end on. */
  private pump(): void {
    if (this.disposed) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const fault = this.fault();
    if (fault?.kind === 'blackhole') {
      // Chunks still held back were in flight when the link went dark, so they are lost too. The
      // end of the stream is held rather than lost: it passes on if the link clears intact.
      for (let chunk = this.dequeue(); chunk !== undefined; chunk = this.dequeue())
        this.discard(chunk.length);
    } else if (fault?.kind !== 'stall' && !this.sink.destroyed) {
      const nowMs = performance.now();
      while (!this.sinkBlocked) {
        const head = this.queue[this.queueHead];
        if (head === undefined) break;
        if (head.dueAtMs > nowMs) {
          this.timer = setTimeout(
            () => {
              this.timer = undefined;
              this.pump();
            },
            Math.max(1, Math.ceil(head.dueAtMs - nowMs)),
          );
          this.timer.unref();
          break;
        }
        this.dequeue();
        this.context.counters.bytesForwarded += head.chunk.length;
        if (!this.sink.write(head.chunk)) this.sinkBlocked = true;
      }
      if (this.sourceEnded && !this.sinkEnded && this.queuedBytes === 0) {
        this.sinkEnded = true;
        this.sink.end();
      }
    }
    this.updateFlow();
  }

  /** Pauses the source while the link stalls, the sink pushes back, or the delay queue is full. */
  private updateFlow(): void {
    const fault = this.fault();
    const shouldPause =
      fault?.kind === 'stall' ||
      (fault?.kind !== 'blackhole' && this.sinkBlocked) ||
      this.queuedBytes >= this.context.delayQueueBytesMax;
    if (shouldPause && !this.sourcePaused) {
      this.sourcePaused = true;
      this.source.pause();
    } else if (!shouldPause && this.sourcePaused) {
      this.sourcePaused = false;
      this.source.resume();
    }
  }

  private dequeue(): Buffer | undefined {
    const head = this.queue[this.queueHead];
    if (head === undefined) return undefined;
    this.queueHead += 1;
    this.queuedBytes -= head.chunk.length;
    // Compacting now and then keeps dequeue O(1) without letting consumed slots pile up.
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead >= 1024 && this.queueHead * 2 >= this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    return head.chunk;
  }

  private discard(byteCount: number): void {
    this.context.counters.bytesDiscarded += byteCount;
    if (this.lostBytes) return;
    // Reported once per direction rather than per chunk, so a busy link does not flood the log.
    this.lostBytes = true;
    this.context.emit({
      type: 'connection-lost-bytes',
      from: this.from,
      to: this.to,
      detail: 'the connection will be destroyed when the blackhole ends',
    });
  }

  private fault(): LinkFault | undefined {
    return this.context.faultOf(this.from, this.to);
  }
}

function linkKey(from: string, to: string): string {
  return JSON.stringify([from, to]);
}

/** Sends a TCP reset where the socket allows it; a socket still connecting is simply destroyed. */
function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting) {
    socket.destroy();
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    // A socket whose handle is already gone cannot send a reset; destroying it is all that is left.
    socket.destroy();
  }
}

function closeServer(server: Server): Promise<void> {
  // The callback's error only says the server was not listening, which is the state wanted here.
  return new Promise((resolve) => server.close(() => resolve()));
}

function assertValidFault(fault: LinkFault): void {
  if (fault.kind !== 'delay') return;
  if (!Number.isFinite(fault.delayMs) || fault.delayMs < 0) {
    throw new RangeError(`fault network: delayMs must be a finite number >= 0, got ${fault.delayMs}`);
  }
  const jitterMs = fault.jitterMs ?? 0;
  if (!Number.isFinite(jitterMs) || jitterMs < 0) {
    throw new RangeError(`fault network: jitterMs must be a finite number >= 0, got ${jitterMs}`);
  }
}

function assertPositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`fault network: ${name} must be a positive integer, got ${value}`);
  }
}

function describeFault(fault: LinkFault): string {
  if (fault.kind !== 'delay') return fault.kind;
  return `delay ${fault.delayMs} ms${fault.jitterMs === undefined ? '' : ` + jitter ${fault.jitterMs} ms`}`;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined ? error.message : `${code}: ${error.message}`;
  }
  return String(error);
}
