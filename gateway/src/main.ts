#!/usr/bin/env node
import { loadClusterConfig, runService, withClusterLimits } from '@impulse/common';
import { parseGatewayConfig, withAdminToken } from './config.js';
import { Gateway } from './gateway.js';

void runService({
  program: 'impulse-gateway',
  service: 'gateway',
  parse: () => {
    const parsed = parseGatewayConfig({ argv: process.argv.slice(2), env: process.env });
    const cluster = loadClusterConfig({ json: parsed.cluster, file: parsed.clusterFile });
    // The key and value limits are the cluster's, so that the gateway and every replica agree.
    return { config: withAdminToken(withClusterLimits(parsed, cluster), process.env), cluster };
  },
  logLevel: ({ config }) => config.logLevel,
  start: ({ config, cluster }, logger) => Gateway.start(config, cluster, logger),
});
