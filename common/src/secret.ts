import { readFileSync } from 'node:fs';
import { ConfigError } from './config.js';

/** Where a process may be given a secret: a file its flag names, or the value in a variable. */
export interface SecretSource {
  /** What the secret is, for messages: `the cluster secret`. */
  readonly name: string;
  /** The flag naming the file (`--cluster-secret-file`), and the file it names ("" when none). */
  readonly fileFlag: string;
  readonly file: string;
  /** The variable that may hold the secret itself (`IMPULSE_CLUSTER_SECRET`), and its value. */
  readonly environmentVariable: string;
  readonly fromEnvironment: string | undefined;
  /** The shortest secret accepted, in bytes. */
  readonly bytesMin: number;
}

/**
 * A secret given to a process, from the file a flag names or from an environment variable (never
 * both: two sources that may disagree are refused), without its trailing newlines (a file written
 * by `echo`, a Kubernetes Secret); undefined when neither is given. A secret shorter than
 * `bytesMin`, or a file that cannot be read, is a configuration error. The secret itself is never
 * part of a message. The variable holds the value itself and there is no flag for it: a flag
 * would show the secret in `ps`.
 */
export function readSecret(source: SecretSource): Buffer | undefined {
  const { name, fileFlag, file, environmentVariable, fromEnvironment } = source;
  if (file !== '' && fromEnvironment !== undefined)
    throw new ConfigError([`${fileFlag} and ${environmentVariable} are both set: give ${name} one way`]);
  let secret: Buffer;
  if (file !== '') {
    try {
      secret = readFileSync(file);
    } catch (error) {
      throw new ConfigError([
        `${fileFlag} ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      ]);
    }
  } else if (fromEnvironment !== undefined) {
    secret = Buffer.from(fromEnvironment, 'utf8');
  } else {
    return undefined;
  }
  let end = secret.length;
  while (end > 0 && (secret[end - 1] === 0x0a || secret[end - 1] === 0x0d)) end--;
  secret = secret.subarray(0, end);
  if (secret.length < source.bytesMin)
    throw new ConfigError([
      `${name} (${file !== '' ? `${fileFlag} ${file}` : environmentVariable}) is ${secret.length} bytes; at least ${source.bytesMin} are needed`,
    ]);
  return secret;
}
