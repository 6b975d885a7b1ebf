export { ShardNode, dataDirectoryOf } from './shard-node.js';
export { parseShardNodeConfig, shardNodeOptions, shardNodeProgram, type ShardNodeConfig } from './config.js';
export { checkShardNodeConfig } from './config-checks.js';
export { NodeProcess, nodeHostingOf } from './node/index.js';
export { createShardApp } from './server/app.js';
export * from './storage/index.js';
// The peer protocol's framing and handshake, for tools that speak it (the chaos tool's proxy reads
// replica and node hellos; the peer fuzz test speaks for a member, with and without the cluster
// secret).
export {
  BufferWriter,
  FrameDecoder,
  beginFrame,
  decodeHello,
  encodeAuthFrame,
  encodeHelloFrame,
  encodeMessage,
  encodeNodeHelloFrame,
  finishFrame,
  helloAtStreamStart,
  networkMessageTypes,
  nodeHelloAtStreamStart,
  proofOf,
  protocolVersion,
  type Hello,
  type NodeHello,
} from './transport/index.js';
export type { Message, Entry as RaftEntry } from './raft/index.js';
// The state machine's own record encoding, for tests and tools that write a replica's state on
// purpose (the consistency-check test alters a stopped replica's state with valid records).
export { dataKey, sealRecord } from './state-machine/index.js';
