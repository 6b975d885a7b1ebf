import type { LevelWithSilent } from 'pino';
import { ConfigError, HelpRequested } from './config.js';
import { createLogger, type Logger } from './logger.js';

export interface RunServiceOptions<Config, Running extends { stop(): Promise<void> }> {
  /** Program name, as in `impulse-gateway`. */
  readonly program: string;
  /** `service` field of every log line. */
  readonly service: string;
  /** Parses and validates the configuration; throws `HelpRequested` or `ConfigError`. */
  readonly parse: () => Config;
  readonly logLevel: (config: Config) => LevelWithSilent;
  readonly logBindings?: (config: Config) => Readonly<Record<string, string | number>>;
  readonly start: (config: Config, logger: Logger) => Promise<Running>;
}

/**
 * The shared `main` of every Impulse process: configuration (with `--help` and exit code 2 on a
 * bad configuration), a logger, start-up, and a clean stop on SIGTERM or SIGINT.
 */
export async function runService<Config, Running extends { stop(): Promise<void> }>(
  options: RunServiceOptions<Config, Running>,
): Promise<void> {
  let config: Config;
  try {
    config = options.parse();
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${error.text}\n`);
      return;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`${options.program}: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }
  const logger = createLogger({
    service: options.service,
    level: options.logLevel(config),
    ...(options.logBindings === undefined ? {} : { bindings: options.logBindings(config) }),
  });
  let running: Running;
  try {
    running = await options.start(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, `${options.service}: failed to start`);
    process.exitCode = 1;
    return;
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${options.service}: signal received, shutting down`);
    running.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, `${options.service}: unclean shutdown`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
