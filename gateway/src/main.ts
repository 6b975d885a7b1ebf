#!/usr/bin/env node
import { loadClusterConfig, runService } from '@impulse/common';
import { parseGatewayConfig } from './config.js';
import { Gateway } from './gateway.js';

void runService({
  program: 'impulse-gateway',
  service: 'gateway',
  parse: () => {
    const config = parseGatewayConfig({ argv: process.argv.slice(2), env: process.env });
    return { config, cluster: loadClusterConfig({ json: config.cluster, file: config.clusterFile }) };
  },
  logLevel: ({ config }) => config.logLevel,
  start: ({ config, cluster }, logger) => Gateway.start(config, cluster, logger),
});
