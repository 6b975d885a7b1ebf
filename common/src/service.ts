import type { LevelWithSilent } from 'pino';
import { HelpRequested } from './config.js';
import { createLogger, type Logger } from './logger.js';
import { startupErrorLines, startupErrorOf, type StartupError } from './startup-error.js';

/**
 * How long a process that failed to start waits for its last lines to drain before it exits even
 * if something it opened still holds the event loop: a failed start must end, not hang.
 */
const startupFailureExitDelayMs = 2_000;

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
 * The shared `main` of every Impulse process: configuration (with `--help`), a logger, start-up,
 * and a clean stop on SIGTERM or SIGINT. A start-up failure prints its cause on stderr (first line:
 * program, cause and code) and exits 2 for a bad configuration, 1 for a problem of the environment
 * (see `startupErrorRegistry`); the JSON log on stdout gets it too once the logger exists.
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
    return failStartup(options.program, startupErrorOf(error));
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
    const failure = startupErrorOf(error);
    logger.fatal({ err: error, code: failure.code }, `${options.service}: failed to start`);
    return failStartup(options.program, failure);
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

function failStartup(program: string, failure: StartupError): void {
  process.stderr.write(`${startupErrorLines(program, failure).join('\n')}\n`);
  process.exitCode = failure.exitCode;
  setTimeout(() => process.exit(failure.exitCode), startupFailureExitDelayMs).unref();
}
