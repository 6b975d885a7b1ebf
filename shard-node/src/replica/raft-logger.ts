import type { Logger } from '@impulse/common';
import type { LogFields, Logger as RaftLogger } from '../raft/index.js';

/** The Raft core and the Raft log log through a small interface; this hands their lines to pino. */
export function raftLoggerOf(logger: Logger): RaftLogger {
  const fieldsOf = (fields: LogFields | undefined): object => fields ?? {};
  return {
    debug: (message, fields) => logger.debug(fieldsOf(fields), message),
    info: (message, fields) => logger.info(fieldsOf(fields), message),
    warn: (message, fields) => logger.warn(fieldsOf(fields), message),
    error: (message, fields) => logger.error(fieldsOf(fields), message),
  };
}
