import { readFile } from 'node:fs/promises';
import { resolve, sep } from 'node:path';

/**
 * The mount points at or under `directory`, from the kernel's table of this process's mounts
 * (`/proc/self/mountinfo`); none where there is no such table (not Linux). A folder that still
 * holds a mount must not be removed recursively: `rm` would delete through a live mount into what
 * it serves, or fail on a dead one (`ENOTCONN`) halfway.
 */
export async function mountpointsUnder(directory: string): Promise<string[]> {
  let table: string;
  try {
    table = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  return parseMountpointsUnder(table, directory);
}

/** `mountpointsUnder` on a given table (the format of proc(5), `/proc/<pid>/mountinfo`). */
export function parseMountpointsUnder(mountinfo: string, directory: string): string[] {
  const root = resolve(directory);
  const prefix = root.endsWith(sep) ? root : `${root}${sep}`;
  return mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((field): field is string => field !== undefined)
    .map(unescapeMountField)
    .filter((mountpoint) => mountpoint === root || mountpoint.startsWith(prefix));
}

/** The kernel writes a space, tab, newline or backslash in a path as an octal escape (`\040`). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
