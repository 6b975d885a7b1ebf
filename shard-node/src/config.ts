import {
  keyBytesMaxDefault,
  logLevels,
  option,
  parseConfig,
  valueBytesMaxDefault,
  type ConfigOf,
  type ParseConfigInput,
} from '@impulse/common';
import { engineNames } from './storage/index.js';

export const shardNodeProgram = {
  name: 'impulse-shard-node',
  summary: 'one replica of a shard group: stores keys in a storage engine and serves them over HTTP',
};

export const shardNodeOptions = {
  groupId: option.string({ description: 'Id of the shard group this replica belongs to.', default: 'g1' }),
  replicaId: option.string({ description: 'Id of this replica, unique in the cluster.', default: 'g1-r1' }),
  host: option.string({ description: 'Address the client API listens on.', default: '127.0.0.1' }),
  port: option.integer({
    description: 'Port of the client API (0 picks a free port).',
    default: 7001,
    min: 0,
    max: 65535,
  }),
  engine: option.enum({ description: 'Storage engine.', default: 'leveldb', choices: engineNames }),
  dataDir: option.string({
    description: 'Directory of this replica\'s data; "" means ./data/GROUP-ID/REPLICA-ID.',
    default: '',
  }),
  engineSync: option.boolean({
    description: 'fsync every acknowledged write (LevelDB groups concurrent writes into one fsync).',
    default: true,
  }),
  valueBytesMax: option.bytes({
    description: 'Largest value accepted.',
    default: valueBytesMaxDefault,
    min: 0,
    max: 64 * 1024 * 1024,
  }),
  keyBytesMax: option.bytes({
    description: 'Longest key accepted, in bytes of UTF-8.',
    default: keyBytesMaxDefault,
    min: 1,
    max: 64 * 1024,
  }),
  shutdownTimeout: option.milliseconds({
    description: 'How long SIGTERM waits for requests in flight before closing the engine.',
    default: 10_000,
    min: 0,
  }),
  logLevel: option.enum({ description: 'Log level.', default: 'info', choices: logLevels }),
};

export type ShardNodeConfig = ConfigOf<typeof shardNodeOptions>;

export function parseShardNodeConfig(input: ParseConfigInput): ShardNodeConfig {
  return parseConfig(shardNodeProgram, shardNodeOptions, input);
}
