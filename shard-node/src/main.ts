#!/usr/bin/env node
import { runService } from '@impulse/common';
import { parseShardNodeConfig } from './config.js';
import { checkShardNodeConfig } from './config-checks.js';
import { ShardNode } from './shard-node.js';

void runService({
  program: 'impulse-shard-node',
  service: 'shard-node',
  parse: () =>
    checkShardNodeConfig(
      parseShardNodeConfig({ argv: process.argv.slice(2), env: process.env }),
      process.env,
    ),
  logLevel: (config) => config.logLevel,
  logBindings: (config) => ({ groupId: config.groupId, replicaId: config.replicaId }),
  start: (config, logger) => ShardNode.start(config, logger),
});
