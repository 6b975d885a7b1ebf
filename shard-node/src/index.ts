export { ShardNode, dataDirectoryOf } from './shard-node.js';
export { parseShardNodeConfig, shardNodeOptions, shardNodeProgram, type ShardNodeConfig } from './config.js';
export { createShardApp } from './server/app.js';
export * from './storage/index.js';
export { helloAtStreamStart, type Hello } from './transport/index.js';
// The state machine's own record encoding, for tests and tools that write a replica's state on
// purpose (the consistency-check test alters a stopped replica's state with valid records).
export { dataKey, sealRecord } from './state-machine/index.js';
