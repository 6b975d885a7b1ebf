export * from './local-cluster.js';
export * from './local-node-cluster.js';
export {
  adminTokenFileName,
  clusterSecretFileName,
  foundedFileName,
  gatewayMain,
  repositoryRoot,
  shardNodeMain,
  type ProcessClusterOptions,
  type ShardNodeProcess,
} from './process-cluster.js';
export {
  ProcessStartError,
  nodeRuntimeFlags,
  waitForReady,
  type ManagedProcess,
  type ProcessExit,
} from './supervisor.js';
export { freePort } from './ports.js';
export { startOptions, startProgram } from './start-options.js';
export * from './power-fs.js';
export { PowerCutError, powerBackingFolderName } from './power-loss.js';
export { mountpointsUnder } from './mounts.js';
