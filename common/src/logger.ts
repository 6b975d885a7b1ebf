import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

export const logLevels: readonly LevelWithSilent[] = [
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
];

/**
 * The process logger: JSON lines on stdout, one base binding per service (`service`), and child
 * loggers per replica or request (`groupId`, `replicaId`, `reqId`). Messages read like
 * `server: listening` with the facts as fields.
 */
export function createLogger(options: {
  readonly service: string;
  readonly level: LevelWithSilent;
  readonly bindings?: Readonly<Record<string, string | number>>;
}): Logger {
  return pino({
    level: options.level,
    base: { service: options.service, pid: process.pid, ...options.bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
