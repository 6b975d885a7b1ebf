import { createMapServer, listen } from './map-server.js';

// Runs the Map server in a process of its own, so that it does not share the load generator's
// event loop (as Impulse's processes do not). Prints its port as one JSON line, then serves
// until SIGTERM.
const server = createMapServer();
server.keepAliveTimeout = 60_000;
const port = await listen(server, '127.0.0.1', 0);
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
