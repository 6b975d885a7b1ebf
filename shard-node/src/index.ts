export { ShardNode, dataDirectoryOf } from './shard-node.js';
export { parseShardNodeConfig, shardNodeOptions, shardNodeProgram, type ShardNodeConfig } from './config.js';
export { createShardApp } from './server/app.js';
export * from './storage/index.js';
export { helloAtStreamStart, type Hello } from './transport/index.js';
