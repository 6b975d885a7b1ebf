import type { Logger } from '@impulse/common';
import type { ShardNodeConfig } from './config.js';

/**
 * Says once, at start, that a process given no admin token refuses every admin change (a
 * membership change, a leadership transfer, a replica added to a node) and answers admin reads to
 * anyone. Only a process without a cluster secret gets here: one with a secret and no token is
 * refused at start (`checkShardNodeConfig`).
 */
export function warnWithoutAdminToken(config: ShardNodeConfig, logger: Logger): void {
  if (config.adminToken !== undefined) return;
  logger.warn(
    'shard-node: no admin token (--admin-token-file or IMPULSE_ADMIN_TOKEN): admin changes (POST, DELETE /admin/...) are refused, and admin reads are open to anyone who reaches the client port',
  );
}
