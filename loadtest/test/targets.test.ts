import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpClient } from '../src/create-http-client.js';
import { httpClientNames } from '../src/http-client.js';
import { createMapServer, listen } from '../src/map-server.js';
import { ImpulseTarget } from '../src/targets/impulse-target.js';

describe('the /kv target over both HTTP clients, against the bare Map server', () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    server = createMapServer();
    port = await listen(server, '127.0.0.1', 0);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it.each(httpClientNames)('%s: put, get, delete, and a clear answer to scans', async (clientName) => {
    const client = createHttpClient(clientName, {
      origin: `http://127.0.0.1:${port}`,
      connectionsMax: 4,
      requestTimeoutMs: 5000,
    });
    const target = new ImpulseTarget('map', client);
    try {
      const key = `key/with spaces/${clientName}`;
      await target.put(key, Buffer.from('hello'));
      expect(Buffer.from((await target.get(key)) ?? []).toString()).toBe('hello');
      await Promise.all(
        Array.from({ length: 20 }, (_, index) => target.put(`${key}-${index}`, Buffer.alloc(1024))),
      );
      expect((await target.get(`${key}-7`))?.length).toBe(1024);
      await target.delete(key);
      expect(await target.get(key)).toBeUndefined();
      expect(await target.supportsScan()).toBe(false);
    } finally {
      await target.close();
    }
  });
});
