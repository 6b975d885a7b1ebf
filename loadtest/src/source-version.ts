import { spawnSync } from 'node:child_process';

/**
 * The commit the measured code came from, and whether the work tree had changes on top of it:
 * numbers are only comparable between runs of the same code.
 */
export function sourceVersion(): { readonly commit: string; readonly workTreeChanged: boolean } {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' });
  return {
    commit: head.status === 0 ? head.stdout.trim() : 'unknown',
    workTreeChanged: status.status === 0 && status.stdout.trim().length > 0,
  };
}
