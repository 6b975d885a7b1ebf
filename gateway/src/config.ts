import {
  ConfigError,
  adminTokenBytesMin,
  httpServerLimitProblems,
  httpServerOptions,
  keyBytesMaxDefault,
  keyBytesMaxUpperBound,
  logLevels,
  option,
  parseConfig,
  valueBytesMaxDefault,
  valueBytesMaxUpperBound,
  readAdminToken,
  type ConfigOf,
  type ParseConfigInput,
} from '@impulse/common';

export const gatewayProgram = {
  name: 'impulse-gateway',
  summary: 'stateless HTTP router: hashes each key to a slot, the slot to a shard group, and proxies to it',
};

export const gatewayOptions = {
  host: option.string({ description: 'Address the gateway listens on.', default: '127.0.0.1' }),
  port: option.integer({
    description: 'Port of the gateway (0 picks a free port).',
    default: 8080,
    min: 0,
    max: 65535,
  }),
  clusterFile: option.string({ description: 'Path of the cluster configuration (JSON).', default: '' }),
  cluster: option.string({
    description: 'Inline cluster configuration (JSON); wins over --cluster-file.',
    default: '',
  }),
  adminTokenFile: option.string({
    description: `File holding the admin token (at least ${adminTokenBytesMin} bytes of letters, digits and - . _ ~ + /; a trailing newline is ignored) that GET /admin/cluster must carry as 'Authorization: Bearer <token>', and that the gateway sends to the replicas' /admin/status: the cluster's, which every node is given too. IMPULSE_ADMIN_TOKEN may hold the token itself instead (an environment variable only: a flag would show in ps). Without either, /admin/cluster is open and the replicas are asked without a token.`,
    default: '',
  }),
  valueBytesMax: option.bytes({
    description:
      "Largest value accepted. Cluster-wide: the cluster configuration's valueBytesMax (1MiB when absent) is the limit, and this flag, if given, must equal it.",
    default: valueBytesMaxDefault,
    min: 0,
    max: valueBytesMaxUpperBound,
  }),
  keyBytesMax: option.bytes({
    description:
      "Longest key accepted, in bytes of UTF-8. Cluster-wide: the cluster configuration's keyBytesMax (1KiB when absent) is the limit, and this flag, if given, must equal it.",
    default: keyBytesMaxDefault,
    min: 1,
    max: keyBytesMaxUpperBound,
  }),
  upstreamTimeout: option.milliseconds({
    description:
      'How long one attempt waits for a replica to answer before trying another (or answering 504).',
    default: 2_000,
    min: 1,
    max: 60_000,
  }),
  requestDeadline: option.milliseconds({
    description:
      'How long a request may take, counted from its arrival (reading its body included) across all its attempts (leader changes, retries).',
    default: 10_000,
    min: 1,
    max: 300_000,
  }),
  retryAttemptsMax: option.integer({
    description: 'Attempts per request at most (the first one included).',
    default: 10,
    min: 1,
    max: 100,
  }),
  keyRequestsMax: option.integer({
    description:
      'Key requests (GET, HEAD, PUT, DELETE /kv/{key}) served at once at most, from arrival to answer; each may hold a value (up to the value limit) in memory, so this bounds that memory. Past it a key request answers 429 TOO_MANY_REQUESTS.',
    default: 1024,
    min: 1,
    max: 65_536,
  }),
  scansInFlightMax: option.integer({
    description:
      'Range scans (GET /kv?...) served at once at most; each holds up to a page per group in memory. Past it a scan answers 429 TOO_MANY_REQUESTS.',
    default: 64,
    min: 1,
    max: 65_536,
  }),
  upstreamSocketsMax: option.integer({
    description: 'Keep-alive connections the gateway opens to each replica at most.',
    default: 256,
    min: 1,
    max: 65_536,
  }),
  ...httpServerOptions,
  shutdownTimeout: option.milliseconds({
    description: 'How long SIGTERM waits for requests in flight.',
    default: 10_000,
    min: 0,
    max: 300_000,
  }),
  logLevel: option.enum({ description: 'Log level.', default: 'info', choices: logLevels }),
};

/**
 * The gateway's configuration: its options, and the admin token they lead to (from
 * `--admin-token-file` or IMPULSE_ADMIN_TOKEN; see `withAdminToken`).
 */
export type GatewayConfig = ConfigOf<typeof gatewayOptions> & { readonly adminToken?: Uint8Array };

export function parseGatewayConfig(input: ParseConfigInput): GatewayConfig {
  const config = parseConfig(gatewayProgram, gatewayOptions, input);
  const problems = httpServerLimitProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * The configuration with the admin token its options name, read once at start (a configuration
 * error when the file cannot be read or the token is not one).
 */
export function withAdminToken(
  config: GatewayConfig,
  env: Readonly<Record<string, string | undefined>>,
): GatewayConfig {
  const adminToken = readAdminToken(config.adminTokenFile, env);
  return adminToken === undefined ? config : Object.freeze({ ...config, adminToken });
}
