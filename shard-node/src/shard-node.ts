import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { createMetricsRegistry, type Logger } from '@impulse/common';
import type { ShardNodeConfig } from './config.js';
import { createShardApp } from './server/app.js';
import { openEngine, type Engine } from './storage/index.js';

/** Keep-alive idle timeout: longer than the gateway agent's, so the server never closes first. */
const keepAliveTimeoutMs = 65_000;

export function dataDirectoryOf(config: ShardNodeConfig): string {
  return resolve(config.dataDir !== '' ? config.dataDir : `data/${config.groupId}/${config.replicaId}`);
}

/** One replica: its engine and its HTTP server, started and stopped together. */
export class ShardNode {
  private constructor(
    private readonly readiness: { ready: boolean },
    readonly config: ShardNodeConfig,
    private readonly logger: Logger,
    private readonly engine: Engine,
    private readonly server: Server,
  ) {}

  static async start(config: ShardNodeConfig, logger: Logger): Promise<ShardNode> {
    const directory = dataDirectoryOf(config);
    const engine = await openEngine(
      config.engine === 'leveldb'
        ? { name: 'leveldb', directory, sync: config.engineSync }
        : { name: 'memory' },
    );
    const registry = createMetricsRegistry({
      service: 'shard-node',
      group: config.groupId,
      replica: config.replicaId,
    });
    const readiness = { ready: false };
    const app = createShardApp({
      config,
      engine,
      logger,
      registry,
      startedAtMs: Date.now(),
      isReady: () => readiness.ready,
    });
    const server = createServer({ keepAliveTimeout: keepAliveTimeoutMs }, app);
    const node = new ShardNode(readiness, config, logger, engine, server);
    try {
      server.listen(config.port, config.host);
      await once(server, 'listening');
    } catch (error) {
      await engine.close();
      throw error;
    }
    readiness.ready = true;
    logger.info(
      {
        host: config.host,
        port: node.port,
        engine: config.engine,
        dataDir: config.engine === 'leveldb' ? directory : null,
      },
      'server: listening',
    );
    return node;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * Stops taking requests, lets those in flight finish (up to the shutdown timeout), then flushes
   * and closes the engine. Idempotent.
   */
  async stop(): Promise<void> {
    if (!this.readiness.ready && !this.server.listening) return;
    this.readiness.ready = false;
    this.logger.info('server: stopping');
    const closed = new Promise<void>((resolveClosed) => this.server.close(() => resolveClosed()));
    this.server.closeIdleConnections();
    const timeout = new Promise<void>((resolveTimeout) => {
      const timer = setTimeout(resolveTimeout, this.config.shutdownTimeout);
      timer.unref();
    });
    await Promise.race([closed, timeout]);
    this.server.closeAllConnections();
    await this.engine.close();
    this.logger.info('server: stopped, engine closed');
  }
}
