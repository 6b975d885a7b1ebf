import { randomInt } from 'node:crypto';
import { ConfigError, parseConfig } from '@impulse/common';
import { chaosOptions, chaosProgram } from './chaos-options.js';
import { runChaos } from './chaos-run.js';
import { nemesisNames, type NemesisName } from './nemesis.js';

/** Parses `--nemesis kill,pause,...` (or `all`, or `none`). */
export function parseNemeses(text: string): Set<NemesisName> {
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (names.length === 1 && names[0] === 'all') return new Set(nemesisNames);
  if (names.length === 1 && names[0] === 'none') return new Set();
  const unknown = names.filter((name) => !(nemesisNames as readonly string[]).includes(name));
  if (unknown.length > 0 || names.length === 0) {
    throw new ConfigError([
      `--nemesis: unknown nemesis ${unknown.join(', ') || '(empty)'}; choose from ${nemesisNames.join(', ')}, all or none`,
    ]);
  }
  return new Set(names as NemesisName[]);
}

/**
 * `npm run chaos`: prints progress on stderr and the verdict line last on stdout. Exit status 0
 * when the history is linearizable and no acknowledged write was lost, 1 when either check
 * failed, 2 when the checker could not decide within its budget.
 */
export async function runChaosCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const config = parseConfig(chaosProgram, chaosOptions, { argv, env });
  const nemeses = parseNemeses(config.nemesis);
  const seed = config.seed === 0 ? randomInt(1, 2 ** 31) : config.seed;
  const result = await runChaos({
    timeSeconds: config.time,
    nemeses,
    seed,
    clients: config.clients,
    keysActive: config.keys,
    operationsPerKeyMax: config.operationsPerKey,
    requestTimeoutMs: config.requestTimeout,
    groups: config.groups,
    replicasPerGroup: config.replicasPerGroup,
    readMode: config.readMode as 'readindex' | 'lease',
    resultsRoot: config.results,
    checkTimeBudgetMs: config.checkTimeBudget,
    keepData: config.keepData,
    log: (line) => process.stderr.write(`${line}\n`),
    commandLine: `npm run chaos -- ${argv.join(' ')}${config.seed === 0 ? ` (seed ${seed} picked)` : ''}`,
  });
  process.stdout.write(`${result.finalLine}\n`);
  if (result.linearizable === 'false' || result.lostWrites.length > 0) return 1;
  return result.linearizable === 'unknown' ? 2 : 0;
}
