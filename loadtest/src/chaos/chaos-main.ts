import { ConfigError, HelpRequested } from '@impulse/common';
import { runChaosCommand } from './chaos-command.js';

try {
  process.exitCode = await runChaosCommand(process.argv.slice(2), process.env);
} catch (error) {
  if (error instanceof HelpRequested) {
    process.stdout.write(`${error.text}\n`);
  } else if (error instanceof ConfigError) {
    process.stderr.write(`chaos: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(
      `chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  }
}
