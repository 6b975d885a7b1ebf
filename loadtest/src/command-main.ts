import { ConfigError, HelpRequested } from '@impulse/common';

/**
 * The body of every command's main module: runs the command with the process's arguments and
 * environment and turns its outcome into output and an exit status (`--help` → the help and 0,
 * a configuration error → the problems and 2, any other error → its stack and 1).
 */
export async function runCommandMain(
  name: string,
  command: (argv: readonly string[], env: Readonly<Record<string, string | undefined>>) => Promise<number>,
): Promise<void> {
  try {
    process.exitCode = await command(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${error.text}\n`);
    } else if (error instanceof ConfigError) {
      process.stderr.write(`${name}: ${error.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(
        `${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exitCode = 1;
    }
  }
}
