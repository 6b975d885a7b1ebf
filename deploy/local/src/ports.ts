import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports are picked below the kernel's ephemeral range (where outgoing connections take their
 * local ports), so that a port found free here is not taken by some connection before the process
 * it is meant for binds it. Asking the kernel for port 0 would hand out an ephemeral port, which
 * the many connections of a starting cluster race for.
 */
const fallbackEphemeralFirstPort = 32768;
const lowestPort = 10_000;

function ephemeralFirstPort(): number {
  try {
    const [first] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const port = Number(first);
    return Number.isInteger(port) && port > lowestPort + 1000 ? port : fallbackEphemeralFirstPort;
  } catch {
    return fallbackEphemeralFirstPort;
  }
}

const handedOut = new Set<number>();

/** Whether `port` can be bound on `host` right now. */
function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * A port that is free on `host`, chosen at random below the ephemeral range and never handed out
 * twice by this process.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const upper = ephemeralFirstPort();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = lowestPort + Math.floor(Math.random() * (upper - lowestPort));
    if (handedOut.has(port)) continue;
    if (await canBind(port, host)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port found on ${host} below ${upper}`);
}
