export * from './local-cluster.js';
export { freePort } from './ports.js';
export { startOptions, startProgram } from './start-options.js';
export * from './power-fs.js';
export { PowerCutError, powerBackingFolderName } from './power-loss.js';
export { mountpointsUnder } from './mounts.js';
export * from './local-node-cluster.js';
