import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  closeServerGracefully,
  createHttpServer,
  createMetricsRegistry,
  type ClusterConfig,
  type Logger,
} from '@impulse/common';
import { createGatewayApp, type GatewayApp } from './app.js';
import type { GatewayConfig } from './config.js';
import { ClusterRouter } from './router.js';

/** The gateway process: router, proxy and HTTP server, started and stopped together. */
export class Gateway {
  private constructor(
    private readonly readiness: { ready: boolean },
    readonly config: GatewayConfig,
    private readonly logger: Logger,
    private readonly server: Server,
    private readonly gatewayApp: GatewayApp,
  ) {}

  static async start(config: GatewayConfig, cluster: ClusterConfig, logger: Logger): Promise<Gateway> {
    if (config.adminToken === undefined) {
      logger.warn(
        'gateway: no admin token (--admin-token-file or IMPULSE_ADMIN_TOKEN): GET /admin/cluster is open to anyone, and asks the replicas their status without a token (a replica given one answers 401)',
      );
    }
    const router = new ClusterRouter(cluster);
    const registry = createMetricsRegistry({ service: 'gateway' });
    const readiness = { ready: false };
    const gatewayApp = createGatewayApp({
      config,
      router,
      logger,
      registry,
      isReady: () => readiness.ready,
    });
    const server = createHttpServer({ limits: config, listener: gatewayApp.handle, registry, logger });
    const gateway = new Gateway(readiness, config, logger, server, gatewayApp);
    server.listen(config.port, config.host);
    await once(server, 'listening');
    readiness.ready = true;
    logger.info(
      {
        host: config.host,
        port: gateway.port,
        epoch: cluster.epoch,
        groups: cluster.groups.map((group) => group.id),
      },
      'gateway: listening',
    );
    return gateway;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    if (!this.readiness.ready && !this.server.listening) return;
    this.readiness.ready = false;
    this.logger.info('gateway: stopping');
    await closeServerGracefully(this.server, this.config.shutdownTimeout);
    this.gatewayApp.close();
    this.logger.info('gateway: stopped');
  }
}
