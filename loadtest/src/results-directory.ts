import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/** `<root>/<UTC timestamp>-<name>/`, created; the timestamp sorts in time order. */
export async function createResultsDirectory(
  root: string,
  name: string,
  now: Date = new Date(),
): Promise<string> {
  const timestamp = now
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
  const directory = resolve(join(root, `${timestamp}-${name}`));
  await mkdir(directory, { recursive: true });
  return directory;
}

export async function writeResultFiles(
  directory: string,
  files: ReadonlyArray<readonly [name: string, content: string | Uint8Array]>,
): Promise<void> {
  for (const [name, content] of files) await writeFile(join(directory, name), content);
}
