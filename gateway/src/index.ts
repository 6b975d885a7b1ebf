export { Gateway } from './gateway.js';
export { createGatewayApp, type GatewayApp, type GatewayContext } from './app.js';
export { ClusterRouter, type Route } from './router.js';
export {
  gatewayOptions,
  gatewayProgram,
  parseGatewayConfig,
  withAdminToken,
  type GatewayConfig,
} from './config.js';
