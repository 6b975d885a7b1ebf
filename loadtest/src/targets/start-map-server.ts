import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createHttpClient } from '../create-http-client.js';
import type { HttpClientName } from '../http-client.js';
import { ImpulseTarget } from './impulse-target.js';
import type { RunningTarget } from './running-target.js';

const mapServerMain = fileURLToPath(new URL('../map-server-main.js', import.meta.url));
const startTimeoutMs = 10_000;

/** The bare node:http + Map server, in a child process of its own. */
export async function startMapServer(options: {
  readonly client: HttpClientName;
  readonly connectionsMax: number;
  readonly requestTimeoutMs: number;
}): Promise<RunningTarget> {
  const child = spawn(process.execPath, [mapServerMain], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const timeout = setTimeout(() => child.kill('SIGKILL'), startTimeoutMs);
  const [firstLine] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(() => {
      throw new Error('the Map server exited during start-up');
    }),
  ])) as [string];
  clearTimeout(timeout);
  const { port } = JSON.parse(firstLine) as { port: number };
  const client = createHttpClient(options.client, {
    origin: `http://127.0.0.1:${port}`,
    connectionsMax: options.connectionsMax,
    requestTimeoutMs: options.requestTimeoutMs,
  });
  return {
    name: 'map',
    target: new ImpulseTarget('map', client),
    description: 'bare node:http server with a Map (no gateway, no disk): the HTTP ceiling',
    processes: () => (child.pid === undefined ? [] : [{ name: 'map-server', pid: child.pid }]),
    stop: async () => {
      await client.close();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
