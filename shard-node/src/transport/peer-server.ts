import { createServer, type Server } from 'node:net';
import type { TransportLimits } from './limits.js';

/**
 * Opens the TCP server a transport accepts peers on: no Nagle delay, keep-alive, and at most
 * `inboundConnectionsMax` connections. Resolves once it listens; rejects when it cannot (a port
 * taken). Both transports, the per-replica one and the node's, listen through it.
 */
export async function listenForPeers(limits: TransportLimits, port: number, host: string): Promise<Server> {
  const server = createServer({ noDelay: true, keepAlive: true });
  server.maxConnections = limits.inboundConnectionsMax;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
