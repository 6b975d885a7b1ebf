#!/usr/bin/env node
import { runService } from '@impulse/common';
import { parseShardNodeConfig } from './config.js';
import { checkShardNodeConfig } from './config-checks.js';
import { NodeProcess } from './node/node-process.js';
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
  logBindings: (config) =>
    config.nodeId !== ''
      ? { nodeId: config.nodeId }
      : { groupId: config.groupId, replicaId: config.replicaId },
  start: (config, logger): Promise<{ stop(): Promise<void> }> =>
    config.nodeId !== '' ? NodeProcess.start(config, logger) : ShardNode.start(config, logger),
});
